"""The concept-tree graph on the scripted chat model: structure, junk filtering, de-duplication, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.support.scripted_provider import Interrupt, ScriptedChat

from visfeed.agents.concepts import TREE_FILE, build_tree
from visfeed.state.concepts import ConceptSettings, ConceptTree
from visfeed.state.config import RunConfig
from visfeed.tools.llm import ProviderHandle

ATTRS = {"lemon": ["yellow", "oval"], "lime": ["green", "oval"], "cherry": ["red", "round"]}
CLASSES = list(ATTRS)


def handle(chat: ScriptedChat) -> ProviderHandle:
    return ProviderHandle(provider="scripted", model="scripted-1", chat_model=chat, structured_mode="prompt")


def config(tmp_path: Path) -> RunConfig:
    return RunConfig(
        llm={"provider": "scripted", "max_concurrency": 2}, backbone={"model": "synthetic", "device": "cpu"}
    )


def build(tmp_path: Path, chat: ScriptedChat, *, resume: bool = False, **settings: object):
    return build_tree(
        tmp_path / "tree", config(tmp_path), ConceptSettings(**settings), CLASSES, "fruit", handle(chat), resume=resume
    )


def test_tree_has_parts_subparts_and_merged_values(tmp_path: Path) -> None:
    chat = ScriptedChat(attrs=ATTRS)
    result = build(tmp_path, chat)
    tree = ConceptTree.load(tmp_path / "tree" / TREE_FILE)
    assert [p for p, _ in tree.leaf_parts()] == ["skin", "top/leaf", "flesh"]  # 'top' under top is dropped
    assert all(len(part.attributes) == 2 for _, part in tree.leaf_parts())
    # schema-word echoes are dropped and counted, not kept as parts or attributes
    assert result.rejected.get("part: markup", 0) >= 1 and result.rejected.get("attribute: markup", 0) >= 1
    # values are normalised ("The Oval." -> "oval") and one clue lists every class that has it
    keys = [(v.part, v.attribute, v.value) for v in tree.values]
    assert len(keys) == len(set(keys))
    assert all(v.value == v.value.casefold() and not v.value.startswith("the ") for v in tree.values)
    shared = [v for v in tree.values if len(v.classes) > 1]
    assert shared and {v.value for v in tree.values} <= {w for ws in ATTRS.values() for w in ws}
    assert tree.clues()[0].text.startswith("the ")
    assert result.clues == len(tree.values)


def test_resumed_build_repeats_no_llm_call(tmp_path: Path) -> None:
    whole = ScriptedChat(attrs=ATTRS)
    build(tmp_path / "whole", whole)
    crashing = ScriptedChat(attrs=ATTRS, fail_on_call=12)
    with pytest.raises(Interrupt):
        build(tmp_path, crashing)
    assert not (tmp_path / "tree" / TREE_FILE).exists()
    again = ScriptedChat(attrs=ATTRS)
    build(tmp_path, again, resume=True)
    first, second = crashing.answered, again.answered
    assert first and second
    assert not set(first) & set(second), "a resumed build asked a prompt again"
    assert sorted(first + second) == sorted(whole.answered)  # together, exactly the calls of one whole build
    a = json.loads((tmp_path / "tree" / TREE_FILE).read_text())
    b = json.loads((tmp_path / "whole" / "tree" / TREE_FILE).read_text())
    assert a == b


def test_user_parts_and_attributes_skip_those_calls(tmp_path: Path) -> None:
    chat = ScriptedChat(attrs=ATTRS)
    build(tmp_path, chat, parts=["Skin"], attributes=["colour"], depth=1)
    tree = ConceptTree.load(tmp_path / "tree" / TREE_FILE)
    assert [p for p, _ in tree.leaf_parts()] == ["skin"] and tree.parts[0].attributes == ["colour"]
    assert chat.state["calls"] == len(CLASSES)  # one value request per class, nothing else


def test_a_second_build_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    build(tmp_path, ScriptedChat(attrs=ATTRS))
    with pytest.raises(Exception, match="already holds a tree build"):
        build(tmp_path, ScriptedChat(attrs=ATTRS))


@pytest.mark.parametrize(
    ("answer", "kept", "reason"),
    [
        ("The color of the skin of a lime is bright green.", "bright green", None),
        ("Light Green", "light green", None),
        ("black, not red", None, "negation"),
        ("One to five words.", None, "copies the prompt"),  # the schema's own field description
        ("lime", None, "copies the prompt"),
        ("The skin of a plum is typically green, with the fruit being usually red.", None, "more than 5 words"),
        ('{"value": "x"}', None, "markup"),
        ("type of object", None, "placeholder"),
    ],
)
def test_screen_keeps_values_and_names_why_it_drops(answer: str, kept: str | None, reason: str | None) -> None:
    from visfeed.agents.concepts.nodes import concept_messages
    from visfeed.agents.concepts.schemas import screen

    prompt = str(
        concept_messages("value", thing="a lime", domain="fruit", attribute="color", part="skin", words=5)[-1].content
    )
    text, why = screen(answer, own="lime", prompt=prompt, max_words=5)
    assert why == reason
    if kept is not None:
        assert text == kept


def test_build_stops_at_the_llm_budget(tmp_path: Path) -> None:
    chat = ScriptedChat(attrs=ATTRS)
    cfg = config(tmp_path).with_updates({"budget.max_calls": 2})
    settings = ConceptSettings(parts=["skin"], attributes=["color"], depth=1)
    result = build_tree(tmp_path / "tree", cfg, settings, CLASSES, "fruit", handle(chat))
    assert chat.state["calls"] == 2  # three value requests, two allowed
    assert result.llm["calls"] == 2
    assert result.rejected == {"value: no valid answer": 1}
    tree = ConceptTree.load(tmp_path / "tree" / TREE_FILE)
    assert sum(len(v.classes) for v in tree.values) == 2


@pytest.mark.parametrize(
    "name",
    ["part1", "part2/partlist", "part3,", "attribute1", "valueattribute1", "value1,", "attr3", "parts", "model",
     "the-description", "picture_detail.jpg", "target_path", "data-type", "id"],
)  # fmt: skip
def test_placeholder_names_are_junk(name: str) -> None:
    from visfeed.agents.concepts.schemas import name_reason, screen

    prompt = "List up to 4 visible parts of an object."
    text, why = screen(name, own="", prompt=prompt, max_words=3)
    assert (why or name_reason(text)) is not None
    assert screen("leafy top", own="", prompt=prompt, max_words=3)[1] is None and name_reason("leafy top") is None


WRONG = {"lemon": ["brown"], "lime": ["red"], "cherry": ["yellow"]}
"""The LLM's one answer to every question about a class, wrong each time (a lemon with a brown skin)."""


def evidence(per_class: int = 6):
    """The test world's images of CLASSES (each image: its class's true words, see ATTRS) and its encoder."""
    from tests.agents.conftest import SyntheticEncoder, word_vec

    from visfeed.tools.concepts.grounding import ImageEvidence
    from visfeed.tools.feedback.visual_words import parse_vocabulary

    rng = np.random.default_rng(0)
    embs, labels = [], []
    for ci, c in enumerate(CLASSES):
        for _ in range(per_class):
            v = sum(word_vec(w) for w in ATTRS[c]) + rng.standard_normal(64) * 1.5
            embs.append(v / np.linalg.norm(v))
            labels.append(ci)
    vocab = parse_vocabulary("[colour]\nred\ngreen\nyellow\nbrown\nblue\n[shape]\nround\noval\nlong\n", "test")
    return ImageEvidence(
        encoder=SyntheticEncoder(), image_emb=np.stack(embs), labels=np.asarray(labels), vocabulary=vocab
    )


def test_grounded_values_follow_the_images_and_record_the_llm(tmp_path: Path) -> None:
    settings = ConceptSettings(parts=["skin"], attributes=["color", "shape"], depth=1)
    cfg = config(tmp_path)
    build_tree(tmp_path / "g", cfg, settings, CLASSES, "fruit", handle(ScriptedChat(attrs=WRONG)), evidence=evidence())
    grounded = ConceptTree.load(tmp_path / "g" / TREE_FILE)
    truth = {(c, a): ATTRS[c][i] for c in CLASSES for i, a in enumerate(("color", "shape"))}
    got = {(s.class_name, s.attribute): s.value for s in grounded.sources}
    assert got == truth  # every value the images' own, none the LLM's
    assert {(c, v.attribute): v.value for v in grounded.values for c in v.classes} == truth
    lemon = next(s for s in grounded.sources if s.class_name == "lemon" and s.attribute == "color")
    assert lemon.origin == "llm_overruled" and lemon.note() == "LLM: brown; images: yellow"
    assert lemon.llm_support is not None and lemon.support is not None and lemon.support > lemon.llm_support
    shape = next(s for s in grounded.sources if s.class_name == "lemon" and s.attribute == "shape")
    assert shape.llm_value == "brown" and shape.llm_support is None  # a colour is no candidate shape
    build = json.loads((tmp_path / "g" / "build.json").read_text())
    assert build["grounded"] and build["origins"] == {"llm_overruled": 6}
    assert "lemon skin color: LLM: brown; images: yellow" in build["disagreements"]
    # the same answers kept unchecked (--llm-only): the LLM's wrong values, no sources
    only = settings.model_copy(update={"ground": False})
    build_tree(tmp_path / "l", cfg, only, CLASSES, "fruit", handle(ScriptedChat(attrs=WRONG)), evidence=evidence())
    llm_tree = ConceptTree.load(tmp_path / "l" / TREE_FILE)
    assert not llm_tree.sources
    assert {(c, v.attribute): v.value for v in llm_tree.values for c in v.classes} == {
        (c, a): WRONG[c][0] for c in CLASSES for a in ("color", "shape")
    }


def test_facets_stand_in_when_the_llm_gives_no_usable_part(tmp_path: Path) -> None:
    junk = [json.dumps({"parts": ["part1", "part2/partlist", "part3,"]})] + [json.dumps({"value": "value1"})] * 12
    chat = ScriptedChat(script=junk)
    result = build_tree(
        tmp_path / "t", config(tmp_path), ConceptSettings(depth=1), CLASSES, "fruit", handle(chat),
        evidence=evidence(),
    )  # fmt: skip
    assert result.structure == "facets" and result.rejected["part: placeholder"] == 3
    assert result.structured_mode == "prompt"  # the scripted provider constrains nothing
    tree = ConceptTree.load(tmp_path / "t" / TREE_FILE)
    assert [p for p, _ in tree.leaf_parts()] == ["fruit"]
    colour = {c: v.value for v in tree.values if v.attribute == "color" for c in v.classes}
    assert colour == {c: ATTRS[c][0] for c in CLASSES}
    assert {s.origin for s in tree.sources} == {"images"}  # every LLM value was a placeholder


class CheckpointLost(RuntimeError):
    """Stands in for a kill while a checkpoint is being written (its node's writes are already saved)."""


def test_build_resumes_when_the_last_checkpoint_was_lost_after_its_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # LangGraph's snapshot leaves out of ``next`` a task whose writes were saved before its checkpoint was
    # lost; a resume that trusted ``next`` took the build for finished and ended without a tree.
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    whole = ScriptedChat(attrs=ATTRS)
    build(tmp_path / "whole", whole)
    aput = AsyncSqliteSaver.aput

    async def losing_aput(self: AsyncSqliteSaver, config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        if metadata.get("source") == "loop" and "branch:to:assemble_tree" in versions:  # after ground_values
            raise CheckpointLost("killed while writing the checkpoint after ground_values")
        return await aput(self, config, checkpoint, metadata, versions)

    monkeypatch.setattr(AsyncSqliteSaver, "aput", losing_aput)
    with pytest.raises(CheckpointLost):
        build(tmp_path, ScriptedChat(attrs=ATTRS))
    monkeypatch.setattr(AsyncSqliteSaver, "aput", aput)
    assert not (tmp_path / "tree" / TREE_FILE).exists()
    again = ScriptedChat(attrs=ATTRS)
    build(tmp_path, again, resume=True)
    assert not again.answered  # every answer came from the cache
    a = json.loads((tmp_path / "tree" / TREE_FILE).read_text())
    b = json.loads((tmp_path / "whole" / "tree" / TREE_FILE).read_text())
    assert a == b
