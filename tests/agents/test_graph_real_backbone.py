"""One run through ``build_resources`` with the real parts: the rendered world, open_clip and visfeed-market.

Only the LLM is scripted (the plug-in of tests/support, loaded by its provider spec as a user's would be).
Three classes, two images each, one iteration, so it runs in seconds; the default backbone's images are
rendered and embedded by the very code a real run uses, and its learned logit scale (about 25.7, not
CLIP's 100) is the one the lambda test uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from visfeed.agents.run import optimize
from visfeed.state.config import RunConfig
from visfeed.state.rundir import read_trace

SPEC = """\
name: three-fruit
classes:
  - {name: lemon, color: yellow, shape: oval, pattern: dimples, size: medium}
  - {name: lime, color: green, shape: round, pattern: smooth, size: small}
  - {name: banana, color: yellow, shape: curved, top: stem, size: large}
"""
MARKET_SCALE = 25.73  # final_logit_scale of the shipped tower (assets/market_vlm.json)


def test_run_with_the_embedded_backbone_uses_its_learned_logit_scale(tmp_path: Path) -> None:
    spec = tmp_path / "three.yaml"
    spec.write_text(SPEC)
    cfg = RunConfig(
        data={"name": "world", "world_spec": spec, "k_shot": 2, "n_val": 0, "n_test": 2},
        llm={"provider": "support.scripted_provider:make"},
        run_dir=tmp_path / "run",
        backbone={"embedding_cache": tmp_path / "embeddings.sqlite", "device": "cpu"},
        method={
            "n_init": 3,
            "n_new": 2,
            "n_mutations": 1,
            "classes_per_call": 3,
            "max_iterations": 1,
            "mutate_scope": "all",
        },
    )
    assert cfg.method.logit_scale is None  # nobody chose one: the backbone's own
    result = optimize(cfg)
    assert result.status == "completed", result.error
    assert result.n_classes == 3 and result.iterations == 1
    assert result.logit_scale == pytest.approx(MARKET_SCALE, abs=0.01)
    assert result.logit_scale_source == "backbone"
    start = next(e for e in read_trace(cfg.run_dir, events={"run_start"}))
    assert start["backbone"].startswith("visfeed-market") and start["logit_scale"] == result.logit_scale
    mutate = [e for e in read_trace(cfg.run_dir, events={"llm_call"}) if e["task"] == "mutate"]
    assert mutate and all(e["response"] is not None for e in mutate)
