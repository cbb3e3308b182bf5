"""The concept-tree graph on the scripted chat model: structure, junk filtering, de-duplication, resume."""

from __future__ import annotations

import json
from pathlib import Path

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
    return RunConfig(provider="scripted", backbone="synthetic", device="cpu", max_concurrency=2)


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
