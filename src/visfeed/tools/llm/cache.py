"""Persistent response cache, so that a rerun or a resumed run never pays twice for the same LLM call.

SQLite in WAL mode: one row per key, written in one transaction (no torn entries), readable and writable
by two processes at once (the loser waits on the busy timeout). The key is the sha256 of an explicit,
canonical JSON document built by :func:`cache_key_material` from the provider, model, sampling
parameters, schema, tools and messages only; the client object, its headers and API keys never enter it,
and the stored value is a whitelisted serialization of the answer, so secrets cannot reach the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage

from visfeed.errors import CacheError
from visfeed.fileio import connect_sqlite
from visfeed.tools.llm.images import image_digest

if TYPE_CHECKING:
    from visfeed.state.llm import LLMSettings
    from visfeed.tools.llm.handle import ProviderHandle

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    task TEXT NOT NULL,
    created_at REAL NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID
"""

# Only these response_metadata entries are kept: enough for traces, nothing that could hold a header.
_KEPT_METADATA = ("model_name", "finish_reason", "token_usage")


def _content_material(content: str | list[Any]) -> str | list[Any]:
    """Message content with each inline image replaced by the sha256 of its bytes.

    A picture's key is its content, not its path or its base64 text, and keys stay small.
    """
    if isinstance(content, str):
        return content
    return [image_digest(block) or block for block in content]


def message_material(message: BaseMessage) -> dict[str, Any]:
    """The parts of a message that change an answer, as plain JSON (no ids, no metadata)."""
    item: dict[str, Any] = {"type": message.type, "content": _content_material(message.content)}
    if isinstance(message, AIMessage) and message.tool_calls:
        item["tool_calls"] = [{"name": c["name"], "args": c["args"]} for c in message.tool_calls]
    tool_call_id = getattr(message, "tool_call_id", None)
    if tool_call_id:
        item["tool_call_id"] = tool_call_id
    if message.name:
        item["name"] = message.name
    return item


def cache_key_material(
    *,
    provider: str,
    model: str,
    endpoint: str | None,
    kind: str,
    params: dict[str, Any],
    messages: Sequence[BaseMessage],
    schema: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    salt: str | None = None,
) -> dict[str, Any]:
    """The document hashed into a cache key. Built from explicit fields only (never a client object)."""
    return {
        "v": 1,
        "provider": provider,
        "model": model,
        "endpoint": endpoint,
        "kind": kind,
        "params": params,
        "schema": schema,
        "tools": tools,
        "salt": salt,
        "messages": [message_material(m) for m in messages],
    }


def cache_key(material: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``material``."""
    blob = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def request_key(
    handle: ProviderHandle,
    settings: LLMSettings,
    kind: str,
    messages: Sequence[BaseMessage],
    *,
    schema: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    salt: str | None = None,
) -> str:
    """Cache key of one client request: provider identity, effective sampling parameters and content."""
    temperature = settings.temperature
    if temperature is None:
        temperature = handle.default_params.get("temperature")
    params = {"temperature": temperature, "max_tokens": settings.max_tokens, "seed": settings.seed, **(extra or {})}
    material = cache_key_material(
        provider=handle.provider,
        model=handle.model,
        endpoint=handle.endpoint,
        kind=kind,
        params=params,
        messages=messages,
        schema=schema,
        tools=tools,
        salt=salt,
    )
    return cache_key(material)


def dump_message(message: AIMessage) -> dict[str, Any]:
    """Whitelisted JSON form of an answer for the cache."""
    meta = {k: message.response_metadata[k] for k in _KEPT_METADATA if k in message.response_metadata}
    return {
        "content": message.content,
        "tool_calls": [{"name": c["name"], "args": c["args"], "id": c.get("id")} for c in message.tool_calls],
        "usage_metadata": dict(message.usage_metadata) if message.usage_metadata else None,
        "response_metadata": meta,
    }


def load_message(data: dict[str, Any]) -> AIMessage:
    """Inverse of :func:`dump_message`."""
    return AIMessage(
        content=data["content"],
        tool_calls=[
            {"name": c["name"], "args": c["args"], "id": c.get("id"), "type": "tool_call"}
            for c in data.get("tool_calls") or []
        ],
        usage_metadata=data.get("usage_metadata"),
        response_metadata=data.get("response_metadata") or {},
    )


class ResponseCache:
    """LLM answers keyed by :func:`cache_key`, in one SQLite file shared by runs and processes."""

    def __init__(self, path: str | Path, *, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        try:
            self._conn = connect_sqlite(self.path, _SCHEMA, timeout_s=timeout_s)
        except (sqlite3.Error, OSError) as exc:
            raise CacheError(
                f"cannot open the LLM response cache {self.path}: {exc}; delete the file or pass "
                "another cache path (or disable the cache)"
            ) from exc
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored value for ``key``, or None. A corrupt row is logged and treated as a miss."""
        try:
            with self._lock:
                row = self._conn.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise CacheError(f"cannot read the LLM response cache {self.path}: {exc}") from exc
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except ValueError:
            log.warning("ignoring a corrupt LLM cache row %s in %s", key[:12], self.path)
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any], *, provider: str, model: str, task: str) -> None:
        """Store ``value`` (JSON-serializable) under ``key`` in one transaction."""
        blob = json.dumps(value, ensure_ascii=False, default=str)
        try:
            with self._lock, self._conn:
                self._conn.execute(
                    "INSERT OR REPLACE INTO responses (key, provider, model, task, created_at, value) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (key, provider, model, task, time.time(), blob),
                )
        except sqlite3.Error as exc:
            raise CacheError(f"cannot write the LLM response cache {self.path}: {exc}") from exc

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def clear(self) -> None:
        """Delete every entry."""
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM responses")

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
