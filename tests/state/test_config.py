"""RunConfig: paper defaults, YAML/TOML loading with overrides, errors that name the field."""

from __future__ import annotations

import pytest

from visfeed.errors import ConfigError
from visfeed.state.config import RunConfig


def test_defaults_follow_the_paper_and_every_field_is_documented():
    cfg = RunConfig()
    assert (cfg.lam, cfg.top_m, cfg.n_mutations) == (0.9, 5, 4)
    assert cfg.group_size == 1 and RunConfig(provider="openai:gpt-4o").group_size == 10
    assert cfg.resolved_temperature == 0.8  # the weak local model
    assert RunConfig(provider="openai:gpt-4o-mini").resolved_temperature == 1.0
    assert all(f.description for f in RunConfig.model_fields.values())


def test_load_yaml_and_toml_with_overrides(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("lam: 0.8\nmax_iterations: 3\ncrossover: greedy\n")
    cfg = RunConfig.load(y, {"max_iterations": 7, "seed": None})
    assert (cfg.lam, cfg.max_iterations, cfg.crossover, cfg.seed) == (0.8, 7, "greedy", 0)
    t = tmp_path / "c.toml"
    t.write_text('provider = "openai:gpt-4o"\npatience = 4\n')
    assert RunConfig.load(t).patience == 4
    assert RunConfig.load(None, {"top_m": 3}).top_m == 3


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"lam": 1.5}, "lam"),
        ({"n_mutations": 0}, "n_mutations"),
        ({"crossover": "random"}, "crossover"),
        ({"template": "a photo of {classname}"}, "template"),
        ({"template": "{classname} {oops} {description}"}, "template"),
        ({"lamda": 0.9}, "lamda"),
        ({"dataset": "flowers102"}, "dataset_root"),
    ],
)
def test_errors_name_the_field(data, field):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_mapping(data, source="my.yaml")
    assert f"{field}:" in str(err.value) and "my.yaml" in str(err.value)


def test_bad_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        RunConfig.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.toml"
    bad.write_text("lam = = 1")
    with pytest.raises(ConfigError, match="bad.toml"):
        RunConfig.load(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        RunConfig.load(lst)
