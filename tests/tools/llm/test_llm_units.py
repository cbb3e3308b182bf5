"""Pure parts of the LLM layer: JSON extraction, retry classification, budget, prices and the cache file."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from visfeed.errors import BudgetExceeded, ConfigError, OutputParseError
from visfeed.state.llm import LLMSettings
from visfeed.tools.llm import Budget, LLMCallRecord, ModelPrice, ResponseCache, UsageTotals
from visfeed.tools.llm.accounting import estimate_cost, find_price
from visfeed.tools.llm.cache import cache_key, cache_key_material, dump_message, load_message
from visfeed.tools.llm.retry import backoff_delay, classify, parse_retry_after
from visfeed.tools.llm.structured import extract_json, parse_structured, schema_json, with_schema_instruction


class Descriptions(BaseModel):
    descriptions: list[str] = Field(min_length=1)


# ----------------------------------------------------------------- structured
def test_extract_json_skips_fences_and_prose() -> None:
    assert extract_json('Sure!\n```json\n{"a": [1, 2]}\n```\nDone.') == {"a": [1, 2]}
    assert extract_json('noise {"a": 1} trailing {"b": 2}') == {"a": 1}
    with pytest.raises(OutputParseError, match="no JSON"):
        extract_json("__import__('os').system('rm -rf /')")  # text, never evaluated
    with pytest.raises(OutputParseError, match="not valid JSON"):
        extract_json('{"a": ')


def test_parse_structured_names_the_field() -> None:
    assert parse_structured('{"descriptions": ["red"]}', Descriptions).descriptions == ["red"]
    with pytest.raises(OutputParseError, match="descriptions"):
        parse_structured('{"descriptions": []}', Descriptions)


def test_schema_instruction_joins_the_system_prompt() -> None:
    example = Descriptions(descriptions=["a small red fruit"])
    out = with_schema_instruction([SystemMessage("Be visual."), HumanMessage("banana")], Descriptions, example)
    assert len(out) == 2 and str(out[0].content).startswith("Be visual.")
    assert '"descriptions"' in str(out[0].content) and "a small red fruit" in str(out[0].content)
    bare = with_schema_instruction([HumanMessage("banana")], Descriptions)
    assert isinstance(bare[0], SystemMessage) and len(bare) == 2


# ---------------------------------------------------------------------- retry
def _status_error(code: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://x/v1/chat/completions")
    response = httpx.Response(code, headers=headers or {}, request=request)
    return openai.APIStatusError("boom", response=response, body=None)


def test_schema_json_is_pydantic_schema_and_a_fresh_copy_each_time() -> None:
    class Pick(BaseModel):
        name: str
        score: float = 0.0

    first = schema_json(Pick)
    assert first == Pick.model_json_schema() and list(first) == list(Pick.model_json_schema())
    first["properties"].clear()  # a caller editing its copy changes nobody else's
    assert schema_json(Pick) == Pick.model_json_schema()


def test_classify_transient_and_permanent() -> None:
    assert classify(_status_error(429, {"retry-after": "2"})).retry_after == 2.0
    assert classify(_status_error(503)).retryable
    bad_request = classify(_status_error(400))
    assert not bad_request.retryable and bad_request.status == 400
    assert "API key" in classify(_status_error(401)).reason
    assert classify(TimeoutError()).retryable
    assert classify(httpx.ConnectError("refused")).retryable
    assert not classify(ValueError("bug")).retryable


def test_retry_after_formats() -> None:
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after(None) is None


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    rng = random.Random(0)
    delays = [
        backoff_delay(a, base_s=1, max_s=8, retry_after=None, max_retry_after_s=60, rng=rng) for a in (1, 2, 3, 6)
    ]
    assert 0.5 <= delays[0] <= 1 and 1 <= delays[1] <= 2 and 2 <= delays[2] <= 4 and 4 <= delays[3] <= 8
    assert backoff_delay(1, base_s=0.1, max_s=1, retry_after=5, max_retry_after_s=60, rng=rng) == 5
    assert backoff_delay(1, base_s=0.1, max_s=1, retry_after=500, max_retry_after_s=60, rng=rng) == 60


def test_settings_validate() -> None:
    with pytest.raises(ValueError, match="backoff_max_s"):
        LLMSettings(backoff_base_s=5, backoff_max_s=1)
    assert all(f.description for f in LLMSettings.model_fields.values())


# ------------------------------------------------------------- budget, prices
def test_prices_match_dated_model_names() -> None:
    assert find_price(
        "gpt-4o-mini-2024-07-18",
        {
            "gpt-4o": ModelPrice(input_per_mtok=1, output_per_mtok=1),
            "gpt-4o-mini": ModelPrice(input_per_mtok=2, output_per_mtok=2),
        },
    )
    assert estimate_cost("gpt-4o-mini-2024-07-18", 1_000_000, 0) == pytest.approx(0.15)
    assert estimate_cost("my-model", 10, 10) is None
    assert estimate_cost("my-model", 10, 10, free=True) == 0.0


def test_budget_reserves_and_settles() -> None:
    budget = Budget(max_calls=2)
    first = budget.reserve("m", prompt_tokens=10, max_completion_tokens=5, free=True)
    second = budget.reserve("m", prompt_tokens=10, max_completion_tokens=5, free=True)
    with pytest.raises(BudgetExceeded):  # two in flight already hold the whole budget
        budget.reserve("m", prompt_tokens=10, max_completion_tokens=5, free=True)
    budget.settle(first, tokens=12, cost_usd=0, sent=True)
    budget.settle(second, tokens=0, cost_usd=0, sent=False)  # never reached the provider: freed
    assert budget.used_calls == 1 and budget.used_tokens == 12
    budget.reserve("m", prompt_tokens=10, max_completion_tokens=5, free=True)
    assert "calls 1/2" in budget.describe()


def test_cost_limit_needs_a_price() -> None:
    with pytest.raises(ConfigError, match="no price"):
        Budget(max_cost_usd=1.0).check_model("mystery-model", free=False)
    Budget(max_cost_usd=1.0).check_model("mystery-model", free=True)


def test_totals_count_hits_apart() -> None:
    totals = UsageTotals()
    totals.add(LLMCallRecord(task="t", provider="p", model="m", prompt_tokens=3, completion_tokens=2, attempts=3))
    totals.add(LLMCallRecord(task="t", provider="p", model="m", cache_hit=True))
    assert (totals.calls, totals.cache_hits, totals.retries, totals.total_tokens) == (1, 1, 2, 5)


# ---------------------------------------------------------------------- cache
def _material(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "provider": "openai",
        "model": "m",
        "endpoint": None,
        "kind": "chat",
        "params": {"temperature": 1.0},
        "messages": [HumanMessage("hi")],
    }
    base.update(over)
    return cache_key_material(**base)  # type: ignore[arg-type]


def test_cache_key_depends_on_what_changes_the_answer() -> None:
    key = cache_key(_material())
    assert key == cache_key(_material(messages=[HumanMessage("hi", id="other-id")]))  # ids do not matter
    for change in ({"model": "m2"}, {"params": {"temperature": 0.5}}, {"messages": [HumanMessage("ho")]},
                   {"salt": "2"}, {"schema": {"name": "S"}}, {"tools": [{"name": "t"}]}):  # fmt: skip
        assert cache_key(_material(**change)) != key, change


def test_cache_round_trip_and_message_whitelist(tmp_path: Path) -> None:
    message = AIMessage(
        content="hi",
        tool_calls=[{"name": "f", "args": {"a": 1}, "id": "c1", "type": "tool_call"}],
        usage_metadata={"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
        response_metadata={"model_name": "m", "headers": {"authorization": "Bearer sk-secret"}},
    )
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        cache.put("k", {"message": dump_message(message)}, provider="p", model="m", task="t")
        back = load_message(cache.get("k")["message"])  # type: ignore[index]
        assert back.content == "hi" and back.tool_calls[0]["args"] == {"a": 1}
        assert back.usage_metadata is not None and back.usage_metadata["total_tokens"] == 4
        assert "headers" not in back.response_metadata
        assert cache.get("missing") is None
    assert b"sk-secret" not in (tmp_path / "c.sqlite").read_bytes()


def test_cache_is_shared_by_two_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    writer = (
        "import sys; from visfeed.tools.llm import ResponseCache\n"
        "c = ResponseCache(sys.argv[1])\n"
        "for i in range(200): c.put(f'{sys.argv[2]}{i}', {'i': i}, provider='p', model='m', task='t')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(path), tag]) for tag in ("a", "b")]
    with ResponseCache(path) as cache:
        for i in range(200):
            cache.put(f"c{i}", {"i": i}, provider="p", model="m", task="t")
        assert [p.wait(timeout=60) for p in procs] == [0, 0]
        assert len(cache) == 600 and cache.get("b199") == {"i": 199}
