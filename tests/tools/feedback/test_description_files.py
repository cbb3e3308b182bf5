"""Published description sets: CuPL, `class: prompt` lines, DCLIP descriptors and IVF's *_sota.txt lists."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from support.tiny_world import write_images, write_model
from visfeed.agents.nodes.initialize import load_description_file
from visfeed.cli import app
from visfeed.cli.common import console, out
from visfeed.errors import ConfigError
from visfeed.state.templates import parse_source
from visfeed.tools.embedding.cache import text_key
from visfeed.tools.feedback.description_files import dclip_clause, read_description_file

runner = CliRunner()
out.width = console.width = 250  # rich would wrap the error lines the tests look for at 80 columns
CLASSES = ["cherry", "lime", "lemon"]
DESCRIPTORS = {
    "cherry": ["a small round fruit", "has a long stem", "used in desserts", "glossy red skin"],
    "lime": ["green rind", "often sold in nets"],
    "lemon": ["antlers", "Apple-shaped body"],
}


def write_dclip(path: Path) -> Path:
    path.write_text(json.dumps(DESCRIPTORS, indent=2), encoding="utf-8")
    return path


def write_ivf(path: Path) -> Path:
    items = [f"{c}: {', '.join(ds)}" for c, ds in DESCRIPTORS.items()]
    path.write_text(repr(items), encoding="utf-8")  # what the reference's results look like: a Python list
    return path


def test_dclip_clause_is_the_published_rule_quirks_included() -> None:
    assert dclip_clause("a small dog") == "which is a small dog"
    assert dclip_clause("an oval leaf") == "which is an oval leaf"
    assert dclip_clause("antlers") == "which is antlers"  # startswith("a"), as published
    assert dclip_clause("has large ears") == "which has large ears"
    assert dclip_clause("often seen in groups") == "which often seen in groups"
    for verb in ("typically", "may", "can"):
        assert dclip_clause(f"{verb} x") == f"which {verb} x"
    assert dclip_clause("used for herding") == "which is used for herding"
    assert dclip_clause("A yellow petal") == "which has A yellow petal"  # case-sensitive, as published
    assert dclip_clause(" long coat ") == "which has long coat"


def test_each_format_is_detected_and_rendered(tmp_path: Path) -> None:
    dclip = read_description_file(write_dclip(tmp_path / "descriptors_fruit.json"))
    ivf = read_description_file(write_ivf(tmp_path / "fruit_sota.txt"))
    assert dclip.format == "dclip" and ivf.format == "ivf"
    assert dclip.entries == ivf.entries == DESCRIPTORS
    expected = {
        "cherry": [
            "cherry, which is a small round fruit",
            "cherry, which has a long stem",
            "cherry, which is used in desserts",
            "cherry, which has glossy red skin",
        ],
        "lime": ["lime, which has green rind", "lime, which often sold in nets"],
        "lemon": ["lemon, which is antlers", "lemon, which has Apple-shaped body"],
    }
    assert dclip.prompts() == ivf.prompts() == expected
    cupl_path = tmp_path / "cupl.json"
    cupl_path.write_text(json.dumps({"cherry": ["A photo of a cherry.", " "], "lime": ["x."], "lemon": ["y."]}))
    cupl = read_description_file(cupl_path)
    assert cupl.format == "cupl" and cupl.prompts()["cherry"] == ["A photo of a cherry."]
    lines = tmp_path / "mine.txt"
    lines.write_text("# comment\n\ncherry: a red cherry.\ncherry: a stem.\nlime: green\nlemon: yellow\n")
    read = read_description_file(lines)
    assert read.format == "lines" and read.prompts()["cherry"] == ["a red cherry.", "a stem."]


def test_class_names_match_ignoring_case_and_underscores(tmp_path: Path) -> None:
    path = tmp_path / "flowers_sota.txt"
    path.write_text("['pink_primrose: five petals, long thin stem', 'Sun Flower']")
    file = read_description_file(path)
    prompts = file.for_classes(["pink primrose", "sun flower"])
    assert prompts == {
        "pink primrose": ["pink primrose, which has five petals", "pink primrose, which has long thin stem"],
        "sun flower": ["Sun Flower"],  # no descriptors: the class name alone, as the reference scores it
    }


def test_explicit_format_beats_the_name_rule(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    renamed = write_dclip(tmp_path / "published.json")
    with caplog.at_level(logging.WARNING):
        assert read_description_file(renamed).format == "cupl"
    assert "dclip:" in caplog.text  # the warning says how to read it as descriptors
    assert read_description_file(renamed, "dclip").format == "dclip"
    assert parse_source(f"dclip:{renamed}") == (renamed, "dclip")
    assert parse_source(f"IVF:{renamed}") == (renamed, "ivf")
    assert parse_source("notaformat:x.json") == (Path("notaformat:x.json"), "auto")
    assert parse_source("x.json", "lines") == (Path("x.json"), "lines")
    with pytest.raises(ConfigError, match="unknown description file format 'yaml'"):
        parse_source("x.json", "yaml")


@pytest.mark.parametrize(
    "literal",
    [
        "__import__('os').system('touch {marker}')",
        "[__import__('pathlib').Path('{marker}').touch()]",
        "['cherry: red'] + [open('{marker}', 'w').write('x')]",
        "[(lambda: open('{marker}', 'w'))()]",
        '[f\'{{open("{marker}", "w")}}\']',
    ],
)
def test_ivf_literal_is_parsed_never_run(tmp_path: Path, literal: str) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil_sota.txt"
    path.write_text(literal.format(marker=marker))
    with pytest.raises(ConfigError, match=r"evil_sota\.txt is not valid IVF"):
        read_description_file(path, "ivf")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "content", "fmt", "needle"),
    [
        ("a_sota.txt", "[1, 2]", "auto", "not valid IVF"),
        ("a_sota.txt", "['cherry: red', 'cherry: dark']", "auto", "appears twice"),
        ("a_sota.txt", "[': no class']", "auto", "entry without a class"),
        ("a_sota.txt", "['cherry: red'", "auto", "not valid IVF"),
        ("descriptors_a.json", "{not json", "auto", "not valid JSON"),
        ("descriptors_a.json", '{"cherry": "red"}', "auto", "list of strings"),
        ("a.json", '["cherry"]', "cupl", "list of strings"),
        ("a.txt", "cherry red\n", "auto", "a.txt:1: expected 'class name: prompt sentence'"),
        ("a.txt", "{}", "auto", "holds no classes"),
        ("a.txt", "", "ivf", "not valid IVF"),
    ],
)
def test_malformed_files_name_the_file(tmp_path: Path, name: str, content: str, fmt: str, needle: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        read_description_file(path, fmt)  # type: ignore[arg-type]
    assert name in str(info.value) and needle in str(info.value)


def test_extra_classes_are_left_out_missing_and_duplicate_ones_are_usage_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = read_description_file(write_dclip(tmp_path / "descriptors_fruit.json"))
    subset = file.for_classes(["cherry", "lime"])
    assert set(subset) == {"cherry", "lime"} and subset["lime"] == file.prompts()["lime"]
    assert "1 class(es) the dataset lacks are left out: ['lemon']" in caplog.text
    with pytest.raises(ConfigError, match=r"no texts for classes \['durian'\]"):
        file.for_classes([*CLASSES, "durian"])
    twice = tmp_path / "descriptors_twice.json"
    twice.write_text(json.dumps({"sea_lion": ["x"], "Sea lion": ["y"]}))
    with pytest.raises(ConfigError, match="twice"):
        read_description_file(twice).for_classes(["sea lion"])


def test_init_file_reads_every_format_as_descriptions(tmp_path: Path) -> None:
    for path in (write_dclip(tmp_path / "descriptors_fruit.json"), write_ivf(tmp_path / "fruit_sota.txt")):
        assert load_description_file(path, CLASSES) == DESCRIPTORS
    renamed = write_dclip(tmp_path / "fruit.json")
    assert load_description_file(Path(f"dclip:{renamed}"), CLASSES) == DESCRIPTORS
    assert load_description_file(renamed, ["cherry", "lime"]) == {c: DESCRIPTORS[c] for c in ("cherry", "lime")}


def embedded_texts(cache: Path, texts: list[str]) -> set[str]:
    """Which of ``texts`` the embedding cache holds: the prompts a command really scored."""
    with sqlite3.connect(cache) as conn:
        keys = {row[0] for row in conn.execute("SELECT key FROM embeddings")}
    return {t for t in texts if text_key(t) in keys}


def test_cli_eval_scores_published_sets_beside_the_baselines(tmp_path: Path) -> None:
    images = write_images(tmp_path / "images", per_class=6)
    cache = tmp_path / "emb.sqlite"
    common = ["-d", "imagefolder", "--root", str(images), "--backbone", write_model(tmp_path / "model"),
              "--set", "data.k_shot=2", "--set", "backbone.device=cpu", "--set", f"backbone.embedding_cache={cache}"]  # fmt: skip
    dclip = write_dclip(tmp_path / "descriptors_fruit.json")
    renamed = write_dclip(tmp_path / "renamed.json")
    ivf = write_ivf(tmp_path / "fruit_sota.txt")
    scored = tmp_path / "eval.json"
    args = ["eval", *common, "-D", str(dclip), "-D", f"dclip:{renamed}", "-D", str(ivf), "--seeds", "0,1"]
    res = runner.invoke(app, [*args, "--out", str(scored)])
    assert res.exit_code == 0, res.output
    methods = json.loads(scored.read_text())["methods"]
    assert {"names", "templates", "waffle", str(dclip), f"dclip:{renamed}", str(ivf)} <= set(methods)
    assert all(len(methods[row]["per_seed"]) == 2 for row in (str(dclip), f"dclip:{renamed}", str(ivf)))
    rendered = [p for ps in read_description_file(ivf).prompts().values() for p in ps]
    raw = [d for ds in DESCRIPTORS.values() for d in ds]
    assert embedded_texts(cache, rendered) == set(rendered) and not embedded_texts(cache, raw)
    # --format applies to files without a prefix: the DCLIP file read as CuPL scores the bare descriptors
    res = runner.invoke(app, ["eval", *common, "--format", "cupl", "-D", str(renamed)])
    assert res.exit_code == 0, res.output
    assert embedded_texts(cache, raw) == set(raw)
    evil = tmp_path / "evil_sota.txt"
    evil.write_text(f"[__import__('os').system('touch {tmp_path / 'PWNED'}')]")
    unknown = tmp_path / "descriptors_more.json"
    unknown.write_text(json.dumps({**DESCRIPTORS, "durian": ["spiky"]}))
    never = tmp_path / "never.json"
    res = runner.invoke(app, ["eval", *common, "-D", str(evil), "--out", str(never)])
    assert res.exit_code == 2 and "evil_sota.txt is not valid IVF" in res.output, res.output
    assert not never.exists() and not (tmp_path / "PWNED").exists()
    res = runner.invoke(app, ["eval", *common, "-D", str(unknown)])  # a superset file scores the dataset's classes
    assert res.exit_code == 0, res.output
    assert not embedded_texts(cache, ["durian, which has spiky"])
    res = runner.invoke(app, ["eval", *common, "--format", "yaml", "-D", str(dclip)])
    assert res.exit_code == 2 and "unknown description file format 'yaml'" in res.output
