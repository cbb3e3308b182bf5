"""End-to-end runs of the optimization graph on the tiny world with the scripted chat model."""

from __future__ import annotations

import json

from tests.agents.conftest import CLASSES, fruit_chat

from visfeed.agents.run import optimize
from visfeed.state.rundir import load_result, read_trace


def test_run_end_to_end_improves_and_writes_run_dir(base_config, make_resources):
    chat = fruit_chat(require=["Current:", "images correct"])
    res = make_resources(chat)
    cfg = base_config(method={"max_iterations": 3, "patience": 3})
    result = optimize(cfg, resources=res)
    assert result.status == "completed", result.error
    run_dir = cfg.run_dir
    for name in ("config.yaml", "checkpoints.sqlite", "trace.jsonl", "descriptions.json", "result.json"):
        assert (run_dir / name).is_file(), name
    # elitism: the feedback objective never goes down, and the best is at least the initial one
    keys = [(h.feedback.n_correct, h.feedback.mean_margin) for h in result.history]
    assert keys == sorted(keys)
    assert len(result.history) == result.iterations + 1 == 4
    assert result.optimized is not None
    assert result.optimized.feedback_accuracy >= result.history[0].feedback.accuracy
    assert result.optimized.feedback_accuracy > result.baselines["names"].feedback_accuracy
    assert set(result.baselines) == {
        "names",
        "templates",
        "llm_oneshot",
        "waffle",
        "proapo",
        "image_prototypes",
        "linear_probe",
    }
    assert {n for n, s in result.baselines.items() if s.uses_images} == {"image_prototypes", "linear_probe"}
    assert result.baselines["llm_oneshot"].feedback_accuracy == result.history[0].feedback.accuracy
    # the test split is touched once, after the graph
    assert res.test_loader.calls == 1
    # CuPL output: every class, full prompt sentences that carry the class name
    cupl = json.loads((run_dir / "descriptions.json").read_text())
    assert list(cupl) == CLASSES
    assert all(p.startswith(f"{c}, which has ") and p.endswith(".") for c, ps in cupl.items() for p in ps)
    stored = load_result(run_dir)
    assert stored is not None and stored.status == "completed"
    assert stored.history[-1].feedback == result.history[-1].feedback
    # traces: node events, every LLM call, objective per iteration, lineage
    events = read_trace(run_dir)
    kinds = {e["event"] for e in events}
    assert {
        "run_start",
        "node_start",
        "node_end",
        "llm_call",
        "iteration",
        "lineage_add",
        "evaluation",
        "run_end",
    } <= kinds
    llm = [e for e in events if e["event"] == "llm_call"]
    assert len(llm) == len(chat.answered) > 0
    # every mutation prompt was checked for the feedback it must carry (the check cannot pass by not running)
    assert chat.checked == sum(e["task"] == "mutate" and not e["cache_hit"] for e in llm) > 0
    assert chat.violations == []
    assert result.logit_scale == 100.0 and result.logit_scale_source == "fallback"  # a text table has no scale
    assert all(e["messages"] and e["response"] is not None for e in llm)
    assert [e["iteration"] for e in events if e["event"] == "iteration"] == [0, 1, 2, 3]
    ends = [e for e in events if e["event"] == "node_end"]
    assert all(e["duration_s"] >= 0 for e in ends)
    # the test evaluation comes after the last iteration
    order = [e["event"] for e in events]
    assert order.index("evaluation") > max(i for i, k in enumerate(order) if k == "iteration")
    assert result.timings["wall_s"] > 0 and 0 <= result.timings["non_llm_fraction"] <= 1


def test_one_class_per_call_uses_the_flat_schema(base_config, make_resources):
    chat = fruit_chat()
    cfg = base_config(method={"classes_per_call": 1, "max_iterations": 1, "n_mutations": 2})
    result = optimize(cfg, resources=make_resources(chat))
    assert result.status == "completed", result.error
    events = read_trace(cfg.run_dir)
    assert not [e for e in events if e["event"] in ("init_fallback", "llm_invalid")]
    init_calls = [e for e in events if e["event"] == "llm_call" and e["task"] == "init"]
    assert len(init_calls) == len(CLASSES)
    assert all(
        '"descriptions"' in e["response"]["content"] and '"classes"' not in e["response"]["content"] for e in init_calls
    )


def test_prose_answers_one_call_per_class_without_json(base_config, make_resources):
    chat = fruit_chat()
    cfg = base_config(
        llm={"answer_format": "prose"}, method={"classes_per_call": 3, "max_iterations": 1, "n_mutations": 2}
    )
    result = optimize(cfg, resources=make_resources(chat))
    assert result.status == "completed", result.error
    events = read_trace(cfg.run_dir)
    calls = [e for e in events if e["event"] == "llm_call"]
    init = [e for e in calls if e["task"] == "init"]
    mutate = [e for e in calls if e["task"] == "mutate"]
    # groups of three classes still go out one class (and, at init, one aspect) per call
    assert len(init) == len(CLASSES) * cfg.prose_init_calls
    assert len(mutate) == len(CLASSES) * cfg.proposals_per_class
    projection = next(e for e in events if e["event"] == "projection")
    assert projection["llm_calls"] == len(init) + len(mutate)
    prose_calls = [e for e in calls if e["task"] in ("init", "mutate", "regenerate")]
    assert all("JSON" not in m["content"] for e in prose_calls for m in e["messages"])
    assert any("Do not mention" in e["messages"][-1]["content"] for e in mutate)  # the confusions
    assert not [e for e in events if e["event"] in ("init_fallback", "llm_invalid")]
    # the sentences, not the preamble or the stray schema word, became descriptions
    initial = [e["text"] for e in events if e["event"] == "lineage_add" and e["origin"] == "init"]
    assert initial and all(t.startswith(("A ", "it is ")) for t in initial)
    assert result.optimized is not None
    assert result.optimized.feedback_accuracy >= result.history[0].feedback.accuracy
