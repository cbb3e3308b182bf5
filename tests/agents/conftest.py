"""A tiny world made in the test and a scripted chat model (the far side of the network).

World: six fruit classes, each with three attribute words; an image embedding is the normalized sum of
its class's attribute vectors plus noise. The text encoder maps every word to a fixed random vector and a
text to the normalized sum of its word vectors, so a description that names the right attributes scores
well and one that names a confused class's attributes hurts.

The scripted model answers from the prompt alone (no hidden counter), so its answers do not depend on
the order of concurrent calls: it finds the requested classes in the prompt and writes descriptions
from attribute words chosen by a hash of the prompt, as JSON, or as a small model's prose (a preamble,
numbered sentences with a label, and a stray schema word) when asked in plain words. It records every answered prompt and can raise on
the n-th call (a crash) or fail the test when a prompt lacks what it must contain.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from visfeed.agents.resources import EmbeddedSplit, RunResources
from visfeed.state.config import RunConfig
from visfeed.tools.llm import ProviderHandle

ATTRS = {
    "apple": ["red", "round", "stem"],
    "cherry": ["red", "small", "pit"],
    "lemon": ["yellow", "oval", "sour"],
    "lime": ["green", "oval", "sour"],
    "banana": ["yellow", "long", "curved"],
    "grape": ["purple", "small", "cluster"],
}
CLASSES = list(ATTRS)
DISTRACTORS = ["shiny", "fresh", "tasty", "sweet", "smooth", "bright"]
DIM = 64
PROSE_REQUEST = re.compile(r"Describe what (?:an? )?(.+?) looks like")


def word_vec(word: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(word.encode()))
    return rng.standard_normal(DIM).astype(np.float32)


class SyntheticEncoder:
    """Bag of fixed random word vectors; counts texts it embedded."""

    def __init__(self) -> None:
        self.calls = 0

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = []
        for t in texts:
            words = re.findall(r"[a-z]+", t.lower()) or ["empty"]
            v = sum(word_vec(w) for w in words)
            out.append(v / np.linalg.norm(v))
        return np.stack(out).astype(np.float32)


def make_split(per_class: int, seed: int) -> EmbeddedSplit:
    rng = np.random.default_rng(seed)
    embs, labels = [], []
    for ci, c in enumerate(CLASSES):
        base = sum(word_vec(w) for w in ATTRS[c])
        for _ in range(per_class):
            v = base + rng.standard_normal(DIM).astype(np.float32) * 2.2
            embs.append(v / np.linalg.norm(v))
            labels.append(ci)
    return EmbeddedSplit(np.stack(embs).astype(np.float32), np.asarray(labels))


class Interrupt(KeyboardInterrupt):
    """Stands for Ctrl-C in the middle of an LLM call."""


class ScriptedChat(BaseChatModel):
    """Answers description requests deterministically from the prompt; optionally calls tools."""

    good_rate: float = 0.45
    fail_on_call: int | None = None
    fail_with: str = "interrupt"
    useless: bool = False
    require: list[str] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict)

    def model_post_init(self, __context: Any) -> None:
        self.state = {"answered": [], "calls": 0, "lock": threading.Lock(), "tool_messages": []}

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def answered(self) -> list[str]:
        return self.state["answered"]

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools])

    def _answer(self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None) -> AIMessage:
        prompt = "\n".join(str(m.content) for m in messages)
        with self.state["lock"]:
            self.state["calls"] += 1
            n = self.state["calls"]
        if self.fail_on_call is not None and n == self.fail_on_call:
            if self.fail_with == "interrupt":
                raise Interrupt(f"crash on call {n}")
            raise RuntimeError(f"scripted failure on call {n}")
        for needle in self.require:
            if (
                "which has" in prompt
                and needle not in prompt
                and "these classes" in prompt
                and "images correct" in prompt
            ):
                pytest.fail(f"prompt lacks {needle!r}:\n{prompt[:2000]}")
        key = hashlib.sha256(prompt.encode()).hexdigest()
        prose = PROSE_REQUEST.search(prompt)
        if tools:
            reply = self._agent_turn(messages, key)
        elif prose is not None and "JSON" not in prompt:
            reply = AIMessage(content=self._prose(prose.group(1), key))
        else:
            batch = self._batch(prompt, key)
            if '"title":"OneClass"' in prompt.replace(" ", ""):  # the flat single-class schema
                batch = {"descriptions": batch["classes"][0]["descriptions"] if batch["classes"] else []}
            reply = AIMessage(content=json.dumps(batch))
        with self.state["lock"]:
            self.answered.append(key)
        return reply

    def _classes(self, prompt: str) -> list[str]:
        found: list[str] = []
        for m in re.finditer(r"(?:Class|Classes to improve): ((?:\"[^\"]+\"(?:, )?)+)", prompt):
            found += [c for c in re.findall(r'"([^"]+)"', m.group(1)) if c in ATTRS and c not in found]
        return found

    def _words(self, c: str, i: int, rng: np.random.Generator) -> list[str]:
        if self.useless:  # always the same texts: nothing new to select
            return [DISTRACTORS[i % 6], DISTRACTORS[(i + 1) % 6]]
        if rng.random() < self.good_rate:
            return list(rng.choice(ATTRS[c], size=2, replace=False))
        other = CLASSES[int(rng.integers(len(CLASSES)))]
        return [str(rng.choice(ATTRS[other])), str(rng.choice(DISTRACTORS))]

    def _batch(self, prompt: str, key: str) -> dict[str, Any]:
        rng = np.random.default_rng(int(key[:12], 16))
        n_match = re.search(r"(?:Give|Write|write) (\d+)", prompt)
        n = int(n_match.group(1)) if n_match else 3
        entries = []
        for c in self._classes(prompt):
            descs = []
            for i in range(n):
                words = self._words(c, i, rng)
                descs.append(f"a {words[0]} {words[1]} look")
            entries.append({"class_name": c, "descriptions": descs})
        return {"classes": entries}

    def _prose(self, c: str, key: str) -> str:
        if c not in ATTRS:
            return "I do not know that one."
        rng = np.random.default_rng(int(key[:12], 16))
        first, second = self._words(c, 0, rng), self._words(c, 1, rng)
        return (
            f"Sure! Here is what a {c} looks like:\n1. A {c} has a {first[0]} {first[1]} look.\n"
            f"2. Color: it is {second[0]} and {second[1]}.\ntitle."
        )

    def _agent_turn(self, messages: list[BaseMessage], key: str) -> AIMessage:
        last = messages[-1]
        prompt = str(messages[1].content)
        classes = self._classes(prompt)
        if isinstance(last, ToolMessage):
            self.state["tool_messages"].append(str(last.content))
            batch = self._batch(prompt + key, key)
            return AIMessage(content="", tool_calls=[{"name": "submit_descriptions", "args": batch, "id": "c2"}])
        trial = [f"a {ATTRS[classes[0]][0]} {ATTRS[classes[0]][1]} look"]
        return AIMessage(
            content="",
            tool_calls=[
                {"name": "score_descriptions", "args": {"class_name": classes[0], "descriptions": trial}, "id": "c1"}
            ],
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages, kwargs.get("tools")))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages, kwargs.get("tools")))])


class CountingTest:
    """The lazy test-split loader, counting how often the test split is touched."""

    def __init__(self, split: EmbeddedSplit) -> None:
        self.split, self.calls = split, 0

    def __call__(self) -> EmbeddedSplit:
        self.calls += 1
        return self.split


MakeResources = Callable[..., RunResources]


@pytest.fixture()
def make_resources() -> MakeResources:
    def make(chat: ScriptedChat, *, tools: bool = False, validation: bool = False) -> RunResources:
        handle = ProviderHandle(
            provider="scripted", model="scripted-1", chat_model=chat, structured_mode="prompt", supports_tools=tools
        )
        return RunResources(
            dataset="tiny",
            classnames=list(CLASSES),
            encoder=SyntheticEncoder(),
            feedback=make_split(4, seed=1),
            validation=make_split(4, seed=2) if validation else None,
            test_loader=CountingTest(make_split(20, seed=3)),
            handle=handle,
            backbone="synthetic",
        )

    return make


@pytest.fixture()
def base_config(tmp_path: Path) -> Callable[..., RunConfig]:
    def make(name: str = "run", **changes: Any) -> RunConfig:
        fields: dict[str, Any] = {
            "provider": "scripted",
            "backbone": "synthetic",  # named prompts, as for any real backbone
            "run_dir": tmp_path / name,
            "n_init": 4,
            "n_new": 3,
            "n_mutations": 3,
            "classes_per_call": 3,
            "max_iterations": 3,
            "patience": 2,
            "device": "cpu",
            "mutate_scope": "all",
            "max_concurrency": 2,
            "llm_cache": tmp_path / name / "llm_cache.sqlite",
        }
        fields.update(changes)
        return RunConfig(**fields)

    return make
