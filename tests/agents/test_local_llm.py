"""The graph with the real embedded model (SmolLM2 behind llama_cpp.server) on the tiny world."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from tests.agents.conftest import CLASSES, CountingTest, SyntheticEncoder, make_split

from visfeed.agents.prompting import prose_requests
from visfeed.agents.prose import ask_prose
from visfeed.agents.resources import RunResources
from visfeed.agents.run import optimize
from visfeed.agents.trace import Tracer
from visfeed.state.llm import LLMSettings
from visfeed.state.rundir import read_trace
from visfeed.tools.llm import LLMClient

_VISUAL = (
    "red yellow green orange brown white black pink purple golden bright pale dark round oval long curved "
    "small large tiny thin thick smooth rough shiny glossy waxy bumpy wrinkled soft firm juicy textured "
    "spherical elongated pointed dimpled translucent vibrant"
)
VISUAL_WORDS = set(_VISUAL.split())  # colour, shape and texture words


@pytest.mark.slow
def test_real_local_model_answers_prose_with_visual_words(local_llm_handle, tmp_path: Path):
    client = LLMClient(local_llm_handle, LLMSettings(max_tokens=120, temperature=0.8, seed=0))
    tracer = Tracer(tmp_path)
    batch = asyncio.run(
        ask_prose(
            client, tracer, ["lemon"], prose_requests(["its color", "its surface and texture"]), task="t", salt="t"
        )
    )
    tracer.close()
    assert batch is not None, [e for e in read_trace(tmp_path) if e["event"] == "llm_invalid"]
    descs = batch.classes[0].descriptions
    assert any(VISUAL_WORDS & set(re.findall(r"[a-z]+", d.lower())) for d in descs), descs
    assert client.totals.calls == 2 and all(r.completion_tokens > 0 for r in client.records)


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
        llm={"provider": "local", "max_tokens": 300},
        method={"n_init": 4, "n_new": 3, "n_mutations": 2, "classes_per_call": 1, "max_iterations": 1},
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
