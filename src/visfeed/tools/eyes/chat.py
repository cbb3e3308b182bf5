"""The eyes as a LangChain chat model that takes pictures, so callers cannot tell it from a remote MLLM.

It reads ``image_url`` content blocks (base64 ``data:`` URLs, as OpenAI-style clients send them), looks at
each picture with :class:`~visfeed.tools.eyes.network.Eyes`, and answers:

- the describe question (:data:`~visfeed.tools.llm.vision.DESCRIBE_PROMPT`), or any question when it has
  no text model: with what it saw, in its own words;
- any other question (e.g. "classify the image given these labels"): by handing the question, with the
  picture replaced by what it saw, to its text model (the embedded SmolLM2 by default), the way a
  multimodal LLM's language half answers from its vision half's tokens.

The eyes have no knowledge of classes; whatever the label guess knows comes from the text model.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from visfeed.errors import ProviderError
from visfeed.tools.eyes.network import Eyes, load_image_bytes
from visfeed.tools.llm.structured import message_text
from visfeed.tools.llm.vision import DESCRIBE_PROMPT, images_in

SEEING_SYSTEM = (
    "You cannot see pictures. A careful observer looked at the picture for you and wrote what it shows. "
    "Answer the user's question from that description alone, as briefly as possible."
)
EXAMPLE = (
    HumanMessage(
        content="What the picture shows: I see one large red item with two wheels.\n\nYou are given an image and a "
        "list of class labels. Classify the image given the class labels. Answer using a single word if "
        "possible. Here are the class labels: boat, bicycle, kite"
    ),
    AIMessage(content="bicycle"),
)
"""One worked exchange (on labels of no world): a 135M model needs it to answer rather than echo."""
TEXT_MAX_TOKENS = 16
"""Completion cap of the text model's answers (a label guess is a few words)."""


def behaviour_key() -> str:
    """A digest of everything besides the weights that shapes the eyes' answers, for cache identity.

    Cached answers must not outlive a change of the wording threshold or of the text model's prompt.
    """
    from visfeed.tools.eyes.network import MIN_CONFIDENCE

    parts = [SEEING_SYSTEM, *(message_text(m) for m in EXAMPLE), str(MIN_CONFIDENCE), str(TEXT_MAX_TOKENS)]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:12]


class EyesChat(BaseChatModel):
    """A chat model whose vision is the eyes network and whose language is an optional text model."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    eyes: Eyes = Field(description="The trained attribute network.")
    text_model: Any = Field(default=None, description="A chat model (or runnable) for questions beyond 'describe'.")
    model_name: str = Field(default="eyes", description="Name reported to accounting and caches.")
    _memo: dict[str, str] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "visfeed-eyes"

    def _look(self, messages: list[BaseMessage]) -> tuple[str, str]:
        """(what the pictures of the last user turn show, the question asked about them)."""
        turn = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        if turn is None:
            raise ProviderError("the eyes got no user message", provider="eyes", model=self.model_name)
        pictures = images_in([turn])
        question = message_text(turn).strip()
        if not pictures:
            return "", question
        import numpy as np

        arrays = np.stack([load_image_bytes(p, "the picture in the message") for p in pictures])
        return " ".join(self.eyes.describe(arrays)), question

    def _question(self, seen: str, question: str) -> list[BaseMessage] | None:
        """The text model's conversation, or None when the eyes answer themselves."""
        if self.text_model is None or (seen and question == DESCRIBE_PROMPT):
            return None
        body = f"What the picture shows: {seen}\n\n{question}" if seen else question
        return [SystemMessage(content=SEEING_SYSTEM), *EXAMPLE, HumanMessage(content=body)]

    @staticmethod
    def _result(text: str) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Look, then answer (LangChain runs this in a worker thread for async callers: torch and HTTP block)."""
        seen, question = self._look(messages)
        convo = self._question(seen, question)
        if convo is None:
            return self._result(seen)
        key = message_text(convo[-1])  # equal captions and questions get one text-model call per process
        with self._lock:
            known = self._memo.get(key)
        if known is None:
            known = message_text(self.text_model.invoke(convo)).strip()
            with self._lock:
                self._memo[key] = known
        return self._result(known)
