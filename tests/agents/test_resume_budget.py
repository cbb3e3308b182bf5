"""Checkpoint + resume, the budget stop, patience, validation and the agent mode, end to end."""

from __future__ import annotations

import json

import pytest
import yaml
from tests.agents.conftest import fruit_chat
from tests.support.legacy_config import flat_dump

from visfeed.agents.resources import EmbeddedSplit
from visfeed.agents.run import optimize, resume
from visfeed.errors import ConfigError
from visfeed.state.rundir import CONFIG_FILE, load_result, read_trace


def _summary(result, run_dir):
    return (
        [(h.feedback.n_correct, round(h.feedback.mean_margin, 6)) for h in result.history],
        json.loads((run_dir / "descriptions.json").read_text()),
        result.optimized.test_accuracy,
        {k: v.test_accuracy for k, v in result.baselines.items()},
    )


@pytest.mark.parametrize("fail_with", ["interrupt", "error"])
def test_resume_after_interruption_matches_uninterrupted_run(base_config, make_resources, fail_with):
    ref_chat = fruit_chat()
    ref_cfg = base_config("ref", llm={"max_concurrency": 1})
    ref = optimize(ref_cfg, resources=make_resources(ref_chat))
    assert ref.status == "completed"

    cut_chat = fruit_chat(fail_on_call=12, fail_with=fail_with)
    cfg = base_config("cut", llm={"max_concurrency": 1})
    first = optimize(cfg, resources=make_resources(cut_chat))
    if fail_with == "interrupt":
        assert first.status == "interrupted"
    else:
        assert first.status.startswith("failed: ProviderError") and "scripted failure" in first.error
    assert load_result(cfg.run_dir).status == first.status
    assert not (cfg.run_dir / "descriptions.json").exists()
    if fail_with == "interrupt":  # a run directory written before the config had sections resumes the same
        (cfg.run_dir / CONFIG_FILE).write_text(yaml.safe_dump(flat_dump(cfg)))

    again_chat = fruit_chat()
    second = resume(cfg.run_dir, resources=make_resources(again_chat))
    assert second.status == "completed"
    assert _summary(second, cfg.run_dir) == _summary(ref, ref_cfg.run_dir)
    # no LLM call is repeated: the two processes answered disjoint prompts that together are the reference's
    assert not set(cut_chat.answered) & set(again_chat.answered)
    assert sorted(cut_chat.answered + again_chat.answered) == sorted(ref_chat.answered)
    # the budget ledger spans both processes; a call that failed at the provider was sent, so it counts
    assert second.llm["calls"] == ref.llm["calls"] + (1 if fail_with == "error" else 0)
    assert any(e["event"] == "resume" for e in read_trace(cfg.run_dir))
    # resuming a finished run returns its result without any work
    idle_chat = fruit_chat()
    assert resume(cfg.run_dir, resources=make_resources(idle_chat)).status == "completed"
    assert idle_chat.answered == []


def test_optimize_refuses_a_used_run_dir(base_config, make_resources):
    cfg = base_config(method={"max_iterations": 0})
    assert optimize(cfg, resources=make_resources(fruit_chat())).status == "completed"
    with pytest.raises(ConfigError, match="run_dir"):
        optimize(cfg, resources=make_resources(fruit_chat()))


def test_budget_stop_is_clean(base_config, make_resources):
    chat = fruit_chat()
    cfg = base_config(budget={"max_calls": 3}, method={"max_iterations": 5, "patience": 5})
    result = optimize(cfg, resources=make_resources(chat))
    assert result.status == "stopped: budget"
    assert result.stop_reason == "budget"
    assert len(chat.answered) == 3 and result.llm["calls"] == 3
    assert (cfg.run_dir / "descriptions.json").is_file()
    assert result.optimized is not None and result.optimized.test_accuracy is not None
    keys = [(h.feedback.n_correct, h.feedback.mean_margin) for h in result.history]
    assert keys == sorted(keys)


def test_convergence_stops_at_patience(base_config, make_resources):
    chat = fruit_chat(useless=True)
    cfg = base_config(method={"max_iterations": 10, "patience": 2})
    result = optimize(cfg, resources=make_resources(chat))
    assert result.status == "completed"
    assert result.stop_reason == "patience"
    assert result.iterations == 2
    assert [h.improved for h in result.history] == [True, False, False]


def test_max_iterations_and_validation_selection(base_config, make_resources):
    res = make_resources(fruit_chat(), validation=True)
    cfg = base_config(method={"max_iterations": 2, "patience": 5, "use_validation": True})
    result = optimize(cfg, resources=res)
    assert result.stop_reason == "max_iterations" and result.iterations == 2
    assert all(h.validation is not None for h in result.history)
    best = max(result.history, key=lambda h: (h.validation.n_correct, h.validation.mean_margin))
    assert result.optimized.validation_accuracy == pytest.approx(best.validation.accuracy)
    assert res.test_loader.calls == 1


def test_agent_mode_calls_scoring_tools_then_submits(base_config, make_resources):
    chat = fruit_chat()
    cfg = base_config(llm={"mutation_mode": "agent"}, method={"max_iterations": 2, "patience": 5})
    result = optimize(cfg, resources=make_resources(chat, tools=True))
    assert result.status == "completed", result.error
    events = read_trace(cfg.run_dir)
    tools = [e["tool"] for e in events if e["event"] == "tool_call"]
    assert "score_descriptions" in tools and "submit_descriptions" in tools
    # the model saw the tool's real answer (the accuracy the trial set would give)
    assert chat.state["tool_messages"] and all("accuracy" in m for m in chat.state["tool_messages"])
    origins = {e["origin"] for e in events if e["event"] == "proposal"}
    assert origins == {"agent"}
    assert any(e["task"] == "agent" for e in events if e["event"] == "llm_call")


def test_agent_mode_needs_tool_support(base_config, make_resources):
    cfg = base_config(llm={"mutation_mode": "agent"}, method={"max_iterations": 1})
    result = optimize(cfg, resources=make_resources(fruit_chat(), tools=False))
    assert result.status.startswith("failed:") and "tool" in result.error


def test_the_best_iteration_is_chosen_on_validation_where_it_peaks_earlier(base_config, make_resources):
    """Feedback keeps improving while validation peaks earlier: the run must keep validation's choice.

    Validation's labels are rolled by one class, so descriptions that fit the feedback images better fit
    validation worse; a selection made on the feedback split would pick a later iteration.
    """
    res = make_resources(fruit_chat(), validation=True)
    assert res.validation is not None
    rolled = (res.validation.labels + 1) % len(res.classnames)
    res.validation = EmbeddedSplit(res.validation.image_emb, rolled)
    cfg = base_config(method={"max_iterations": 3, "patience": 5, "use_validation": True})
    result = optimize(cfg, resources=res)
    assert result.status == "completed", result.error
    val = [(h.validation.n_correct, h.validation.mean_margin) for h in result.history]
    fb = [(h.feedback.n_correct, h.feedback.mean_margin) for h in result.history]
    on_val = result.history[val.index(max(val))].iteration
    on_fb = result.history[fb.index(max(fb))].iteration
    assert on_val != on_fb, "the fixture must make the two splits disagree, or this test proves nothing"
    assert result.best_iteration == on_val
