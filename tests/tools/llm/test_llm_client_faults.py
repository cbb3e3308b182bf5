"""LLMClient against the loopback fault server: retries, timeouts, budget, cache, accounting, repairs."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from pydantic import BaseModel
from tests.support.fault_server import (
    FaultServer,
    drop,
    empty_choices,
    malformed,
    reply,
    slow,
    status,
    tool_call_reply,
)

from visfeed.errors import BudgetExceeded, ProviderError
from visfeed.state.llm import LLMSettings
from visfeed.tools.llm import (
    Budget,
    LLMCallRecord,
    LLMClient,
    ModelPrice,
    ResponseCache,
    StructuredOutputError,
    resolve_provider,
)

# timeout_s leaves room for a loaded 2-core machine; tests of timeouts set their own, smaller or not.
FAST = {"timeout_s": 1.5, "max_retries": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "max_tokens": 64}
GOOD = '{"name": "apple", "count": 2}'
# A reply slower than any test could wait: timing checks are orderings ("the call ended before the slow
# reply was sent"), which a busy machine meets, not tight bounds on how long the call took.
NEVER_S = 30.0


class Pair(BaseModel):
    name: str
    count: int


MESSAGES: list[BaseMessage] = [SystemMessage("You count fruit."), HumanMessage("How many apples?")]


def make_client(srv: FaultServer, *, model: str = "fault-model", **kw: Any) -> LLMClient:
    settings = LLMSettings(**{**FAST, **kw.pop("settings", {})})
    handle = resolve_provider(f"openai-compatible:{model}", base_url=srv.url, timeout_s=5, env={})
    return LLMClient(handle, settings, **kw)


def test_structured_call_sends_json_mode_and_accounts_tokens(fault_server: FaultServer) -> None:
    fault_server.script(reply(GOOD, prompt_tokens=11, completion_tokens=7))
    client = make_client(fault_server, settings={"temperature": 0.3, "seed": 5})
    out = asyncio.run(client.astructured(MESSAGES, Pair, task="count"))
    assert out == Pair(name="apple", count=2)
    body = fault_server.requests[0].body
    assert body is not None
    assert body["response_format"]["type"] == "json_object"
    assert body["response_format"]["schema"]["properties"]["count"]["type"] == "integer"
    assert body["max_tokens"] == 64 and body["temperature"] == 0.3 and body["seed"] == 5
    assert "JSON schema" in body["messages"][0]["content"]  # the schema is in the system prompt too
    (record,) = client.records
    assert (record.prompt_tokens, record.completion_tokens, record.attempts) == (11, 7, 1)
    assert record.task == "count" and record.provider == "openai-compatible" and not record.cache_hit
    totals = client.totals
    assert (totals.calls, totals.prompt_tokens, totals.completion_tokens, totals.total_tokens) == (1, 11, 7, 18)


def test_rate_limit_retry_after_is_honoured(fault_server: FaultServer) -> None:
    fault_server.script(status(429, retry_after=0.3), reply(GOOD))
    client = make_client(fault_server)
    t0 = time.perf_counter()
    out = asyncio.run(client.astructured(MESSAGES, Pair, task="t"))
    assert out.count == 2
    assert time.perf_counter() - t0 >= 0.3  # backoff alone would be ~0.01 s
    assert fault_server.request_count == 2
    assert client.records[0].attempts == 2 and client.totals.retries == 1


def test_server_errors_exhaust_retries_with_a_clear_error(fault_server: FaultServer) -> None:
    fault_server.default = status(500)
    seen: list[tuple[LLMCallRecord, Any]] = []
    client = make_client(fault_server, on_call=lambda r, m, a: seen.append((r, a)))
    with pytest.raises(ProviderError) as info:
        asyncio.run(client.astructured(MESSAGES, Pair, task="t"))
    err = info.value
    assert (err.provider, err.model, err.status) == ("openai-compatible", "fault-model", 500)
    assert "after 3 attempt(s)" in str(err)
    assert fault_server.request_count == 3  # 1 + max_retries
    (record, answer) = seen[0]
    assert answer is None and record.error is not None and record.attempts == 3
    assert client.totals.errors == 1


@pytest.mark.parametrize(
    "fault",
    [malformed(), empty_choices(), drop(), slow(NEVER_S, GOOD), status(503)],
    ids=["malformed", "empty_choices", "dropped", "slow", "503"],
)
def test_transient_faults_are_retried(fault_server: FaultServer, fault: Any) -> None:
    fault_server.script(fault, reply(GOOD))
    client = make_client(fault_server)
    t0 = time.perf_counter()
    assert asyncio.run(client.astructured(MESSAGES, Pair, task="t")).name == "apple"
    assert client.records[0].attempts == 2
    assert fault_server.request_count == 2
    assert time.perf_counter() - t0 < NEVER_S  # a slow reply is cut at timeout_s=1.5, not waited for


def test_every_attempt_timing_out_raises_after_bounded_time(fault_server: FaultServer) -> None:
    fault_server.default = slow(NEVER_S, GOOD)
    client = make_client(fault_server, settings={"timeout_s": 0.2, "max_retries": 1})
    t0 = time.perf_counter()
    with pytest.raises(ProviderError, match="timed out"):
        asyncio.run(client.astructured(MESSAGES, Pair, task="t"))
    assert time.perf_counter() - t0 < NEVER_S  # two attempts of 0.2 s, never the reply's 30 s
    assert fault_server.request_count == 2


def test_client_errors_are_not_retried(fault_server: FaultServer) -> None:
    fault_server.script(status(401))
    client = make_client(fault_server)
    with pytest.raises(ProviderError, match="API key") as info:
        asyncio.run(client.astructured(MESSAGES, Pair, task="t"))
    assert info.value.status == 401
    assert fault_server.request_count == 1


def test_cache_hit_sends_no_request_and_survives_a_new_client(fault_server: FaultServer, tmp_path: Path) -> None:
    path = tmp_path / "llm.sqlite"
    fault_server.default = reply(GOOD, prompt_tokens=20, completion_tokens=5)
    budget = Budget(max_calls=1)
    client = make_client(fault_server, cache=ResponseCache(path), budget=budget)
    first = asyncio.run(client.astructured(MESSAGES, Pair, task="t"))
    second = asyncio.run(client.astructured(MESSAGES, Pair, task="t"))  # budget is spent: only a hit can pass
    assert first == second and fault_server.request_count == 1
    assert client.records[1].cache_hit and client.records[1].attempts == 0
    assert (client.totals.calls, client.totals.cache_hits, budget.used_calls) == (1, 1, 1)
    # a rerun (new client, same file) pays nothing either
    rerun = make_client(fault_server, cache=ResponseCache(path))
    assert asyncio.run(rerun.astructured(MESSAGES, Pair, task="t")) == first
    assert fault_server.request_count == 1
    # a salt, other messages or the switch off all mean a fresh call
    asyncio.run(rerun.astructured(MESSAGES, Pair, task="t", cache_salt="sample-2"))
    asyncio.run(rerun.astructured([*MESSAGES[:1], HumanMessage("How many pears?")], Pair, task="t"))
    off = make_client(fault_server, cache=ResponseCache(path), settings={"cache_enabled": False})
    asyncio.run(off.astructured(MESSAGES, Pair, task="t"))
    assert fault_server.request_count == 4


def test_api_key_never_reaches_the_cache(fault_server: FaultServer, tmp_path: Path) -> None:
    sentinel = "sk-SENTINEL-9f8e7d6c5b4a"
    path = tmp_path / "llm.sqlite"
    handle = resolve_provider(
        "openai-compatible:fault-model", base_url=fault_server.url, env={"OPENAI_API_KEY": sentinel}
    )
    client = LLMClient(handle, LLMSettings(**FAST), cache=ResponseCache(path))
    fault_server.script(reply(GOOD), reply("plain answer"))
    asyncio.run(client.astructured(MESSAGES, Pair, task="t"))
    asyncio.run(client.ainvoke(MESSAGES, task="chat"))
    assert fault_server.requests[0].headers["authorization"] == f"Bearer {sentinel}"  # it was really sent
    assert client.cache is not None and len(client.cache) == 2
    client.cache.close()
    for f in tmp_path.iterdir():
        assert sentinel.encode() not in f.read_bytes(), f.name


def test_budget_stops_before_any_request(fault_server: FaultServer) -> None:
    fault_server.default = reply(GOOD, prompt_tokens=30, completion_tokens=10)
    client = make_client(fault_server, budget=Budget(max_calls=2))
    asyncio.run(client.astructured(MESSAGES, Pair, task="t", cache_salt="1"))
    asyncio.run(client.astructured(MESSAGES, Pair, task="t", cache_salt="2"))
    with pytest.raises(BudgetExceeded, match="max_calls=2"):
        asyncio.run(client.astructured(MESSAGES, Pair, task="t", cache_salt="3"))
    assert fault_server.request_count == 2


def test_token_and_cost_budgets_are_conservative(fault_server: FaultServer) -> None:
    fault_server.default = reply(GOOD, prompt_tokens=1000, completion_tokens=500)
    budget = Budget(max_tokens=1550)  # after 1500 used, the next call's worst case (~10 + 64 cap) is over
    client = make_client(fault_server, budget=budget)
    asyncio.run(client.astructured(MESSAGES, Pair, task="t"))
    assert budget.used_tokens == 1500
    with pytest.raises(BudgetExceeded, match="max_tokens=1550"):
        asyncio.run(client.ainvoke(MESSAGES, task="t"))
    assert fault_server.request_count == 1

    prices = {"priced-model": ModelPrice(input_per_mtok=1000.0, output_per_mtok=2000.0)}
    budget = Budget(max_cost_usd=2.1, prices=prices)  # $2 spent, then a worst case of ~$0.14 is over
    client = make_client(fault_server, model="priced-model", budget=budget)
    asyncio.run(client.ainvoke(MESSAGES, task="t"))
    assert client.records[0].cost_usd == pytest.approx(1000 * 1e-3 + 500 * 2e-3)
    with pytest.raises(BudgetExceeded, match="max_cost_usd"):
        asyncio.run(client.ainvoke(MESSAGES, task="t", cache_salt="again"))


def test_repair_shows_the_error_to_the_model(fault_server: FaultServer) -> None:
    fault_server.script(reply("Sure! Here are apples."), reply('{"name": "apple", "count": "many"}'), reply(GOOD))
    client = make_client(fault_server)
    assert asyncio.run(client.astructured(MESSAGES, Pair, task="t")) == Pair(name="apple", count=2)
    assert [r.repair_round for r in client.records] == [0, 1, 2]
    second, third = (fault_server.requests[i].body for i in (1, 2))
    assert second is not None and third is not None
    assert second["messages"][-2] == {"role": "assistant", "content": "Sure! Here are apples."}
    assert "no JSON object" in second["messages"][-1]["content"]
    assert "count" in third["messages"][-1]["content"] and "integer" in third["messages"][-1]["content"]


def test_repairs_are_bounded(fault_server: FaultServer) -> None:
    fault_server.default = reply("__import__('os').system('echo pwned')")  # never evaluated
    client = make_client(fault_server, settings={"max_repairs": 1})
    with pytest.raises(StructuredOutputError, match="after 1 repair round"):
        asyncio.run(client.astructured(MESSAGES, Pair, task="t"))
    assert fault_server.request_count == 2


def test_truncated_reply_is_repaired(fault_server: FaultServer) -> None:
    fault_server.script(reply('{"name": "app', finish_reason="length"), reply(GOOD))
    client = make_client(fault_server)
    assert asyncio.run(client.astructured(MESSAGES, Pair, task="t")).count == 2
    body = fault_server.requests[1].body
    assert body is not None and "max_tokens" in body["messages"][-1]["content"]


def test_concurrency_is_bounded(fault_server: FaultServer) -> None:
    fault_server.default = slow(0.2, GOOD)
    client = make_client(fault_server, settings={"max_concurrency": 2, "timeout_s": 2.0})

    async def many() -> list[Pair]:
        calls = [client.astructured(MESSAGES, Pair, task="t", cache_salt=str(i)) for i in range(5)]
        return await asyncio.gather(*calls)

    assert len(asyncio.run(many())) == 5
    assert fault_server.max_in_flight == 2


def test_tool_calling_round_trip(fault_server: FaultServer) -> None:
    @tool
    def lookup(query: str) -> str:
        """Look up a class description."""
        return query

    fault_server.script(tool_call_reply("lookup", {"query": "apple"}))
    client = make_client(fault_server)
    answer = asyncio.run(client.ainvoke(MESSAGES, tools=[lookup], task="agent"))
    assert answer.tool_calls[0]["name"] == "lookup" and answer.tool_calls[0]["args"] == {"query": "apple"}
    body = fault_server.requests[0].body
    assert body is not None and body["tool_choice"] == "auto"
    assert body["tools"][0]["function"]["name"] == "lookup"


def test_openai_provider_uses_native_json_schema(fault_server: FaultServer) -> None:
    handle = resolve_provider("openai:gpt-4o-mini", base_url=fault_server.url, env={"OPENAI_API_KEY": "sk-t"})
    assert handle.supports_native_structured
    client = LLMClient(handle, LLMSettings(**FAST))
    fault_server.script(reply(GOOD, prompt_tokens=100, completion_tokens=20))
    assert asyncio.run(client.astructured(MESSAGES, Pair, task="t")).name == "apple"
    body = fault_server.requests[0].body
    assert body is not None
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body
    assert "JSON schema" not in json.dumps(body["messages"])  # native: no schema in the prompt
    assert client.records[0].cost_usd == pytest.approx((100 * 0.15 + 20 * 0.60) / 1e6)


def test_blocking_wrappers_and_repeated_event_loops(fault_server: FaultServer) -> None:
    fault_server.default = reply(GOOD)
    client = make_client(fault_server)
    for i in range(2):
        assert client.structured(MESSAGES, Pair, task="t", cache_salt=str(i)).count == 2
        assert asyncio.run(client.astructured(MESSAGES, Pair, task="t", cache_salt=f"a{i}")).count == 2
    assert client.invoke(MESSAGES, task="chat").content == GOOD
    client.close()
    assert fault_server.request_count == 5


def test_a_failing_hook_does_not_fail_the_call(fault_server: FaultServer, caplog: pytest.LogCaptureFixture) -> None:
    def hook(record: LLMCallRecord, messages: list[BaseMessage], answer: Any) -> None:
        raise RuntimeError("trace disk full")

    client = make_client(fault_server, on_call=hook)
    fault_server.script(reply(GOOD))
    assert asyncio.run(client.astructured(MESSAGES, Pair, task="t")).count == 2
    assert "on_call hook failed" in caplog.text
