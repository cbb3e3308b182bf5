"""A run and the image side read the process environment themselves and hand it to the tools.

Tools read no environment variables (tests/tools/llm/test_llm_providers.py, tests/tools/datasets/world);
these are the callers that keep what a user sees unchanged: ``OPENAI_API_KEY`` in the shell still reaches
the provider, and ``VISFEED_CACHE_DIR`` still moves every cache a run writes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from visfeed.agents.resources import build_scoring, provider_handle
from visfeed.errors import ConfigError
from visfeed.evals.image_side import open_mllm
from visfeed.state.config import RunConfig

KEY = "sk-from-the-shell-0123"


def test_a_run_gives_its_provider_the_key_from_the_shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = RunConfig(llm={"provider": "openai:gpt-4o-mini"}, run_dir=tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="set OPENAI_API_KEY"):
        provider_handle(cfg)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    handle = provider_handle(cfg)
    assert handle.provider == "openai" and handle.redact(KEY) == "***"  # the shell's key is the one held


def test_the_image_side_gives_its_provider_the_key_from_the_shell(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="set OPENAI_API_KEY"):
        open_mllm("openai:gpt-4o-mini", base_url=None, cache_path=tmp_path / "c.sqlite", seed=0)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    handle, client = open_mllm("openai:gpt-4o-mini", base_url=None, cache_path=tmp_path / "c.sqlite", seed=0)
    assert handle.redact(KEY) == "***" and client.handle is handle


def test_a_run_puts_its_caches_where_the_shell_says(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The world's pictures, the assembled default backbone and the embeddings all land in $VISFEED_CACHE_DIR."""
    cache = tmp_path / "vcache"
    monkeypatch.setenv("VISFEED_CACHE_DIR", str(cache))
    cfg = RunConfig(data={"k_shot": 1, "n_val": 0, "n_test": 1}, backbone={"device": "cpu"}, run_dir=tmp_path / "run")
    data = build_scoring(cfg)
    assert len(data.classnames) > 1
    assert len(list((cache / "world").glob("*/manifest.json"))) == 1
    assert data.feedback.paths and all(Path(p).is_relative_to(cache / "world") for p in data.feedback.paths)
    assert list((cache / "models").glob("*.pt")) and (cache / "embeddings.sqlite").is_file()
