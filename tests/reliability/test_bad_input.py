"""Bad input: broken dataset folders, odd class names, bad config values, an output folder that cannot be written.

Each case ends in a clear error (exit 2, the message names what is wrong, nothing written) or in a run
that completes with the problem counted and reported (skipped images).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml

from reliability.harness import PROVIDER, flat, invoke, world_args
from visfeed.state.rundir import LIBRARY_FILE, read_trace
from visfeed.tools.datasets.registry import load_dataset_with_report


def tree(world: dict[str, Any], root: Path, classes: dict[str, str | None]) -> Path:
    """An ImageFolder whose class folders copy the tiny world's images (None: an empty folder)."""
    root.mkdir(parents=True)
    for name, source in classes.items():
        if source is None:
            (root / name).mkdir()
        else:
            shutil.copytree(world["images"] / source, root / name)
    return root


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def run_args(world: dict[str, Any], run_dir: Path, *extra: str, root: Path | None = None) -> list[str]:
    return world_args(world, run_dir, "-p", PROVIDER, "--max-iterations", "1", *extra, root=root)


def broken_trees(world: dict[str, Any], base: Path) -> dict[str, tuple[Path, str]]:
    def all_truncated() -> Path:
        root = tree(world, base / "unreadable", {"cherry": "cherry", "lime": "lime"})
        for p in (root / "lime").iterdir():
            truncate(p)
        return root

    base.mkdir()
    (base / "empty").mkdir()
    return {
        "missing": (base / "nowhere", "nowhere"),
        "empty": (base / "empty", "no class folders"),
        "class_without_images": (tree(world, base / "hollow", {"cherry": "cherry", "durian": None}), "durian"),
        "empty_class_name": (tree(world, base / "blank", {"cherry": "cherry", "___": "lime"}), "empty readable name"),
        "duplicate_class_names": (
            tree(world, base / "dupes", {"Red_Apple": "cherry", "red apple": "lime"}),
            "both read as",
        ),
        "every_image_of_a_class_unreadable": (all_truncated(), "no usable training image"),
    }


def test_unusable_dataset_folders_are_usage_errors(world: dict[str, Any], tmp_path: Path) -> None:
    for case, (root, needle) in broken_trees(world, tmp_path / "data").items():
        run_dir = tmp_path / "runs" / case
        res = invoke(run_args(world, run_dir, root=root))
        assert res.exit_code == 2, (case, res.output)
        assert needle in flat(res.output), (case, res.output)
        assert "Traceback" not in res.output
        assert not run_dir.exists(), f"{case}: nothing may be written"


def test_truncated_and_non_image_files_are_skipped_counted_and_reported(
    world: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tree(world, tmp_path / "data", {c: c for c in ("cherry", "lime", "lemon")})
    bad: set[str] = set()
    for c in ("cherry", "lime", "lemon"):
        for i in range(4):
            truncate(root / c / f"{i}.png")
            bad.add(str(root / c / f"{i}.png"))
        (root / c / "fake.png").write_text("not an image")
        bad.add(str(root / c / "fake.png"))
        (root / c / "notes.txt").write_text("not an image either")
    (root / "README.md").write_text("# my data")
    _, expected = load_dataset_with_report("imagefolder", root, k_shot=3, seed=1)
    caplog.set_level(logging.WARNING)
    run_dir = tmp_path / "run"
    res = invoke(run_args(world, run_dir, root=root))
    assert res.exit_code == 0, res.output
    assert json.loads((run_dir / "result.json").read_text())["status"] == "completed"
    data = read_trace(run_dir, events={"run_start"})[0]["data"]
    assert data["n_ignored_files"] == 4  # three notes.txt and the README
    assert data["n_skipped"] == expected.n_skipped >= 1
    assert {s["path"] for s in data["skipped"]} <= bad
    assert f"{expected.n_skipped} image(s) skipped" in caplog.text
    # test images are identified by header only when loading; truncated ones are left out at the end
    splits = load_dataset_with_report("imagefolder", root, k_shot=3, seed=1).splits
    late = [p for p in splits.test.paths if p in bad]
    if late:
        assert f"{len(late)} test image(s) could not be decoded and are left out" in caplog.text


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # CJK glyphs: a known report gap
def test_unicode_class_names_run_end_to_end(world: dict[str, Any], tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "crème_brûlée")  # as macOS writes folder names
    root = tree(world, tmp_path / "data", {decomposed: "cherry", "日本": "lime", "中国": "lemon"})
    names = {"crème brûlée", "日本", "中国"}
    run_dir = tmp_path / "run"
    res = invoke(run_args(world, run_dir, root=root))
    assert res.exit_code == 0, res.output
    assert set(json.loads((run_dir / "descriptions.json").read_text(encoding="utf-8"))) == names
    events = read_trace(run_dir)
    assert not [e for e in events if e["event"] == "init_fallback"]
    # one call for the three classes, and each class got exactly the descriptions written for it
    init = [e for e in events if e["event"] == "llm_call" and e["task"] == "init"]
    assert len(init) == 1
    answer = {c["class_name"]: c["descriptions"] for c in json.loads(init[0]["response"]["content"])["classes"]}
    assert set(answer) == names
    library = json.loads((run_dir / LIBRARY_FILE).read_text(encoding="utf-8"))  # the one-shot items per class
    for name in names:
        got = [x["text"] for x in library[name] if x["source"] == "oneshot"]
        assert got == list(dict.fromkeys(answer[name])), name
    for cmd in (["trace", str(run_dir), "--class", "日本"], ["report", str(run_dir)]):
        assert invoke(cmd).exit_code == 0, cmd
    assert "crème brûlée" in (run_dir / "report.html").read_text(encoding="utf-8")


def test_a_single_class_runs_and_scores_trivially(world: dict[str, Any], tmp_path: Path) -> None:
    root = tree(world, tmp_path / "data", {"cherry": "cherry"})
    res = invoke(run_args(world, tmp_path / "run", root=root))
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["n_classes"] == 1 and result["optimized"]["test_accuracy"] == 1.0


def test_two_thousand_class_folders_load(tmp_path: Path) -> None:
    from PIL import Image

    img = Image.new("RGB", (8, 8), (200, 30, 30))
    for i in range(2000):
        folder = tmp_path / f"class_{i:04d}"
        folder.mkdir()
        img.save(folder / "a.png")
        img.save(folder / "b.png")
    splits, report = load_dataset_with_report("imagefolder", tmp_path, k_shot=1, seed=0)
    assert len(splits.classnames) == 2000 == len(set(splits.classnames))
    assert len(splits.feedback) == 2000 and len(splits.test) == 2000
    assert report.n_skipped == 0


INVALID_SETS = [
    ("data.k_shot=0", "k_shot"),
    ("data.k_shot=abc", "k_shot"),
    ("method.patience=0", "patience"),
    ("method.lam=0", "lam"),
    ("method.max_iterations=-1", "max_iterations"),
    ("llm.timeout_s=0", "llm.timeout_s"),
    ("llm_max_retries=-1", "llm.max_retries (llm_max_retries)"),  # an old key is named beside its new path
    ("llm.max_concurrency=0", "max_concurrency"),
    ("method.classes_per_call=0", "classes_per_call"),
    ("llm.temperature=5", "temperature"),
    ("method.similarity_threshold=2", "similarity_threshold"),
    ("search.crossover=magic", "crossover"),
    ("backbone.template=no placeholder", "template"),
    ("backbone.template={classname} {oops} {description}", "template"),
    ("backbone.template={description}, {classname", "template"),
    ("llm.provider=''", "provider"),
    ("seed=[1, 2]", "seed"),
    ("data.name=no_such_dataset", "no_such_dataset"),
    ("no_such_field=1", "no_such_field"),
]


@pytest.mark.parametrize(("pair", "needle"), INVALID_SETS, ids=[p for p, _ in INVALID_SETS])
def test_invalid_config_values_are_usage_errors(pair: str, needle: str, world: dict[str, Any], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    res = invoke(run_args(world, run_dir, "--set", pair))
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert not run_dir.exists()


def test_bad_config_files_are_usage_errors(world: dict[str, Any], tmp_path: Path) -> None:
    files = {
        "broken.yaml": ("k_shot: [1, 2\n", "not valid yaml"),
        "list.yaml": ("- 1\n- 2\n", "must hold a mapping"),
        "typo.yaml": (yaml.safe_dump({"patiense": 3}), "patiense"),
        "bad.toml": ("k_shot = \n", "not valid toml"),
        "bad.json": ('{"k_shot": 2,}', "not valid json"),
    }
    run_dir = tmp_path / "run"
    for name, (text, needle) in files.items():
        (tmp_path / name).write_text(text)
        res = invoke(run_args(world, run_dir, "-c", str(tmp_path / name)))
        assert res.exit_code == 2 and needle in res.output, (name, res.output)
    res = invoke(run_args(world, run_dir, "-c", str(tmp_path / "absent.yaml")))
    assert res.exit_code == 2 and "absent.yaml" in res.output
    assert not run_dir.exists()


def test_an_unwritable_run_directory_is_a_usage_error(world: dict[str, Any], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    targets = [blocker / "run"]
    if Path("/proc/self").is_dir():
        targets.append(Path("/proc/visfeed-no-such/run"))  # mkdir fails even for root (permission bits lie)
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        targets.append(locked / "run")
    for target in targets:
        res = invoke(run_args(world, target))
        assert res.exit_code == 2, (target, res.output)
        assert str(target.parent) in flat(res.output) or str(target) in flat(res.output), res.output
        assert "Traceback" not in res.output
        assert not target.exists()


def test_a_malformed_vocabulary_file_is_a_usage_error_naming_file_and_line(
    world: dict[str, Any], tmp_path: Path
) -> None:
    vocab = tmp_path / "words.txt"
    vocab.write_text("yellow\n[colour\ngreen\n", encoding="utf-8")
    run_dir = tmp_path / "runs" / "vocab"
    res = invoke(run_args(world, run_dir, "--vocabulary", str(vocab)))
    assert res.exit_code == 2, res.output
    assert "words.txt, line 2: malformed category header" in flat(res.output)
    assert "Traceback" not in res.output
    assert not run_dir.exists()
