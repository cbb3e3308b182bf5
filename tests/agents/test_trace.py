"""The trace: well-formed JSON lines, torn last line ignored, appends after a crash start on a new line."""

from __future__ import annotations

import json

from langchain_core.messages import AIMessage, HumanMessage

from visfeed.agents.trace import Tracer
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
