"""A scripted chat model usable as a real visfeed provider plug-in (``support.scripted_provider:make``).

It stands for the far side of the network in CLI and crash tests that run ``visfeed`` in a subprocess:
it answers every description request from the prompt alone (deterministically, so a resumed run matches
an uninterrupted one), for any class names, in the multi-class or the flat one-class schema. Setting
``VISFEED_TEST_LLM_DELAY`` (seconds) makes every call slow, so a test can kill the process mid-call.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

WORDS = ["red", "yellow", "green", "round", "long", "small", "striped", "spotted", "shiny", "leafy", "oval", "dark"]


def classes_in(prompt: str) -> list[str]:
    """Class names the prompt asks about (``Class: "a", "b"`` lines)."""
    found: list[str] = []
    for m in re.finditer(r"(?:Class|Classes to improve): ((?:\"[^\"]+\"(?:, )?)+)", prompt):
        found += [c for c in re.findall(r'"([^"]+)"', m.group(1)) if c not in found]
    return found


class ScriptedProvider(BaseChatModel):
    """Deterministic descriptions from a hash of the prompt."""

    delay_s: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "scripted-provider"

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        prompt = "\n".join(str(m.content) for m in messages)
        if self.delay_s:
            time.sleep(self.delay_s)
        digest = hashlib.sha256(prompt.encode()).digest()
        n_match = re.search(r"(?:Give|Write|write) (\d+)", prompt)
        n = int(n_match.group(1)) if n_match else 3
        entries = []
        for ci, c in enumerate(classes_in(prompt)):
            descs = [
                f"a {WORDS[digest[(ci * 7 + 2 * i) % 32] % len(WORDS)]} {WORDS[digest[(ci * 7 + 2 * i + 1) % 32] % len(WORDS)]} look"
                for i in range(n)
            ]
            entries.append({"class_name": c, "descriptions": descs})
        body: dict[str, Any] = {"classes": entries}
        if '"title":"OneClass"' in prompt.replace(" ", ""):
            body = {"descriptions": entries[0]["descriptions"] if entries else []}
        return AIMessage(
            content=json.dumps(body),
            usage_metadata={
                "input_tokens": len(prompt) // 4,
                "output_tokens": 20,
                "total_tokens": len(prompt) // 4 + 20,
            },
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages))])


def make(**_: Any) -> ScriptedProvider:
    """Provider factory: ``--provider support.scripted_provider:make``."""
    return ScriptedProvider(delay_s=float(os.environ.get("VISFEED_TEST_LLM_DELAY", "0")))
