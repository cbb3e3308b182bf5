"""Pictures as chat-message content: the building blocks the client, the cache and multimodal models share.

Why apart from :mod:`visfeed.tools.llm.vision`: the client budgets a picture's tokens and the cache keys
it by content, so both need these blocks, while the questions about pictures in ``vision`` are sent
through the client. Kept here, below the client, the blocks let ``vision`` use the client without the
client (or a chat model such as the eyes) importing ``vision`` back.

A picture is a LangChain content block (base64 ``image_url``, the form OpenAI, llama.cpp ``llama-server
--mmproj``, vLLM, Ollama and LM Studio all read).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from visfeed.errors import DataError

IMAGE_TOKENS = 85
"""Prompt tokens one picture is assumed to cost (OpenAI's low-detail tile) when projecting and budgeting."""


def data_url(data: bytes, mime: str) -> str:
    """A ``data:`` URL holding ``data`` in base64."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_block(path: str | Path) -> dict[str, Any]:
    """The LangChain/OpenAI content block of an image file, inlined as base64."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc
    mime = mimetypes.guess_type(str(path))[0] or "image/png"
    return {"type": "image_url", "image_url": {"url": data_url(data, mime)}}


def image_message(path: str | Path, prompt: str) -> HumanMessage:
    """One user turn: the question, then the picture."""
    return HumanMessage(content=[{"type": "text", "text": prompt}, image_block(path)])


def decode_image_block(block: Any) -> bytes | None:
    """The picture's bytes if ``block`` is an inline ``image_url`` block, else None."""
    if not isinstance(block, dict) or block.get("type") != "image_url":
        return None
    ref = block.get("image_url")
    url = ref.get("url") if isinstance(ref, dict) else ref
    if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
        return None
    head, _, payload = url.partition(",")
    try:
        return base64.b64decode(payload, validate=True) if head.endswith(";base64") else payload.encode()
    except (binascii.Error, ValueError):
        return None


def image_digest(block: Any) -> dict[str, str] | None:
    """The cache-key form of an inline image block (its bytes' sha256), or None for other blocks."""
    data = decode_image_block(block)
    return None if data is None else {"type": "image", "sha256": hashlib.sha256(data).hexdigest()}


def images_in(messages: Sequence[BaseMessage]) -> list[bytes]:
    """Every inline picture in ``messages``, in order."""
    found = []
    for m in messages:
        if isinstance(m.content, list):
            found += [d for d in (decode_image_block(b) for b in m.content) if d is not None]
    return found
