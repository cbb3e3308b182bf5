"""Config files across the sections change: old files load with the values they had, new keys work everywhere.

``tests/fixtures/configs/effective_before.json`` was written by the flat RunConfig (the commit it names) from
the same files, so a key that lands in the wrong section, or a default that moved, fails here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from tests.support.legacy_config import flat_dump

from visfeed.cli.common import parse_sets
from visfeed.errors import ConfigError
from visfeed.state.config import LEGACY_KEYS, RunConfig
from visfeed.state.config.table import render, section_models
from visfeed.state.sweep import expand, load_spec

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "configs"
BEFORE = json.loads((FIXTURES / "effective_before.json").read_text(encoding="utf-8"))
EXAMPLES = sorted(
    p for folder in (FIXTURES, REPO / "docs") for p in folder.rglob("*") if p.suffix in {".yaml", ".toml", ".json"}
)
EXAMPLES = [p for p in EXAMPLES if p.name != "effective_before.json"]


def test_every_example_config_is_checked() -> None:
    names = {p.name for p in EXAMPLES}
    assert set(BEFORE["files"]) <= names  # every file recorded before the change is still an example
    assert {"run.yaml", "run_scale_1000.yaml", "user_flat.toml", "user_flat.json"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_configs_give_the_values_they_gave_before(path: Path) -> None:
    cfg = RunConfig.load(path)
    expected = BEFORE["files"].get(path.name)
    if expected is None:  # a file in the new form: its flat twin was recorded
        expected = BEFORE["files"][f"{path.stem.replace('run', 'user_flat')}.yaml"]
    assert flat_dump(cfg) == expected
    assert RunConfig.from_mapping(cfg.to_file_dict()) == cfg  # what a run writes reads back the same


def test_the_sweep_example_gives_every_cell_the_values_it_had() -> None:
    spec_path = REPO / "benchmarks" / "specs" / "sweep_worlds.yaml"
    cells = expand(load_spec(spec_path), Path("/sweep"), base=spec_path.parent)
    got = {c.id: json.loads(json.dumps(flat_dump(c.config)).replace(str(REPO), "<repo>")) for c in cells}
    assert got == BEFORE["sweep_cells"]


def test_old_keys_load_with_one_warning_naming_old_and_new(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = tmp_path / "config.yaml"
    old.write_text("k_shot: 3\ndogs_crop: true\nbackbone: ViT-B-32\nvisual_words: false\nseed: 2\n")
    with caplog.at_level(logging.WARNING, logger="visfeed.state.config"):
        cfg = RunConfig.load(old, {"crossover": "beam"})
    assert (cfg.data.k_shot, cfg.data.stanford_dogs.crop, cfg.backbone.model) == (3, True, "ViT-B-32")
    assert (cfg.signals.visual_words.enabled, cfg.search.crossover, cfg.seed) == (False, "beam", 2)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("\n" not in line for line in lines)  # one line per file or override set
    assert str(old) in lines[0] and "k_shot -> data.k_shot" in lines[0] and "backbone -> backbone.model" in lines[0]
    assert "crossover -> search.crossover" in lines[1]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="visfeed.state.config"):
        RunConfig.load(None, {"data.k_shot": 3, "seed": 1})
    assert not caplog.records  # the new keys say nothing


def test_dotted_set_reaches_every_depth() -> None:
    sets = parse_sets(
        ["data.k_shot=3", "data.stanford_dogs.breeds=[Chihuahua, Maltese dog]", "llm.timeout_s=9",
         "signals.visual_words.count=8", "image_side.weights=auto", "method.patience=4"]
    )  # fmt: skip
    file_cfg = RunConfig.from_mapping({"data": {"k_shot": 5, "n_val": 0}, "method": {"patience": 9, "lam": 0.5}})
    cfg = RunConfig.load(None, {**file_cfg.flat(), **sets})
    assert (cfg.data.k_shot, cfg.data.n_val, cfg.data.stanford_dogs.breeds) == (3, 0, ["Chihuahua", "Maltese dog"])
    assert (cfg.llm.timeout_s, cfg.signals.visual_words.count, cfg.method.patience, cfg.method.lam) == (9, 8, 4, 0.5)


def test_overrides_merge_into_a_files_sections(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"method": {"lam": 0.7, "patience": 5}, "llm": {"provider": "openai:x"}}))
    cfg = RunConfig.load(path, {"method.patience": 1, "llm.timeout_s": 3})
    assert (cfg.method.lam, cfg.method.patience, cfg.llm.provider, cfg.llm.timeout_s) == (0.7, 1, "openai:x", 3)
    assert cfg.with_updates({"method.lam": 0.2}).method.patience == 1  # a copy keeps the rest of the section


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"k_shot": 3, "data.k_shot": 4}, "k_shot and data.k_shot both set data.k_shot"),
        ({"data": {"nope": 1}}, "data.nope: unknown field; valid fields are: name, root"),
        ({"signals.visual_words.count": 99}, "signals.visual_words.count:"),
        ({"k_shot": 0}, "data.k_shot (k_shot):"),
        ({"data.name": "flowers102"}, "data.root: dataset 'flowers102' needs data.root"),
    ],
)
def test_bad_keys_name_the_culprit(data: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        RunConfig.from_mapping(data, source="mine.yaml")
    assert needle in str(err.value) and "mine.yaml" in str(err.value)


def test_every_old_key_has_a_home_and_every_field_a_description() -> None:
    leaves = {f"{prefix}{name}" for prefix, m in section_models() for name in m.model_fields}
    assert set(LEGACY_KEYS.values()) <= leaves
    assert all(f.description for _, m in section_models() for f in m.model_fields.values())


def test_the_docs_table_is_generated_from_the_models() -> None:
    """docs/config.md drifts when a field changes: regenerate it with the command in its first lines."""
    assert (REPO / "docs" / "config.md").read_text(encoding="utf-8") == render()


def test_old_keys_keep_their_names_except_the_listed_renames() -> None:
    """The fixtures map values back through LEGACY_KEYS, so a swap of two paths would pass there: not here."""
    renamed = {
        "dataset": "data.name", "dataset_root": "data.root", "dogs_breeds": "data.stanford_dogs.breeds",
        "dogs_crop": "data.stanford_dogs.crop", "dogs_crop_dir": "data.stanford_dogs.crop_dir",
        "backbone": "backbone.model", "llm_cache": "llm.cache_file", "llm_timeout_s": "llm.timeout_s",
        "llm_max_retries": "llm.max_retries", "llm_backoff_s": "llm.backoff_base_s", "search_steps": "search.steps",
        "visual_words": "signals.visual_words.enabled", "visual_words_count": "signals.visual_words.count",
        "vocabulary_extend": "signals.visual_words.extend", "image_side": "image_side.parts",
        "image_weights": "image_side.weights",
    }  # fmt: skip
    kept = {old: new for old, new in LEGACY_KEYS.items() if old not in renamed}
    assert all(new.rsplit(".", 1)[1] == old for old, new in kept.items())
    assert {old: LEGACY_KEYS[old] for old in renamed} == renamed
