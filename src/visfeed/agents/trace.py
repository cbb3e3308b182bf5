"""Append-only, crash-safe run trace: one JSON object per line in ``trace.jsonl``, fsync'd per event.

Why JSONL and not a database: a line is appended with one ``write`` and made durable with ``fsync``
before the writer returns, so a crash can at worst tear the *last* line, which :func:`read_trace`
ignores. The CLI and the report read the same file; a resumed run appends to it (after a ``resume``
event), so the trace tells the whole story of a run including its interruptions.

Events (field ``event``): run_start, resume, node_start, node_end (duration_s), llm_call (record fields,
messages, response), tool_call (name, args, summary), proposal, filter_drop, iteration (objective),
lineage_add, lineage_delete, evaluation, run_end.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from visfeed.tools.llm import LLMCallRecord

log = logging.getLogger(__name__)

TRACE_FILE = "trace.jsonl"


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return repr(obj)


def message_dict(message: BaseMessage) -> dict[str, Any]:
    """A message as plain JSON for the trace: role, content, tool calls."""
    item: dict[str, Any] = {"role": message.type, "content": message.content}
    if isinstance(message, AIMessage) and message.tool_calls:
        item["tool_calls"] = [{"name": c["name"], "args": c["args"], "id": c.get("id")} for c in message.tool_calls]
    tool_call_id = getattr(message, "tool_call_id", None)
    if tool_call_id:
        item["tool_call_id"] = tool_call_id
    return item


class Tracer:
    """Writes trace events; thread-safe, one fsync'd line per event."""

    def __init__(self, run_dir: Path, *, fsync: bool = True) -> None:
        self.path = Path(run_dir) / TRACE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fsync = fsync
        self._repair_torn_tail()
        self._file = self.path.open("a", encoding="utf-8")

    def _repair_torn_tail(self) -> None:
        """A crash may have left a last line without its newline: end it so new events start clean."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")

    def emit(self, event: str, **fields: Any) -> None:
        """Append one event (with UTC time and a monotonic clock) and make it durable."""
        record = {"event": event, "time": datetime.now(UTC).isoformat(), "t": time.time(), **fields}
        line = json.dumps(record, default=_default, ensure_ascii=False) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())

    def llm_call(self, record: LLMCallRecord, messages: list[BaseMessage], reply: AIMessage | None) -> None:
        """The LLMClient ``on_call`` hook: every call (cache hits included) with messages and response."""
        self.emit(
            "llm_call",
            **record.model_dump(mode="json"),
            messages=[message_dict(m) for m in messages],
            response=message_dict(reply) if reply is not None else None,
        )

    def close(self) -> None:
        """Close the file (events after this raise)."""
        with self._lock:
            self._file.close()

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_trace(run_dir: str | Path, *, events: set[str] | None = None) -> list[dict[str, Any]]:
    """All well-formed events of a run (optionally only some kinds); torn or corrupt lines are skipped."""
    path = Path(run_dir) / TRACE_FILE
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    with path.open("rb") as f:
        lines = f.read().split(b"\n")
    for n, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            if n < len(lines) - 1 and lines[n + 1 :] != [b""] and any(x.strip() for x in lines[n + 1 :]):
                log.warning("%s: skipping a corrupt line %d (a crash during a write)", path, n + 1)
            continue
        if isinstance(item, dict) and (events is None or item.get("event") in events):
            out.append(item)
    return out


def usage_from_trace(run_dir: str | Path) -> dict[str, Any]:
    """LLM spend recorded so far (calls sent, cache hits, tokens, cost), from every process of the run.

    The trace, not the checkpoint, is the ledger: calls made by a node that was interrupted before its
    checkpoint still cost money and still count against the budget of the resumed run.
    """
    totals = {"calls": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
    for e in read_trace(run_dir, events={"llm_call"}):
        if e.get("cache_hit"):
            totals["cache_hits"] += 1
            continue
        totals["calls"] += 1
        totals["prompt_tokens"] += int(e.get("prompt_tokens", 0))
        totals["completion_tokens"] += int(e.get("completion_tokens", 0))
        totals["cost_usd"] += float(e.get("cost_usd", 0.0))
    return totals
