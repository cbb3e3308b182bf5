"""``ChatOpenAI`` whose requests every OpenAI-compatible server accepts.

Why: langchain-openai sends an assistant turn that carries only tool calls with ``content: null``.
OpenAI accepts that; llama-cpp-python's server rejects the whole request (its schema wants a string:
HTTP 500 "validation errors ... content: Input should be a valid string"), so every agent loop on the
embedded model died on its second turn. An empty string is accepted by OpenAI, vLLM, Ollama and
llama.cpp alike.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_openai import ChatOpenAI


class CompatChatOpenAI(ChatOpenAI):
    """ChatOpenAI that sends ``content: ""`` instead of ``null`` in assistant tool-call turns."""

    def _get_request_payload(self, input_: LanguageModelInput, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        for message in payload.get("messages", []):
            if message.get("role") == "assistant" and message.get("content") is None:
                message["content"] = ""
        return payload
