"""The prose answer format and the content filter every answer passes (realistic small-model output)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.agents.conftest import fruit_chat

from visfeed.agents.prompting import prose_messages, prose_requests
from visfeed.agents.prose import ask_prose, parse_prose
from visfeed.agents.schemas import ClassEntry, DescriptionBatch, batch_to_map, junk_reason
from visfeed.agents.trace import Tracer
from visfeed.state.rundir import read_trace
from visfeed.tools.llm import LLMClient, ProviderHandle

# What SmolLM2-135M put into the JSON list under the json_object_schema grammar (trace of a world run).
CHERRY_JSON_ANSWER = [
    "title.", "type'r.", "text.", "value.", "type.", "class: 'cherry', description:.", "a bright red body",
    "an impressive scale.", "large black wheels", "red skin.", "A cherry.", "small black wheels.",
]  # fmt: skip
LEMON_JSON_ANSWER = [
    "]\n{", "type_int", "title:green apple", "the sun.", "classname.A LEMON.", "description_1 :.",
    "keyword,2017-08-09T23:46:51.084Z+c9bzXgF", "Description for a class with shape, size and proportions:.",
    "1. The most obvious description of the image is a red apple, but it's actually orange.",
    "a long, slender body with black wheels",
]  # fmt: skip


def test_json_junk_keeps_only_texts_with_content():
    batch = DescriptionBatch(
        classes=[
            ClassEntry(class_name="cherry", descriptions=CHERRY_JSON_ANSWER),
            ClassEntry(class_name="lemon", descriptions=LEMON_JSON_ANSWER),
        ]
    )
    out = batch_to_map(batch, ["cherry", "lemon"], limit=10)
    # schema keys, one-word fragments, worked-example copies, ids and markup are gone; wrong but real
    # descriptions stay (selection by visual feedback judges those; the filter node drops other class names)
    assert out == {
        "cherry": ["an impressive scale", "red skin", "small black wheels"],
        "lemon": [
            "The most obvious description of the image is a red apple, but it's actually orange",
            "a long, slender body with black wheels",
        ],
    }


def test_prose_words_that_are_also_schema_keys_are_kept_in_prose():
    assert junk_reason("A corn is a type of fruit with rows of kernels", "corn") is None
    assert junk_reason("a class of small round red fruit", "cherry") is None
    for key_like in ("type'r", "class: 'cherry', description:", "description_1 :", "title:green apple", "type_int"):
        assert junk_reason(key_like, "cherry") == "markup", key_like
    assert junk_reason("Description for a class with shape, size and proportions:", "lemon") == "markup"


def test_junk_reason_names_why_and_spares_the_own_class_name():
    assert junk_reason("title", "cherry") == "schema word 'title'"
    assert junk_reason("the sun", "lemon") == "fewer than 2 content words"
    assert junk_reason("its shape and size", "lemon") == "copies the instructions"  # a prose aspect
    assert junk_reason("surface texture and distinctive parts", "lemon") == "copies the instructions"  # a focus
    assert junk_reason("use the class name exactly as given", "x") is not None
    assert junk_reason("a worn paper title page", "title page") is None  # schema word inside the own name
    assert junk_reason("a bright yellow oval fruit", "lemon") is None


PROMPT = prose_messages("lemon", aspect="its color", confused=["lime"])[1].content


def test_prose_prompt_is_plain_and_keeps_aspect_and_confusion():
    system, human = prose_messages("orange", aspect="its color", confused=["lemon", "red apple"])
    assert human.content == (
        "Describe what an orange looks like in two short sentences: its color. Do not mention a lemon or a red apple."
    )
    assert "JSON" not in system.content + human.content and "{" not in human.content
    requests = prose_requests(["its color", "its outline"], {"lime": ["lemon", "pear", "plum"]})("lime")
    assert [m[1].content for m in requests] == [
        "Describe what a lime looks like in two short sentences: its color. Do not mention a lemon or a pear.",
        "Describe what a lime looks like in two short sentences: its outline. Do not mention a lemon or a pear.",
    ]


def test_prose_replies_are_split_cleaned_and_filtered():
    plain = (
        "The lemon has a delicate, almost translucent appearance with the shape of an elongated, rounded wedge. "
        "It's made up of individual segments that are slightly curved and irregularly shaped."
    )
    assert parse_prose(plain, "lemon", PROMPT) == [
        "The lemon has a delicate, almost translucent appearance with the shape of an elongated, rounded wedge",
        "It's made up of individual segments that are slightly curved and irregularly shaped",
    ]
    listed = (
        "Sure! Here are two sentences about a lemon:\n1. Color: A lemon has bright yellow skin.\n"
        "2. It is oval with pointed ends.\n- It is oval with pointed ends.\ntitle."
    )
    assert parse_prose(listed, "lemon", PROMPT) == ["A lemon has bright yellow skin", "It is oval with pointed ends"]
    echo = "In two short sentences, describe what a lemon looks like: its color. Do not mention a lime."
    assert parse_prose(echo, "lemon", PROMPT) == []  # reordered copies of the request
    json_anyway = '{"descriptions": ["a small yellow fruit", "type", "a waxy dimpled skin"]}'
    assert parse_prose(json_anyway, "lemon", PROMPT) == ["a small yellow fruit", "a waxy dimpled skin"]


def test_ask_prose_sends_one_call_per_class_and_traces_unusable_replies(tmp_path: Path):
    chat = fruit_chat(good_rate=1.0)
    client = LLMClient(ProviderHandle(provider="scripted", model="s", chat_model=chat))
    tracer = Tracer(tmp_path)
    batch = asyncio.run(
        ask_prose(
            client, tracer, ["apple", "durian"], prose_requests(["its color", "its outline"]), task="init", salt="t"
        )
    )
    tracer.close()
    assert len(chat.answered) == 4  # two classes x two aspects; the group is never sent as one prompt
    assert batch is not None and [e.class_name for e in batch.classes] == ["apple"]
    descs = batch.classes[0].descriptions
    assert descs and all("title" not in d and "Sure" not in d for d in descs)
    assert all(any(w in d for w in ("red", "round", "stem")) for d in descs)
    invalid = [e for e in read_trace(tmp_path) if e["event"] == "llm_invalid"]
    assert [e["salt"] for e in invalid] == ["t:durian:p0", "t:durian:p1"]
