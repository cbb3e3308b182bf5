"""The eyes as a LangChain chat model that takes pictures, so callers cannot tell it from a remote MLLM.

It reads ``image_url`` content blocks (base64 ``data:`` URLs, as OpenAI-style clients send them), looks at
each picture with :class:`~visfeed.tools.world.eyes.network.Eyes`, and answers:

- the describe question (:data:`~visfeed.tools.llm.vision.DESCRIBE_PROMPT`), or any question when it has
  no text model: with what it saw, in its own words;
- any other question (e.g. "classify the image given these labels"): by handing the question, with the
  picture replaced by what it saw, to its text model (the embedded SmolLM2 by default), the way a
  multimodal LLM's language half answers from its vision half's tokens;
- a question with a schema (``with_structured_output``, e.g. the label question whose answer must be one
  of the class names): the same, with decoding constrained by the llama.cpp server's grammar built from
  the schema (``response_format`` ``json_object`` + ``schema``), so the answer always validates.

The eyes have no knowledge of classes; whatever the label guess knows comes from the text model.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from visfeed.errors import OutputParseError, ProviderError
from visfeed.tools.llm.images import images_in
from visfeed.tools.llm.structured import message_text, parse_structured, schema_json
from visfeed.tools.llm.vision import DESCRIBE_PROMPT
from visfeed.tools.world.eyes.network import Eyes, load_image_bytes

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
STRUCTURED_EXAMPLE = AIMessage(content='{"label": "bicycle"}')
"""The worked exchange's answer when the question comes with a schema (the label question's shape)."""
TEXT_MAX_TOKENS = 16
"""Completion cap of the text model's answers (a label guess is a few words)."""
STRUCTURED_MAX_TOKENS = 48
"""Completion cap of a schema-constrained answer (a JSON object holding a class name)."""


def behaviour_key() -> str:
    """A digest of everything besides the weights that shapes the eyes' answers, for cache identity.

    Cached answers must not outlive a change of the wording threshold or of the text model's prompt.
    """
    from visfeed.tools.world.eyes.network import MIN_CONFIDENCE

    parts = [
        SEEING_SYSTEM,
        *(message_text(m) for m in EXAMPLE),
        message_text(STRUCTURED_EXAMPLE),
        str(MIN_CONFIDENCE),
        str(TEXT_MAX_TOKENS),
        str(STRUCTURED_MAX_TOKENS),
    ]
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

    def _question(self, seen: str, question: str, *, structured: bool = False) -> list[BaseMessage] | None:
        """The text model's conversation, or None when the eyes answer themselves."""
        if self.text_model is None or (seen and question == DESCRIBE_PROMPT and not structured):
            return None
        body = f"What the picture shows: {seen}\n\n{question}" if seen else question
        example = [EXAMPLE[0], STRUCTURED_EXAMPLE] if structured else list(EXAMPLE)
        return [SystemMessage(content=SEEING_SYSTEM), *example, HumanMessage(content=body)]

    def _ask_text(self, convo: list[BaseMessage], memo_key: str, **kwargs: Any) -> str:
        """The text model's answer, once per process for an equal conversation and constraint."""
        with self._lock:
            known = self._memo.get(memo_key)
        if known is None:
            known = message_text(self.text_model.invoke(convo, **kwargs)).strip()
            with self._lock:
                self._memo[memo_key] = known
        return known

    def with_structured_output(self, schema: Any, *, include_raw: bool = False, **kwargs: Any) -> Runnable[Any, Any]:
        """Look, then ask the text model with decoding constrained to ``schema`` (a pydantic model).

        The constraint is the llama.cpp server's: ``response_format`` ``{"type": "json_object", "schema":
        ...}`` becomes a grammar, so a 135M model can only answer, e.g., one of the listed class names.
        """
        if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
            raise ProviderError("the eyes take pydantic schemas only", provider="eyes", model=self.model_name)
        body = {"max_tokens": STRUCTURED_MAX_TOKENS, "response_format": {"type": "json_object",
                                                                         "schema": schema_json(schema)}}  # fmt: skip

        def answer(messages: Any) -> Any:
            seen, question = self._look(list(messages))
            convo = self._question(seen, question, structured=True)
            if convo is None:
                raise ProviderError(
                    "the eyes have no text model to answer a structured question", provider="eyes",
                    model=self.model_name,
                )  # fmt: skip
            key = json.dumps([message_text(convo[-1]), schema_json(schema)], sort_keys=True)
            raw = AIMessage(content=self._ask_text(convo, key, extra_body=body))
            try:
                parsed, error = parse_structured(message_text(raw), schema), None
            except OutputParseError as exc:
                parsed, error = None, exc
            if include_raw:
                return {"raw": raw, "parsed": parsed, "parsing_error": error}
            if error is not None:
                raise error
            return parsed

        return RunnableLambda(answer)

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
        # equal captions and questions get one text-model call per process
        return self._result(self._ask_text(convo, message_text(convo[-1])))
