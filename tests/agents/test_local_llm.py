"""The graph with the real embedded model (SmolLM2 behind llama_cpp.server) on the tiny world."""

from __future__ import annotations

import pytest
from tests.agents.conftest import CLASSES, CountingTest, SyntheticEncoder, make_split

from visfeed.agents.resources import RunResources
from visfeed.agents.run import optimize
from visfeed.agents.trace import read_trace


@pytest.mark.slow
def test_real_local_model_runs_one_iteration(local_llm_handle, base_config):
    res = RunResources(
        dataset="tiny",
        classnames=list(CLASSES),
        encoder=SyntheticEncoder(),
        feedback=make_split(4, seed=1),
        test_loader=CountingTest(make_split(10, seed=3)),
        handle=local_llm_handle,
    )
    cfg = base_config(
        provider="local", n_init=4, n_new=3, n_mutations=2, classes_per_call=1, max_iterations=1, max_tokens=300
    )
    result = optimize(cfg, resources=res)
    assert result.status == "completed", result.error
    assert len(result.history) == 2
    assert result.history[1].feedback.n_correct >= result.history[0].feedback.n_correct
    events = read_trace(cfg.run_dir)
    sent = [e for e in events if e["event"] == "llm_call" and not e["cache_hit"]]
    assert sent and all(e["completion_tokens"] > 0 for e in sent if e["error"] is None)
    fallbacks = [e for e in events if e["event"] == "init_fallback"]
    assert len(fallbacks) < len(CLASSES)  # the model wrote real descriptions for most classes
