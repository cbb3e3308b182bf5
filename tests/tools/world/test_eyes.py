"""The eyes: tiny training, their wording, and their chat model end to end (pictures in, words out)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch
from langchain_core.messages import HumanMessage

from support.scripted_provider import ScriptedChat
from visfeed.errors import ProviderError
from visfeed.state.llm import LLMSettings
from visfeed.tools.image_side.answers import classify_prompt
from visfeed.tools.llm import LLMClient, ProviderHandle, ResponseCache, resolve_provider
from visfeed.tools.llm.images import image_message
from visfeed.tools.llm.vision import DESCRIBE_PROMPT, ask_about_images, label_schema
from visfeed.tools.world.eyes.chat import EyesChat
from visfeed.tools.world.eyes.network import HIDDEN, Eyes, Seen, describe, load_image_bytes
from visfeed.tools.world.eyes.train import attribute_loss, random_batch, train_eyes
from visfeed.tools.world.settings import EyesConfig
from visfeed.tools.world.vocab import ATTRIBUTES, VOCABULARY


@pytest.fixture(scope="module")
def tiny_eyes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("eyes") / "eyes.pt"
    cfg = EyesConfig(images=96, batch_size=32, workers=0, eval_images=32, widths=(8, 8, 16, 16), depth=1)
    return out, train_eyes(cfg, out)


@pytest.fixture()
def pictures(tmp_path: Path) -> list[str]:
    from PIL import Image

    imgs, _ = random_batch(np.random.default_rng(5), 3)
    paths = []
    for i, arr in enumerate(imgs):
        paths.append(str(tmp_path / f"p{i}.png"))
        Image.fromarray(arr).save(paths[-1])
    return paths


def test_tiny_training_writes_a_checkpoint_and_its_record(tiny_eyes: tuple[Path, dict]) -> None:
    path, record = tiny_eyes
    acc = record["heldout_attribute_accuracy"]
    assert set(acc) == {*ATTRIBUTES, "mean"} and 0 <= acc["mean"] <= 100
    assert record["steps"] == 3 and record["checkpoint_bytes"] == path.stat().st_size
    eyes = Eyes.load(path)
    assert eyes.identity == record["identity"] and eyes.net.widths == (8, 8, 16, 16) and eyes.net.depth == 1
    assert set(record["heldout_by_size"]) <= {"tiny", "small", "medium", "large", "huge"}
    assert len(record["machine"]["load_average_1_5_15_at_start"]) == 3


def test_a_time_budget_ends_the_schedule_early(tmp_path: Path) -> None:
    cfg = EyesConfig(images=96, batch_size=32, workers=0, eval_images=8, widths=(8, 8, 8, 8), depth=1, minutes=1e-3)
    record = train_eyes(cfg, tmp_path / "short.pt")  # 0.06 s: less than rendering the three batches takes
    assert record["steps"] < 3 and record["images_seen"] == 32 * record["steps"]
    assert record["config"]["minutes"] == 1e-3


def test_bf16_training_keeps_float32_weights_and_counts_the_render_workers_cpu(tmp_path: Path) -> None:
    cfg = EyesConfig(
        images=32 * 500, batch_size=32, workers=1, eval_images=8, widths=(8, 8, 8, 8), depth=1, bf16=True, minutes=0.02
    )
    record = train_eyes(cfg, tmp_path / "bf16.pt")  # the 1.2 s budget stops it with the worker still rendering
    assert 0 < record["steps"] < 500 and record["config"]["bf16"] is True
    eyes = Eyes.load(tmp_path / "bf16.pt")  # loads and runs in float32 wherever it was trained
    assert all(p.dtype == torch.float32 for p in eyes.net.parameters())
    # The worker rendered for about a second (a batch of 32 takes about 35 ms): its CPU time is in the record.
    assert record["train_cpu_s"]["render_workers"] > 0.05 and record["train_cpu_s"]["trainer"] > 0


def test_the_skin_weight_scales_the_skins_share_of_the_loss_and_hidden_values_stay_out() -> None:
    _, codes = random_batch(np.random.default_rng(2), 16)
    codes_t = torch.from_numpy(codes)
    logits = {a: torch.randn(16, n, generator=torch.Generator().manual_seed(j)) for j, (a, n) in enumerate(
        (a, len(VOCABULARY[a])) for a in ATTRIBUTES
    )}  # fmt: skip
    per = {
        a: torch.nn.functional.cross_entropy(logits[a], codes_t[:, j], ignore_index=HIDDEN)
        for j, a in enumerate(ATTRIBUTES)
        if bool((codes_t[:, j] != HIDDEN).any())
    }
    assert len(per) == len(ATTRIBUTES)  # 16 random pictures show every attribute at least once
    equal = attribute_loss(logits, codes_t)
    assert float(equal) == pytest.approx(float(sum(per.values())) / len(per), rel=1e-6)
    heavy = attribute_loss(logits, codes_t, {"pattern": 3.0})
    expected = (float(sum(per.values())) + 2.0 * float(per["pattern"])) / (len(per) + 2.0)
    assert float(heavy) == pytest.approx(expected, rel=1e-6)


def test_the_eyes_wording_leaves_out_what_they_are_unsure_of() -> None:
    values = {"color": "red", "shape": "heart", "pattern": "seeds", "top": "leaf", "size": "small",
              "count": "pair", "cut": "whole", "inside": "white"}  # fmt: skip
    sure = Seen(values, dict.fromkeys(ATTRIBUTES, 0.9))
    assert (
        describe(sure) == "I see two small red heart-shaped items with tiny seeds dotting the skin and a leaf on top."
    )
    unsure = Seen(values, {**dict.fromkeys(ATTRIBUTES, 0.9), "shape": 0.1, "pattern": 0.2, "count": 0.1})
    assert describe(unsure) == "I see some small red items with a leaf on top."
    halved = Seen({**values, "cut": "halved", "count": "single"}, dict.fromkeys(ATTRIBUTES, 0.9))
    assert (
        describe(halved) == "I see one small red heart-shaped item cut in half to show white flesh and a leaf on top."
    )


def test_the_eyes_provider_reads_image_blocks_like_a_remote_mllm(
    tiny_eyes: tuple[Path, dict], pictures: list[str], tmp_path: Path
) -> None:
    path, _ = tiny_eyes
    handle = resolve_provider(f"eyes:{path}", options={"no_text": True})
    assert handle.accepts_images and handle.free and handle.provider == "eyes"
    client = LLMClient(handle, LLMSettings(), cache=ResponseCache(tmp_path / "c.sqlite"))
    answers = asyncio.run(ask_about_images(client, pictures, DESCRIBE_PROMPT, task="image_describe"))
    arrays = np.stack([load_image_bytes(Path(p).read_bytes()) for p in pictures])
    assert answers == Eyes.load(path).describe(arrays)
    assert all(a.startswith("I see ") for a in answers)
    again = asyncio.run(ask_about_images(client, pictures, DESCRIBE_PROMPT, task="image_describe"))
    assert again == answers and client.totals.cache_hits == 3 and client.totals.calls == 3


def test_other_questions_go_to_the_text_model_with_the_picture_in_words(
    tiny_eyes: tuple[Path, dict], pictures: list[str]
) -> None:
    path, _ = tiny_eyes
    eyes = Eyes.load(path)
    text = ScriptedChat(script=["lime", "never asked"])
    chat = EyesChat(eyes=eyes, text_model=text)
    question = classify_prompt(["lemon", "lime"])
    caption = eyes.describe(np.stack([load_image_bytes(Path(pictures[0]).read_bytes())]))[0]
    assert chat.invoke([image_message(pictures[0], question)]).content == "lime"
    prompt = text.state["prompts"][-1]
    assert f"What the picture shows: {caption}" in prompt and "lemon, lime" in prompt and "data:image" not in prompt
    # the same caption and question again: answered from memory, the text model is not asked twice
    assert asyncio.run(chat.ainvoke([image_message(pictures[0], question)])).content == "lime"
    assert text.state["calls"] == 1
    # without a picture, the question goes to the text model as it is
    chat.invoke([HumanMessage(content="Say hi")])
    assert text.state["prompts"][-1].endswith("Say hi")


def test_the_shipped_eyes_with_the_embedded_smollm2(local_llm_handle: ProviderHandle, pictures: list[str]) -> None:
    chat = EyesChat(eyes=Eyes.load(), text_model=local_llm_handle.chat_model.bind(extra_body={"max_tokens": 8}))
    reply = chat.invoke([image_message(pictures[0], classify_prompt(["lemon", "lime", "cherry"]))])
    assert isinstance(reply.content, str) and reply.content.strip()
    described = chat.invoke([image_message(pictures[0], DESCRIBE_PROMPT)]).content
    assert isinstance(described, str) and described.startswith("I see ")


def test_the_label_guess_is_one_of_the_class_names_by_the_servers_grammar(
    local_llm_handle: ProviderHandle, tiny_eyes: tuple[Path, dict], pictures: list[str]
) -> None:
    # names SmolLM2 would never say unprompted: only the grammar built from the enum makes them the answer
    names = ["zorblat fruit", "quimbly root", "vexnut"]
    chat = EyesChat(eyes=Eyes.load(tiny_eyes[0]), text_model=local_llm_handle.chat_model)
    schema = label_schema(names)
    for path in pictures:
        out = chat.with_structured_output(schema, include_raw=True).invoke(
            [image_message(path, classify_prompt(names))]
        )
        assert out["parsing_error"] is None and out["parsed"].label in names, out["raw"].content


def test_a_structured_question_without_a_text_model_is_refused(
    tiny_eyes: tuple[Path, dict], pictures: list[str]
) -> None:
    chat = EyesChat(eyes=Eyes.load(tiny_eyes[0]))
    with pytest.raises(ProviderError, match="no text model"):
        chat.with_structured_output(label_schema(["lemon", "lime"])).invoke([image_message(pictures[0], "Which?")])


def test_cached_eyes_answers_follow_their_wording_and_prompt(
    tiny_eyes: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    import visfeed.tools.world.eyes.chat as chat_module

    path, _ = tiny_eyes
    before = resolve_provider(f"eyes:{path}", options={"no_text": True}).endpoint
    monkeypatch.setattr(chat_module, "SEEING_SYSTEM", chat_module.SEEING_SYSTEM + " Be terse.")
    after = resolve_provider(f"eyes:{path}", options={"no_text": True}).endpoint
    assert before and after and before != after
