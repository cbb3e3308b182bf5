"""Whole runs against a flaky OpenAI-compatible server (the loopback fault server, real openai client stack).

Transient faults must be absorbed by retries and give exactly the result of a clean run; an outage that
outlasts the retries must stop the run with a clear error (exit 1, ``failed: ProviderError``) that
``visfeed resume`` turns into the clean run's result once the server is healthy, without paying again
for answers already received; bad answers (malformed, empty, naming other classes, overlong) are
repaired, filtered or skipped, never fatal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reliability.harness import (
    AUTO,
    AutoFaultServer,
    assert_run_dir_readable,
    flat,
    invoke,
    llm_calls,
    outcome,
    prompt_of,
    scripted_reply,
    world_args,
)
from support.fault_server import Action, drop, empty_choices, malformed, reply, slow, status
from visfeed.agents.schemas import MAX_DESCRIPTION_CHARS, names_other_class
from visfeed.state.rundir import LIBRARY_FILE, read_trace

CLASSES = ["cherry", "lemon", "lime"]


def provider_args(srv: AutoFaultServer, *extra: str) -> list[str]:
    return [
        "-p", "openai-compatible:fault-model", "--base-url", srv.url, "--max-iterations", "1",
        "--set", "llm.timeout_s=1.5", "--set", "llm.max_retries=4", "--set", "llm.backoff_base_s=0.01", *extra,
    ]  # fmt: skip


def run_against(world: dict[str, Any], srv: AutoFaultServer, run_dir: Path, *extra: str) -> Any:
    return invoke(world_args(world, run_dir, *provider_args(srv, *extra)))


@pytest.fixture(scope="module")
def clean(world: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same run against a healthy server: what every recovered run must reproduce."""
    run_dir = tmp_path_factory.mktemp("clean") / "run"
    with AutoFaultServer() as srv:
        res = run_against(world, srv, run_dir)
        assert res.exit_code == 0, res.output
        return {"outcome": outcome(run_dir), "answered": srv.ok_count}


@pytest.fixture()
def server() -> Iterator[AutoFaultServer]:
    with AutoFaultServer() as srv:
        yield srv


TRANSIENT: dict[str, list[Action]] = {
    "rate_limit_storm": [status(429, retry_after=0.05)] * 4,
    "server_errors": [status(500), status(502), status(503), status(504)],
    "timeouts": [slow(4.0), slow(4.0)],
    "dropped_connections": [drop(), drop(), drop()],
    "malformed_and_empty_bodies": [malformed(), empty_choices(), malformed()],
}


@pytest.mark.parametrize("fault", list(TRANSIENT))
def test_transient_faults_are_retried_to_the_clean_result(
    fault: str, world: dict[str, Any], clean: dict[str, Any], server: AutoFaultServer, tmp_path: Path
) -> None:
    faults = TRANSIENT[fault]
    server.script(*faults)
    res = run_against(world, server, tmp_path / "run")
    assert res.exit_code == 0, res.output
    assert outcome(tmp_path / "run") == clean["outcome"]
    assert server.ok_count == clean["answered"]
    calls = llm_calls(tmp_path / "run")
    assert sum(c["attempts"] - 1 for c in calls) == len(faults), "every fault costs exactly one retry"


OUTAGES: dict[str, tuple[Action | None, str]] = {
    "server_dies": (None, "connection"),
    "rate_limit_outlasts_retries": (status(429, retry_after=0.01), "HTTP 429"),
    "server_errors_outlast_retries": (status(500), "HTTP 500"),
    "every_answer_too_slow": (slow(3.0), "timed out"),
}


@pytest.mark.parametrize("outage", list(OUTAGES))
def test_an_outage_stops_resumably_and_resume_reaches_the_clean_result(
    outage: str, world: dict[str, Any], clean: dict[str, Any], tmp_path: Path
) -> None:
    bad, reason = OUTAGES[outage]
    run_dir = tmp_path / "run"
    srv = AutoFaultServer().start()
    try:
        if bad is None:
            srv.die_after = 3  # answer three calls, then stop listening and drop open connections
        else:
            srv.script(*[reply(AUTO)] * 3)
            srv.default = bad
        res = run_against(world, srv, run_dir, "--set", "llm.max_retries=2")
        assert res.exit_code == 1, res.output
        assert f"visfeed resume {run_dir}" in flat(res.output)
        result = assert_run_dir_readable(run_dir)
        assert result.status.startswith("failed: ProviderError"), result.status
        assert reason in (result.error or ""), result.error
        assert not (run_dir / "descriptions.json").exists()
        answered_before = srv.ok_count
        assert answered_before >= 3
        if bad is None:  # the provider comes back at the same address
            srv.stop()
            srv = AutoFaultServer(port=srv.port).start()
        else:
            srv.default = reply(AUTO)
        res = invoke(["resume", "-q", str(run_dir)])
        assert res.exit_code == 0, res.output
    finally:
        srv.stop()
    assert outcome(run_dir) == clean["outcome"]
    total = answered_before + srv.ok_count if bad is None else srv.ok_count
    assert total == clean["answered"], "answers received before the outage must not be bought again"


def test_invalid_structured_answers_are_repaired(
    world: dict[str, Any], server: AutoFaultServer, tmp_path: Path
) -> None:
    server.script(
        reply("Sure! Here are some descriptions of the fruit."),
        reply('{"classes": [{"class_name": "cherry"}]}'),
        reply('{"classes": [{"class_name": "cherry", "descri', finish_reason="length"),
    )
    res = run_against(world, server, tmp_path / "run")
    assert res.exit_code == 0, res.output
    rounds = [c["repair_round"] for c in llm_calls(tmp_path / "run")]
    assert max(rounds) >= 1
    assert not [e for e in read_trace(tmp_path / "run") if e["event"] == "init_fallback"]
    raw = json.loads((tmp_path / "run" / "descriptions_raw.json").read_text())
    assert set(raw) == set(CLASSES) and all(raw.values())


def test_answers_that_never_validate_are_skipped_not_fatal(world: dict[str, Any], tmp_path: Path) -> None:
    with AutoFaultServer(responder=lambda body: "I cannot answer in JSON, sorry.") as srv:
        res = run_against(world, srv, tmp_path / "run")
    assert res.exit_code == 0, res.output
    events = read_trace(tmp_path / "run")
    assert any(e["event"] == "llm_invalid" for e in events)
    assert {e["class_name"] for e in events if e["event"] == "init_fallback"} == set(CLASSES)
    # each logical call is bounded: the first try plus max_repairs (2) repair rounds
    assert max(c["repair_round"] for c in llm_calls(tmp_path / "run")) == 2
    # the LLM contributed nothing: every chosen item is a name template, a visual-word sentence, the no-LLM
    # visual-words proposal or the neutral fallback
    assert {e.get("origin") for e in events if e["event"] == "proposal"} <= {"visual_words"}
    library = json.loads((tmp_path / "run" / LIBRARY_FILE).read_text())
    chosen = [x for c in CLASSES for x in library[c] if x["chosen"]]
    assert chosen and all(
        x["source"] in {"name", "words", "visual_words"} or x["text"] == "its typical appearance" for x in chosen
    ), chosen


def test_an_empty_answer_is_asked_again(world: dict[str, Any], server: AutoFaultServer, tmp_path: Path) -> None:
    server.script(reply('{"classes": []}'))
    res = run_against(world, server, tmp_path / "run")
    assert res.exit_code == 0, res.output
    assert not [e for e in read_trace(tmp_path / "run") if e["event"] == "init_fallback"]
    assert all(json.loads((tmp_path / "run" / "descriptions_raw.json").read_text()).values())


def _edit_answer(body: dict[str, Any], extra: Any) -> str:
    """The scripted answer with ``extra(class_name)`` descriptions added to every class entry."""
    data = json.loads(scripted_reply(body))
    for entry in data.get("classes", []):
        entry["descriptions"] = [*extra(entry["class_name"]), *entry["descriptions"]]
    if "descriptions" in data:
        data["descriptions"] = [*extra(""), *data["descriptions"]]
    return json.dumps(data)


def test_descriptions_naming_other_classes_are_dropped(world: dict[str, Any], tmp_path: Path) -> None:
    def naming(body: dict[str, Any]) -> str:
        return _edit_answer(body, lambda c: [f"shaped like a {o}" for o in CLASSES if o != c])

    with AutoFaultServer(responder=naming) as srv:
        res = run_against(world, srv, tmp_path / "run", "--set", "method.similarity_threshold=1.0001")
    assert res.exit_code == 0, res.output
    raw = json.loads((tmp_path / "run" / "descriptions_raw.json").read_text())
    assert all(raw.values())
    assert not [(c, d) for c, ds in raw.items() for d in ds if names_other_class(d, c, CLASSES)]
    drops = [e for e in read_trace(tmp_path / "run") if e["event"] == "filter_drop"]
    assert drops and all("names another class" in e["reason"] for e in drops)
    assert json.loads((tmp_path / "run" / "result.json").read_text())["filter_dropped"] == len(drops)


def test_overlong_answers_are_cut_to_size(world: dict[str, Any], tmp_path: Path) -> None:
    filler = "a very long rambling description " * 200

    def overlong(body: dict[str, Any]) -> str:
        if "repair" in prompt_of(body).lower() or re.search(r"cut off", prompt_of(body)):
            return scripted_reply(body)
        return _edit_answer(body, lambda c: [filler, filler.upper()])

    with AutoFaultServer(responder=overlong) as srv:
        srv.script(reply('{"classes": [{"class_name": "lime", "descriptions": ["a gr', finish_reason="length"))
        res = run_against(world, srv, tmp_path / "run")
    assert res.exit_code == 0, res.output
    raw = json.loads((tmp_path / "run" / "descriptions_raw.json").read_text())
    assert all(raw.values())
    assert all(len(d) <= MAX_DESCRIPTION_CHARS for ds in raw.values() for d in ds)
    assert not [d for ds in raw.values() for d in ds if "rambling" in d.lower()]
