"""Secrets: the API key (and so the Authorization header) never lands in any file the run writes or prints.

A sentinel key is used against the loopback server, which proves it was sent; then every file under the
test's folder (run directory, response cache, embedding cache, SQLite -wal/-shm files, trace, report,
export, home and temp folders) and every line the CLI printed or logged is searched for it.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

from reliability.harness import AutoFaultServer, files_containing, files_under, invoke, world_args
from support.fault_server import status


@pytest.fixture()
def sentinel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    key = f"sk-visfeed-sentinel-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    for var, sub in (("HOME", "home"), ("XDG_CACHE_HOME", "xdg"), ("VISFEED_CACHE_DIR", "vcache"), ("TMPDIR", "tmp")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    return key


def args(world: dict[str, Any], srv: AutoFaultServer, run_dir: Path, tmp_path: Path, *extra: str) -> list[str]:
    return world_args(
        world, run_dir, "-p", "openai-compatible:fault-model", "--base-url", srv.url, "--max-iterations", "1",
        "--set", f"backbone.embedding_cache={tmp_path / 'emb.sqlite'}", "--set", "llm.backoff_base_s=0.01", *extra,
    )  # fmt: skip


def assert_nowhere(key: str, tmp_path: Path, texts: list[str]) -> None:
    core = key.removeprefix("sk-visfeed-sentinel-")
    files = files_under(tmp_path)
    assert any(p.name.endswith("-wal") or p.name.endswith(".sqlite") for p in files)
    for needle in (key, core[:16], core[-16:]):
        assert not files_containing(needle, files), f"{needle} leaked into {files_containing(needle, files)}"
        leaked = [t[max(0, t.find(needle) - 200) : t.find(needle) + 50] for t in texts if needle in t]
        assert not leaked, leaked


def test_the_api_key_is_sent_but_never_written(
    world: dict[str, Any], tmp_path: Path, sentinel: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run_dir = tmp_path / "run"
    with AutoFaultServer() as srv:
        srv.script(status(429, retry_after=0.01), status(500))
        res = invoke(args(world, srv, run_dir, tmp_path))
        assert res.exit_code == 0, res.output
    assert srv.requests and all(r.headers.get("authorization") == f"Bearer {sentinel}" for r in srv.requests)
    outputs = [res.output]
    for cmd in (
        ["trace", str(run_dir), "--messages"],
        ["runs", str(tmp_path)],
        ["report", str(run_dir)],
        ["export", str(run_dir), "--out", str(tmp_path / "export.json")],
    ):
        shown = invoke(cmd)
        assert shown.exit_code == 0, (cmd, shown.output)
        outputs.append(shown.output)
    assert (run_dir / "report.html").is_file() and (tmp_path / "export.json").is_file()
    assert_nowhere(sentinel, tmp_path, [*outputs, caplog.text])


def test_a_server_that_echoes_the_key_in_errors_cannot_leak_it(
    world: dict[str, Any], tmp_path: Path, sentinel: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run_dir = tmp_path / "run"
    with AutoFaultServer() as srv:
        srv.echo_auth = True
        srv.script(status(429))  # retried: the retry warning quotes the error
        srv.default = status(401)  # not retried: the run fails with the error
        res = invoke(args(world, srv, run_dir, tmp_path))
    assert res.exit_code == 1, res.output
    assert "HTTP 401" in res.output and "check the API key" in res.output
    traced = invoke(["trace", str(run_dir)])
    assert traced.exit_code == 0
    assert_nowhere(sentinel, tmp_path, [res.output, traced.output, caplog.text])
