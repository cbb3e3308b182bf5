"""A tiny world made in the test, and the shared scripted chat model (tests/support) speaking its words.

World: six fruit classes, each with three attribute words; an image embedding is the normalized sum of
its class's attribute vectors plus noise. The text encoder maps every word to a fixed random vector and a
text to the normalized sum of its word vectors, so a description that names the right attributes scores
well and one that names a confused class's attributes hurts.

The scripted model (:class:`tests.support.scripted_provider.ScriptedChat`, given the world's attribute
words) writes descriptions from a class's own attributes or from a confused class's.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.support.scripted_provider import ScriptedChat, ToolScriptedChat

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
DIM = 64


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


def fruit_chat(**changes: Any) -> ScriptedChat:
    """The shared scripted chat model (with tools), answering with the fruit world's attribute words."""
    return ToolScriptedChat(attrs=ATTRS, **changes)


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
            "llm": {"provider": "scripted", "max_concurrency": 2, "cache_file": tmp_path / name / "llm_cache.sqlite"},
            "backbone": {"model": "synthetic", "device": "cpu"},  # named prompts, as for any real backbone
            "run_dir": tmp_path / name,
            "method": {
                "n_init": 4,
                "n_new": 3,
                "n_mutations": 3,
                "classes_per_call": 3,
                "max_iterations": 3,
                "patience": 2,
                "mutate_scope": "all",
            },
            "search": {"crossover": "auto"},  # the classic crossover's mechanics; library mode has its own tests
        }
        return RunConfig.from_mapping(fields).with_updates(changes)

    return make
