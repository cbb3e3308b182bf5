"""The provider handle: a chat model plus what the client must know to call it well.

Why a class of its own: the client needs the same few facts from every provider (how to ask for
structured output, whether tools work, which per-call parameters the dialect takes, whether calls cost
money, which cache identity to use) and someone must own the local servers' lifetime. Keeping that here
lets :mod:`visfeed.tools.llm.providers` stay about parsing spec strings, and lets plug-in factories build
a handle themselves when they want to declare capabilities.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel

from visfeed.errors import ConfigError
from visfeed.tools.llm.local_server import LocalLLMServer, LocalServerDied
from visfeed.tools.llm.structured import StructuredMode, schema_json

CallStyle = Literal["openai", "openai-compatible", "generic"]
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")


class ProviderHandle:
    """A LangChain chat model and what the client must know about it.

    ``chat_model`` is built on first access (for ``local`` that starts the server), so a fully cached
    rerun never starts a server. A factory may return several equivalent chat models (local replicas);
    :meth:`pick_chat_model` then spreads calls over them. Use as a context manager or call :meth:`close`
    to stop the local servers.
    """

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        chat_model: BaseChatModel | None = None,
        factory: Callable[[], BaseChatModel | Sequence[BaseChatModel]] | None = None,
        supports_tools: bool = False,
        structured_mode: StructuredMode = "prompt",
        call_style: CallStyle = "generic",
        endpoint: str | None = None,
        free: bool = False,
        servers: Sequence[LocalLLMServer] = (),
        default_params: Mapping[str, Any] | None = None,
        secrets: Sequence[str] = (),
        accepts_images: bool | None = None,
    ) -> None:
        if chat_model is None and factory is None:
            raise ConfigError("ProviderHandle needs a chat_model or a factory")
        self.provider = provider
        self.model = model
        self.supports_tools = supports_tools
        self.structured_mode: StructuredMode = structured_mode
        self.call_style: CallStyle = call_style
        self.endpoint = endpoint
        self.free = free
        self.servers = list(servers)
        self.default_params = dict(default_params or {})
        # True: a multimodal model; False: text only (refused before any image is sent); None: unknown,
        # so the first image call tells (a rejection becomes a clear error, see tools/llm/vision.py).
        self.accepts_images = accepts_images
        self._secrets = tuple(x for x in secrets if len(x) >= 6)  # never shown, only masked
        self._models: list[BaseChatModel] = [chat_model] if chat_model is not None else []
        self._factory = factory
        self._lock = threading.Lock()
        self._turn = itertools.count()

    @property
    def supports_native_structured(self) -> bool:
        """True when the provider itself enforces the schema (OpenAI json_schema, plug-in native)."""
        return self.structured_mode in ("openai_json_schema", "native")

    @property
    def forces_tools(self) -> bool:
        """True when a request can name the one tool the model must call (OpenAI's ``tool_choice``).

        OpenAI, vLLM and llama.cpp's server take it; llama.cpp then constrains the arguments by a
        grammar built from the tool's JSON schema. Plug-ins are not assumed to.
        """
        return self.supports_tools and self.call_style != "generic"

    @property
    def server(self) -> LocalLLMServer | None:
        """The (first) local server this handle owns, if any."""
        return self.servers[0] if self.servers else None

    def _ensure_models(self) -> list[BaseChatModel]:
        if not self._models:
            with self._lock:
                if not self._models and self._factory is not None:
                    made = self._factory()
                    self._models = [made] if isinstance(made, BaseChatModel) else list(made)
        return self._models

    @property
    def chat_model(self) -> BaseChatModel:
        """The chat model, built (and the local server started) on first access."""
        return self._ensure_models()[0]

    def pick_chat_model(self) -> BaseChatModel:
        """The next chat model in turn (round robin over replicas; the only one otherwise)."""
        models = self._ensure_models()
        return models[next(self._turn) % len(models)]

    @property
    def ready(self) -> bool:
        """True once the chat model exists (no start-up cost left)."""
        return bool(self._models)

    def start(self) -> None:
        """Build the chat model now: a local server starts and answers a first completion, or fails here.

        The runner calls it before embedding any image, so a server that cannot generate costs seconds.
        """
        self._ensure_models()

    def dead_server_error(self, grace_s: float = 0.0) -> LocalServerDied | None:
        """The error of the first local server that has died, if any (see ``LocalLLMServer.death_error``)."""
        for server in self.servers:
            died = server.death_error(grace_s)
            if died is not None:
                return died
        return None

    def request_kwargs(
        self,
        *,
        temperature: float | None,
        max_tokens: int | None,
        seed: int | None,
        response_format: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Per-call keyword arguments for ``chat_model.ainvoke`` in this provider's dialect.

        ``response_format`` travels in ``extra_body`` so that ``ChatOpenAI`` sends it verbatim on its
        plain completion path (its ``parse`` path would reject or re-parse it). Plug-ins get no per-call
        parameters: configure them in the factory.
        """
        if self.call_style == "generic":
            return {}
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            # OpenAI renamed it and ChatOpenAI always sends the new name; llama.cpp (and older vLLM or
            # Ollama builds) only read the old one, so compatible servers get it verbatim in the body.
            if self.call_style == "openai":
                kwargs["max_completion_tokens"] = max_tokens
            else:
                extra["max_tokens"] = max_tokens
        if seed is not None:
            kwargs["seed"] = seed
        if response_format is not None:
            extra["response_format"] = response_format
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    def response_format(self, schema: type[BaseModel]) -> dict[str, Any] | None:
        """The ``response_format`` body for ``schema`` in this provider's structured mode."""
        if self.structured_mode == "json_object_schema":
            return {"type": "json_object", "schema": schema_json(schema)}
        if self.structured_mode == "json_object":
            return {"type": "json_object"}
        if self.structured_mode == "openai_json_schema":
            return _openai_json_schema(schema)
        return None

    def redact(self, text: str) -> str:
        """``text`` with this provider's API key and any bearer token masked.

        Error messages quote server replies, and some servers echo the key they rejected; those
        messages go to result.json, the trace, checkpoints and logs.
        """
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _BEARER.sub(r"\1 ***", text)

    def close(self) -> None:
        """Stop the local servers this handle owns (idempotent)."""
        for server in self.servers:
            server.stop()

    def __enter__(self) -> ProviderHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"ProviderHandle(provider={self.provider!r}, model={self.model!r}, "
            f"structured_mode={self.structured_mode!r}, supports_tools={self.supports_tools})"
        )


def _openai_json_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """OpenAI's strict json_schema response format, made by the openai SDK's own converter."""
    try:
        from openai.lib._parsing._completions import type_to_response_format_param

        return dict(type_to_response_format_param(schema))  # type: ignore[arg-type]
    except Exception:  # the SDK refuses schemas strict mode cannot express: fall back to non-strict
        return {
            "type": "json_schema",
            "json_schema": {"name": schema.__name__, "schema": schema_json(schema), "strict": False},
        }
