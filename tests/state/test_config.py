"""RunConfig: paper defaults, YAML/TOML loading with overrides, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from visfeed.errors import ConfigError
from visfeed.state.config import RunConfig


def test_defaults_follow_the_paper_and_every_field_is_documented():
    cfg = RunConfig()
    remote = RunConfig(llm={"provider": "openai:gpt-4o"})
    assert (remote.method.lam, remote.method.top_m, remote.proposals_per_class, remote.group_size) == (0.9, 5, 4, 10)
    assert remote.resolved_max_tokens == 900
    # the local model gets one class per call, K = 2 and short answers, to finish a default run in minutes
    assert (cfg.proposals_per_class, cfg.group_size, cfg.resolved_max_tokens) == (2, 1, 96)
    assert RunConfig(llm={"answer_format": "json"}).resolved_max_tokens == 256
    assert RunConfig(method={"n_mutations": 3}, llm={"max_tokens": 100}).proposals_per_class == 3
    assert cfg.resolved_temperature == 0.8  # the weak local model
    assert RunConfig(llm={"provider": "openai:gpt-4o-mini"}).resolved_temperature == 1.0
    sections = [RunConfig, *(type(getattr(cfg, name)) for name in ("data", "backbone", "llm", "method", "search"))]
    assert all(f.description for m in sections for f in m.model_fields.values())


def test_load_yaml_and_toml_with_overrides(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("method:\n  lam: 0.8\n  max_iterations: 3\nsearch: {crossover: greedy}\n")
    cfg = RunConfig.load(y, {"method.max_iterations": 7, "seed": None})
    assert (cfg.method.lam, cfg.method.max_iterations, cfg.search.crossover, cfg.seed) == (0.8, 7, "greedy", 0)
    t = tmp_path / "c.toml"
    t.write_text('[llm]\nprovider = "openai:gpt-4o"\n[method]\npatience = 4\n')
    assert RunConfig.load(t).method.patience == 4
    assert RunConfig.load(None, {"method.top_m": 3}).method.top_m == 3


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"method.lam": 1.5}, "method.lam"),
        ({"method": {"n_mutations": 0}}, "method.n_mutations"),
        ({"search.crossover": "random"}, "search.crossover"),
        ({"backbone.template": "a photo of {classname}"}, "backbone.template"),
        ({"backbone": {"template": "{classname} {oops} {description}"}}, "backbone.template"),
        ({"method.lamda": 0.9}, "method.lamda"),
        ({"lamda": 0.9}, "lamda"),
        ({"data.name": "flowers102"}, "data.root"),
        ({"dataset": "flowers102"}, "data.root"),
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


def test_template_default_depends_on_the_backbone() -> None:
    from visfeed.state.config import RunConfig
    from visfeed.state.templates import DEFAULT_TEMPLATE, NAMELESS_TEMPLATE

    assert RunConfig().resolved_template == NAMELESS_TEMPLATE  # the world model never saw class names
    assert RunConfig(backbone={"model": "ViT-B-32", "pretrained": "openai"}).resolved_template == DEFAULT_TEMPLATE
    assert (
        RunConfig(backbone={"template": "{classname}: {description}"}).resolved_template == "{classname}: {description}"
    )


def test_projected_llm_calls_counts_init_and_proposals() -> None:
    from visfeed.state.config import RunConfig

    remote = RunConfig(llm={"provider": "openai:gpt-4o"}, method={"max_iterations": 10})
    assert remote.projected_llm_calls(26) == 3 + 10 * 4 * 3  # 3 groups of <= 10 classes
    local = RunConfig(method={"max_iterations": 5})  # prose answers: n_init=10 -> 5 two-sentence calls per class
    assert local.resolved_answer_format == "prose" and remote.resolved_answer_format == "json"
    assert local.projected_llm_calls(26) == 26 * 5 + 5 * 2 * 26
    assert local.with_updates(llm={"answer_format": "json"}).projected_llm_calls(26) == 26 + 5 * 2 * 26
    prose_groups = remote.with_updates(llm={"answer_format": "prose"}, method={"n_init": 4, "max_iterations": 1})
    assert prose_groups.projected_llm_calls(26) == 26 * 2 + 1 * 4 * 26  # one call per class, not per group


def test_old_flat_llm_keys_load_into_llm(tmp_path: Path) -> None:
    """config.yaml files written before the LLM knobs were nested must still load, so old runs resume."""
    old = tmp_path / "config.yaml"
    old.write_text("llm_timeout_s: 7.5\nllm_max_retries: 1\nllm_backoff_s: 0.25\nmax_concurrency: 3\nseed: 4\n")
    cfg = RunConfig.load(old)
    assert (cfg.llm.timeout_s, cfg.llm.max_retries, cfg.llm.backoff_base_s, cfg.llm.max_concurrency) == (
        7.5,
        1,
        0.25,
        3,
    )
    assert RunConfig.from_mapping(cfg.to_file_dict()) == cfg  # the nested form round-trips
    overridden = RunConfig.load(old, overrides={"llm_timeout_s": 2.0})
    assert overridden.llm.timeout_s == 2.0 and overridden.llm.max_retries == 1
    settings = cfg.llm_settings
    assert (settings.timeout_s, settings.seed, settings.temperature) == (7.5, 4, cfg.resolved_temperature)
    with pytest.raises(ConfigError, match=r"llm\.timeout_s \(llm_timeout_s\)"):
        RunConfig.from_mapping({"llm_timeout_s": 0})


def test_logit_scale_defaults_to_the_backbones_and_old_files_keep_theirs(tmp_path):
    assert RunConfig().method.logit_scale is None  # None: the backbone's own learned scale
    old = tmp_path / "config.yaml"  # a run directory written when the field defaulted to CLIP's 100
    old.write_text("logit_scale: 100.0\nlam: 0.9\n")
    assert RunConfig.load(old).method.logit_scale == 100.0
    assert RunConfig.load(None, {"method.logit_scale": 25.0}).method.logit_scale == 25.0
    with pytest.raises(ConfigError, match="logit_scale"):
        RunConfig.from_mapping({"method.logit_scale": 0})
