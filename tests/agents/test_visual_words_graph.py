"""Visual feedback in words through the whole graph: prompts carry the words, the control is scored, resume is exact."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from tests.agents.conftest import ATTRS, CLASSES, DIM, SyntheticEncoder, fruit_chat

from support.scripted_provider import DISTRACTORS
from visfeed.agents.prompting import prose_messages
from visfeed.agents.run import optimize, resume
from visfeed.evals.inspect import report_data, signal_tables
from visfeed.state.rundir import read_trace
from visfeed.tools.feedback.confusion import LambdaConfusion
from visfeed.tools.feedback.render import compact_feedback
from visfeed.tools.feedback.signal import FeedbackView
from visfeed.tools.feedback.visual_words import Vocabulary, WordSource
from visfeed.tools.feedback.words import OfferedWords, VisualWords
from visfeed.tools.scoring.measures import Feedback

WORDS = sorted({w for ws in ATTRS.values() for w in ws} | set(DISTRACTORS))


def _vocab() -> Vocabulary:
    return Vocabulary(tuple(WORDS), ("words",) * len(WORDS), "test")


def _with_words(res):
    return dataclasses.replace(res, vocabulary=_vocab())


def _mutate_prompts(run_dir) -> list[str]:
    return [
        "\n".join(str(m.get("content", "")) for m in e["messages"])
        for e in read_trace(run_dir, events={"llm_call"})
        if e["task"] == "mutate"
    ]


def test_feedback_text_and_prose_prompt_carry_the_words() -> None:
    fb = Feedback(
        accuracy=0.5, mean_margin=0.0, per_class_accuracy=np.array([0.5, 1.0]), per_class_count=np.array([4, 4]),
        confusion=np.zeros((2, 2)), lam_confusion=np.array([[0, 2], [0, 0]]), top_confused=[[1], []], n_correct=4,
    )  # fmt: skip
    words = OfferedWords(class_name="lime", own=["green", "small"], against={"lemon": ["yellow", "oval"]})
    confusion = LambdaConfusion()
    view = FeedbackView(["lime", "lemon"], fb, {"lime": ["a fruit"], "lemon": ["a fruit"]})
    said = {"visual_words": {"lime": words}, confusion.name: confusion.read(view, [0])}
    source = WordSource(
        _vocab(), SyntheticEncoder(), np.eye(2, DIM, dtype=np.float32), np.array([0, 1]), ["lime", "lemon"]
    )
    signals = [VisualWords(source, 6), confusion]
    text = compact_feedback(signals, view, [0], said)
    assert text.splitlines()[2:] == [  # after the head, in registry order: the words, then the confusions
        '  Images look: green and small; unlike "lemon", whose images look: yellow and oval.',
        '  Confused with: "lemon" (2 images; described as: a fruit)',
    ]
    assert "Images look" not in compact_feedback(signals, view, [0], {confusion.name: said[confusion.name]})
    _, human = prose_messages("lime", aspect="its color", confused=["lemon"], words=["green", "small", "round"])
    assert human.content == (
        "Describe what a lime looks like in two short sentences: its color, using some of these words: green, small, "
        "round. "
        "Do not mention a lemon."
    )


def test_graph_offers_words_scores_the_control_and_traces_them(base_config, make_resources) -> None:
    chat = fruit_chat()
    cfg = base_config(method={"max_iterations": 2, "patience": 5}, signals={"visual_words": {"count": 4}})
    result = optimize(cfg, resources=_with_words(make_resources(chat)))
    assert result.status == "completed", result.error
    # the no-LLM control is in result.json beside the other baselines, and scored on the test split
    assert set(result.baselines) == {
        "names", "templates", "llm_oneshot", "waffle", "visual_words", "searched_words", "proapo", "proapo_words",
        "image_prototypes",
        "linear_probe",
    }  # fmt: skip
    stored = json.loads((cfg.run_dir / "result.json").read_text())
    assert stored["baselines"]["visual_words"]["test_accuracy"] is not None
    # every mutate prompt shows what the images look like, with the class's own attribute words first
    prompts = _mutate_prompts(cfg.run_dir)
    assert prompts and all("Images look: " in p for p in prompts)
    offered = [e for e in read_trace(cfg.run_dir, events={"visual_words"})]
    assert {e["iteration"] for e in offered} == {1, 2}
    by_class = {e["class_name"]: e["own"] for e in offered if e["iteration"] == 1}
    assert max(len(w) for w in by_class.values()) > 2  # no category cap on a vocabulary without categories
    assert all(set(by_class[c]) & set(ATTRS[c]) for c in CLASSES), by_class
    assert sum(by_class[c][0] in ATTRS[c] for c in CLASSES) >= len(CLASSES) // 2, by_class  # 4 noisy shots
    # the control's descriptions are a proposal of every mutated class, traced like the LLM's
    origins = {e["origin"] for e in read_trace(cfg.run_dir, events={"proposal"})}
    assert "visual_words" in origins and any(o.startswith("mutate") for o in origins)
    # inspectable: per class and iteration in the trace reader and the report data
    (words,) = [t for t in signal_tables(cfg.run_dir, "lemon") if t.name == "visual_words"]
    assert [it for _, it, _ in words.rows] == [1, 2] and words.rows[0][2][0] == ", ".join(by_class["lemon"])
    (shown,) = [t for t in report_data(cfg.run_dir).signals if t.name == "visual_words"]
    assert len(shown.rows) == 2 * len(CLASSES)


def test_words_off_changes_the_prompts_but_still_scores_the_control(base_config, make_resources) -> None:
    cfg = base_config(method={"max_iterations": 1, "patience": 5}, signals={"visual_words": {"enabled": False}})
    result = optimize(cfg, resources=_with_words(make_resources(fruit_chat())))
    assert result.status == "completed", result.error
    assert "visual_words" in result.baselines
    assert not any("Images look" in p for p in _mutate_prompts(cfg.run_dir))
    assert not read_trace(cfg.run_dir, events={"visual_words"})


def test_resumed_run_with_words_repeats_no_llm_call(base_config, make_resources) -> None:
    ref_chat = fruit_chat()
    ref_cfg = base_config("ref", llm={"max_concurrency": 1, "answer_format": "prose"})
    ref = optimize(ref_cfg, resources=_with_words(make_resources(ref_chat)))
    assert ref.status == "completed", ref.error
    cut_chat = fruit_chat(fail_on_call=40)
    cfg = base_config("cut", llm={"max_concurrency": 1, "answer_format": "prose"})
    assert optimize(cfg, resources=_with_words(make_resources(cut_chat))).status == "interrupted"
    again_chat = fruit_chat()
    second = resume(cfg.run_dir, resources=_with_words(make_resources(again_chat)))
    assert second.status == "completed", second.error
    assert not set(cut_chat.answered) & set(again_chat.answered)
    assert sorted(cut_chat.answered + again_chat.answered) == sorted(ref_chat.answered)
    assert second.optimized == ref.optimized and second.baselines == ref.baselines
    # prose requests name the words, and sentences built from them are kept (not dropped as echoes)
    prompts = _mutate_prompts(ref_cfg.run_dir)
    assert prompts and all("using some of these words:" in p for p in prompts)


def test_the_llm_extends_the_vocabulary_once_and_the_extension_survives_resume(base_config, make_resources) -> None:
    base = Vocabulary(("shiny", "fresh"), ("words", "words"), "test")  # no attribute word at all
    cfg = base_config(method={"max_iterations": 1, "patience": 5}, signals={"visual_words": {"extend": True}})
    chat = fruit_chat()
    result = optimize(cfg, resources=dataclasses.replace(make_resources(chat), vocabulary=base))
    assert result.status == "completed", result.error
    (added,) = [e["words"] for e in read_trace(cfg.run_dir, events={"vocabulary_extended"})]
    assert "sour" in added and "waxy" in added
    assert "apple" not in added and not any(":" in w or "description" in w for w in added)  # class name, junk
    # the words offered to the LLM come from the extended vocabulary
    offered = {w for e in read_trace(cfg.run_dir, events={"visual_words"}) for w in e["own"]}
    assert offered and offered <= set(added) | {"shiny", "fresh"} and offered & set(added)
    calls = [e for e in read_trace(cfg.run_dir, events={"llm_call"}) if e["task"] == "vocabulary"]
    assert len(calls) == 1
    # a finished run resumed does no work; the extension is in the checkpointed state
    again = fruit_chat()
    assert resume(cfg.run_dir, resources=dataclasses.replace(make_resources(again), vocabulary=base)).status == (
        "completed"
    )
    assert again.answered == []


def test_vocabulary_reply_parsing_drops_junk_and_class_names() -> None:
    from visfeed.agents.nodes.vocabulary import parse_vocabulary_reply

    reply = "Here you go:\n1. Bright Yellow\n- waxy, ribbed\n- lemon peel\n- title:\n- " + "x " * 12
    assert parse_vocabulary_reply(reply, ["lemon", "lime"]) == ["bright yellow", "waxy", "ribbed"]
