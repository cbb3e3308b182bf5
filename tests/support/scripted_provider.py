"""The one scripted chat model of the tests (the far side of the network), usable as a provider plug-in.

``--provider support.scripted_provider:make`` loads it in CLI and crash tests that run ``visfeed`` in a
subprocess; in-process tests build :class:`ScriptedChat` directly. It answers from the prompt alone (no
hidden counter), so its answers do not depend on the order of concurrent calls and a resumed run matches
an uninterrupted one:

- description requests (multi-class or the flat one-class schema) get descriptions chosen by a hash of
  the prompt: from ``WORDS`` for any class names, or, given ``attrs`` (class -> attribute words of a test
  world), the class's own attributes with probability ``good_rate`` and another class's otherwise;
- a request in plain words ("Describe what a lemon looks like") gets a small model's prose (a preamble,
  numbered sentences with a label, and a stray schema word);
- with tools bound (:class:`ToolScriptedChat`), it scores one trial description, then submits a batch;
- concept-tree requests (the ``PartList``, ``AttributeList`` and ``ValueAnswer`` schemas) get parts and
  attributes from ``CONCEPT_PARTS`` / ``CONCEPT_ATTRIBUTES`` with a schema-word echo mixed in (which the junk
  filter must drop), and values from the class's attribute words (``attrs``) or ``WORDS``;
- with ``script``, it replies with the script's items in order instead (strings, or exceptions to raise).

It records every prompt (``state["prompts"]``) and every answered prompt's hash, can be slow (``delay_s``, ``VISFEED_TEST_LLM_DELAY``), raise on the n-th
call (a crash), and check every mutation prompt for required phrases (``require``): it counts the prompts
it checked and records what they lacked, so a test asserts both that the check ran and that it held.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

WORDS = ["red", "yellow", "green", "round", "long", "small", "striped", "spotted", "shiny", "leafy", "oval", "dark"]
VOCABULARY_REQUEST = "visual words or phrases"
DISTRACTORS = ["shiny", "fresh", "tasty", "sweet", "smooth", "bright"]
PROSE_REQUEST = re.compile(r"Describe what (?:an? )?(.+?) looks like")
MUTATE_REQUEST = "apart from the classes it is confused with"  # the wording of agents/prompts/mutate.txt
CONCEPT_PARTS = ["skin", "top", "flesh"]
CONCEPT_ATTRIBUTES = ["color", "shape"]
VALUE_REQUEST = re.compile(r"What is the (.+?) of the (.+) of an? ([^?]+)\?")


class Interrupt(KeyboardInterrupt):
    """Stands for Ctrl-C in the middle of an LLM call."""


def classes_in(prompt: str) -> list[str]:
    """Class names the prompt asks about (``Class: "a", "b"`` lines)."""
    found: list[str] = []
    for m in re.finditer(r"(?:Class|Classes to improve): ((?:\"[^\"]+\"(?:, )?)+)", prompt):
        found += [c for c in re.findall(r'"([^"]+)"', m.group(1)) if c not in found]
    return found


class ScriptedChat(BaseChatModel):
    """Deterministic answers from a hash of the prompt (or from a script)."""

    model_name: str = "scripted-1"
    script: list[Any] | None = None
    attrs: dict[str, list[str]] | None = None
    good_rate: float = 0.45
    useless: bool = False
    delay_s: float = 0.0
    fail_on_call: int | None = None
    fail_with: str = "interrupt"
    require: list[str] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict)

    def model_post_init(self, __context: Any) -> None:
        self.state = {
            "answered": [],
            "calls": 0,
            "lock": threading.Lock(),
            "tool_messages": [],
            "checked": 0,
            "violations": [],
            "prompts": [],
        }

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def answered(self) -> list[str]:
        """Hashes of the prompts answered so far."""
        return self.state["answered"]

    @property
    def checked(self) -> int:
        """Mutation prompts checked for the ``require`` phrases."""
        return int(self.state["checked"])

    @property
    def violations(self) -> list[str]:
        """Each required phrase a mutation prompt lacked, with the start of that prompt."""
        return self.state["violations"]

    def _answer(self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None) -> AIMessage:
        prompt = "\n".join(str(m.content) for m in messages)
        if self.delay_s:
            time.sleep(self.delay_s)
        with self.state["lock"]:
            n = self.state["calls"] = self.state["calls"] + 1
            self.state["prompts"].append(prompt)
        if self.script is not None:
            item = self.script[min(n, len(self.script)) - 1]
            if isinstance(item, BaseException):
                raise item
            return AIMessage(content=item)
        if self.fail_on_call is not None and n == self.fail_on_call:
            if self.fail_with == "interrupt":
                raise Interrupt(f"crash on call {n}")
            raise RuntimeError(f"scripted failure on call {n}")
        if self.require and MUTATE_REQUEST in prompt and not tools:
            self._check_required(prompt)
        key = hashlib.sha256(prompt.encode()).hexdigest()
        prose = PROSE_REQUEST.search(prompt)
        if tools:
            reply = self._agent_turn(messages, key)
        elif VOCABULARY_REQUEST in prompt:
            reply = AIMessage(content=self._vocabulary())
        elif (concept := self._concept(prompt, key)) is not None:
            reply = AIMessage(content=concept)
        elif prose is not None and "JSON" not in prompt:
            reply = AIMessage(content=self._prose(prose.group(1), key))
        else:
            batch = self._batch(prompt, key)
            if '"title":"OneClass"' in prompt.replace(" ", ""):  # the flat single-class schema
                batch = {"descriptions": batch["classes"][0]["descriptions"] if batch["classes"] else []}
            reply = AIMessage(content=json.dumps(batch))
        reply.usage_metadata = {
            "input_tokens": len(prompt) // 4,
            "output_tokens": 20,
            "total_tokens": len(prompt) // 4 + 20,
        }
        with self.state["lock"]:
            self.answered.append(key)
        return reply

    def _check_required(self, prompt: str) -> None:
        with self.state["lock"]:
            self.state["checked"] += 1
            self.violations.extend(f"lacks {n!r}:\n{prompt[:1500]}" for n in self.require if n not in prompt)

    def _classes(self, prompt: str) -> list[str]:
        return [c for c in classes_in(prompt) if self.attrs is None or c in self.attrs]

    def _words(self, c: str, i: int, rng: np.random.Generator, digest: bytes, ci: int) -> list[str]:
        if self.attrs is None:
            return [WORDS[digest[(ci * 7 + 2 * i + j) % 32] % len(WORDS)] for j in (0, 1)]
        if self.useless:  # always the same texts: nothing new to select
            return [DISTRACTORS[i % 6], DISTRACTORS[(i + 1) % 6]]
        if rng.random() < self.good_rate:
            return list(rng.choice(self.attrs[c], size=2, replace=False))
        classes = list(self.attrs)
        other = classes[int(rng.integers(len(classes)))]
        return [str(rng.choice(self.attrs[other])), str(rng.choice(DISTRACTORS))]

    def _batch(self, prompt: str, key: str) -> dict[str, Any]:
        rng = np.random.default_rng(int(key[:12], 16))
        digest = bytes.fromhex(key)
        n_match = re.search(r"(?:Give|Write|write) (\d+)", prompt)
        n = int(n_match.group(1)) if n_match else 3
        entries = []
        for ci, c in enumerate(self._classes(prompt)):
            descs = []
            for i in range(n):
                words = self._words(c, i, rng, digest, ci)
                descs.append(f"a {words[0]} {words[1]} look")
            entries.append({"class_name": c, "descriptions": descs})
        return {"classes": entries}

    def _concept(self, prompt: str, key: str) -> str | None:
        """An answer to a concept-tree request (None for any other request)."""
        schema = prompt.replace(" ", "")
        digest = bytes.fromhex(key)
        if '"title":"PartList"' in schema:
            if "smaller visible parts" in prompt:  # sub-parts: only the top has some
                if "the top of" in prompt:
                    return json.dumps({"parts": ["leaf", "top", "title:"]})
                parent = next((p for p in CONCEPT_PARTS if f"the {p} of" in prompt), "skin")
                return json.dumps({"parts": [parent]})  # named like its parent: no sub-part
            return json.dumps({"parts": [*CONCEPT_PARTS, "description: part"]})
        if '"title":"AttributeList"' in schema:
            return json.dumps({"attributes": [*CONCEPT_ATTRIBUTES, "type'r"]})
        if '"title":"ValueAnswer"' in schema:
            found = VALUE_REQUEST.search(prompt)
            cls = found.group(3) if found else ""
            words = (self.attrs or {}).get(cls, WORDS)
            return json.dumps({"value": f"{'The ' if digest[1] % 2 else ''}{words[digest[0] % len(words)].title()}."})
        return None

    def _vocabulary(self) -> str:
        """A list of visual words as a small model writes it: a preamble, bullets, a class name, a schema word."""
        words = sorted({w for ws in self.attrs.values() for w in ws})
        name = next(iter(self.attrs))
        return "Sure! Here are some words:\n" + "\n".join(f"- {w}" for w in [*words, name, "description:", "waxy"])

    def _prose(self, c: str, key: str) -> str:
        if self.attrs is not None and c not in self.attrs:
            return "I do not know that one."
        rng = np.random.default_rng(int(key[:12], 16))
        digest = bytes.fromhex(key)
        first, second = self._words(c, 0, rng, digest, 0), self._words(c, 1, rng, digest, 0)
        return (
            f"Sure! Here is what a {c} looks like:\n1. A {c} has a {first[0]} {first[1]} look.\n"
            f"2. Color: it is {second[0]} and {second[1]}.\ntitle."
        )

    def _agent_turn(self, messages: list[BaseMessage], key: str) -> AIMessage:
        last = messages[-1]
        prompt = str(messages[1].content)
        if isinstance(last, ToolMessage):
            self.state["tool_messages"].append(str(last.content))
            batch = self._batch(prompt + key, key)
            return AIMessage(content="", tool_calls=[{"name": "submit_descriptions", "args": batch, "id": "c2"}])
        first = self._classes(prompt)[0]
        words = (self.attrs or {}).get(first, WORDS)
        trial = [f"a {words[0]} {words[1]} look"]
        return AIMessage(
            content="",
            tool_calls=[
                {"name": "score_descriptions", "args": {"class_name": first, "descriptions": trial}, "id": "c1"}
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


class ToolScriptedChat(ScriptedChat):
    """The same model with tool calling (agent mode).

    A separate class because visfeed's plug-in loader reads tool support from the class (an overridden
    ``bind_tools``), and the plug-in must stay a plain structured-output model.
    """

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools])


def make(**_: Any) -> ScriptedChat:
    """Provider factory: ``--provider support.scripted_provider:make``."""
    return ScriptedChat(delay_s=float(os.environ.get("VISFEED_TEST_LLM_DELAY", "0")))
