"""The trace: well-formed JSON lines, torn last line ignored, appends after a crash start on a new line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from langchain_core.messages import AIMessage, HumanMessage

from visfeed.agents.trace import DURABLE_EVENTS, Tracer
from visfeed.state.rundir import TRACE_FILE, read_trace, usage_from_trace
from visfeed.tools.llm import LLMCallRecord


def test_events_are_json_lines_and_a_torn_tail_is_ignored(tmp_path):
    with Tracer(tmp_path) as t:
        t.emit("node_start", node="feedback", iteration=0)
        t.llm_call(
            LLMCallRecord(task="mutate", provider="p", model="m", prompt_tokens=5, completion_tokens=2),
            [HumanMessage(content="hi")],
            AIMessage(content='{"a": 1}'),
        )
        t.llm_call(
            LLMCallRecord(task="mutate", provider="p", model="m", cache_hit=True), [HumanMessage(content="hi")], None
        )
    path = tmp_path / TRACE_FILE
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and all(isinstance(json.loads(x), dict) for x in lines)
    with path.open("a") as f:
        f.write('{"event": "node_end", "node": "feed')  # a crash in the middle of a write
    events = read_trace(tmp_path)
    assert [e["event"] for e in events] == ["node_start", "llm_call", "llm_call"]
    assert events[1]["messages"] == [{"role": "human", "content": "hi"}]
    assert events[1]["response"]["content"] == '{"a": 1}'
    assert usage_from_trace(tmp_path) == {
        "calls": 1,
        "cache_hits": 1,
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "cost_usd": 0.0,
    }
    # a resumed process appends cleanly after the torn line
    with Tracer(tmp_path) as t:
        t.emit("resume")
    assert [e["event"] for e in read_trace(tmp_path)][-1] == "resume"
    assert read_trace(tmp_path, events={"resume"})[0]["event"] == "resume"
    assert read_trace(tmp_path / "missing") == []


def test_a_killed_process_keeps_every_event_and_only_durable_events_are_fsynced(tmp_path, monkeypatch):
    # SIGKILL right after emitting: events flushed (not fsync'd) are in the file all the same.
    code = (
        "import os, signal, sys\n"
        "from visfeed.agents.trace import Tracer\n"
        "t = Tracer(sys.argv[1])\n"
        "t.emit('node_start', node='mutate', iteration=0)\n"
        "for i in range(50): t.emit('proposal', i=i)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    events = read_trace(tmp_path)
    assert [e["event"] for e in events] == ["node_start"] + ["proposal"] * 50
    assert [e["i"] for e in events[1:]] == list(range(50))

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    with Tracer(tmp_path) as t:
        t.emit("resume")
        for i in range(20):
            t.emit("proposal", i=i)
        assert len(synced) == 1  # the resume; proposals only flushed
        t.emit("node_end", node="mutate", iteration=0, duration_s=0.1)
        assert len(synced) == 2 and set(synced) == {t._file.fileno()}
    assert set(DURABLE_EVENTS) >= {"node_end", "run_end"}
