"""Append-only, crash-safe run trace: one JSON object per line in ``trace.jsonl``.

Why JSONL and not a database: a line is appended with one ``write`` and flushed to the kernel before the
writer returns, so a crashed process (SIGKILL, the OOM killer) loses nothing written and can at worst tear
the *last* line, which :func:`visfeed.state.rundir.read_trace` ignores. The CLI and the report read the
same file; a resumed run appends to it (after a ``resume`` event), so the trace tells the whole story of a
run including its interruptions.

Durability against a power cut is batched: only the events in :data:`DURABLE_EVENTS` are fsync'd, each
with everything written before it. ``node_end`` is one of them and LangGraph writes a node's checkpoint
after the node returns, so a checkpoint on disk never has trace events of its node that are not; a power
cut can lose only the events of the node in progress, which a resume runs again. Why not fsync every
event: a 1,000-class run writes about 4,000 events per iteration, and their fsyncs were its largest cost
(50 of 165 s in ``benchmarks/results/scale_1000x10_profile.txt``).

Events (field ``event``): run_start, resume, node_start, node_end (duration_s), llm_call (record fields,
messages, response), tool_call (name, args, summary), proposal, filter_drop, iteration (objective),
lineage_add, lineage_delete, evaluation, run_end, and one per traced feedback signal, named after it
(``visual_words``: class_name, own, against; see :mod:`visfeed.tools.feedback`).
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

from visfeed.state.rundir import TRACE_FILE
from visfeed.tools.llm import LLMCallRecord

log = logging.getLogger(__name__)

#: Events fsync'd (with all before them): a node's end precedes its checkpoint; the rest bound a run.
DURABLE_EVENTS = frozenset({"run_start", "resume", "node_end", "evaluation", "run_end"})


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
    """Writes trace events; thread-safe, one flushed line per event, fsync'd at :data:`DURABLE_EVENTS`."""

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
        """Append one event (with UTC time and a monotonic clock); fsync when it is a durable one."""
        record = {"event": event, "time": datetime.now(UTC).isoformat(), "t": time.time(), **fields}
        line = json.dumps(record, default=_default, ensure_ascii=False) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            if self._fsync and event in DURABLE_EVENTS:
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
