"""Shared pieces of the reliability tests: CLI invocation, run-directory checks, a self-answering fault server.

The fault server here extends ``support.fault_server.FaultServer`` in two ways the reliability tests need:
plain replies are written from the prompt (the same deterministic answers as the scripted provider, so a
run against it gives the same result as a clean run), and the server can die (stop listening and drop
every open connection) and be restarted on the same port, as a real provider outage looks to a client.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sqlite3
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from langchain_core.messages import HumanMessage
from typer.testing import CliRunner

from support.fault_server import Action, FaultServer, _Handler, reply
from support.scripted_provider import ScriptedChat
from visfeed.cli.common import console, out
from visfeed.state.rundir import RunResult, read_trace

TESTS_DIR = Path(__file__).resolve().parents[1]
PROVIDER = "support.scripted_provider:make"
CRASH_PROVIDER = "reliability.crashpoints:make"
AUTO = "\x00auto"  # reply content placeholder: write the answer from the prompt

out.width = console.width = 1000  # rich would wrap long error lines and paths at the runner's 80 columns
runner = CliRunner()


# ----------------------------------------------------------------------------------------- the CLI
def visfeed_exe() -> list[str]:
    """The installed ``visfeed`` console script beside this interpreter (visfeed.cli has no __main__)."""
    exe = Path(sys.executable).parent / "visfeed"
    if not exe.exists():
        raise RuntimeError(f"no visfeed console script at {exe}; pip install -e . first")
    return [str(exe)]


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment of a ``visfeed`` subprocess: tests/ importable (plug-ins), wide output, extras."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), *filter(None, [env.get("PYTHONPATH")])])
    env["COLUMNS"] = "400"
    env.pop("VISFEED_TEST_KILL_AT", None)
    env.pop("VISFEED_TEST_LLM_DELAY", None)
    env.update(extra)
    return env


def world_args(world: dict[str, Any], run_dir: Path, *extra: str, root: Path | None = None) -> list[str]:
    """``visfeed optimize`` arguments for a fast run on the tiny world (no provider chosen)."""
    return [
        "optimize", "-q", "-d", "imagefolder", "--root", str(root or world["images"]),
        "--backbone", str(world["backbone"]), "--run-dir", str(run_dir), "--k-shot", "3", "--seed", "1",
        "--set", "method.n_init=4", "--set", "backbone.device=cpu", "--set", f"backbone.embedding_cache={world['cache']}",
        "--set", "method.mutate_scope=all", *extra,
    ]  # fmt: skip


def invoke(args: list[str]) -> Any:
    """Run the CLI in this process; the result has exit_code and output (stdout and stderr)."""
    from visfeed.cli import app

    return runner.invoke(app, args)


def flat(text: str) -> str:
    """Output with line wrapping undone (rich wraps long lines at the console width)."""
    return " ".join(text.split())


# ------------------------------------------------------------------------------ run-directory checks
def assert_run_dir_readable(run_dir: Path) -> RunResult:
    """Everything a later command reads must parse, whatever moment the process died at."""
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert isinstance(cfg, dict) and cfg.get("data", {}).get("name"), cfg
    result = RunResult.model_validate_json((run_dir / "result.json").read_text(encoding="utf-8"))
    events = read_trace(run_dir)
    assert events and events[0]["event"] == "run_start"
    for name, table in (("checkpoints.sqlite", "checkpoints"), ("llm_cache.sqlite", "responses")):
        path = run_dir / name
        if not path.exists():
            continue
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            con.execute(f"SELECT count(*) FROM {table}").fetchone()
        finally:
            con.close()
    return result


def llm_calls(run_dir: Path) -> list[dict[str, Any]]:
    """The run's llm_call events, each tagged with the process segment (0 = first, 1 = first resume...)."""
    segment = -1
    calls = []
    for e in read_trace(run_dir):
        if e["event"] in ("run_start", "resume"):
            segment += 1
        elif e["event"] == "llm_call":
            calls.append({**e, "segment": segment})
    return calls


def paid_calls(run_dir: Path) -> Counter[str]:
    """Identity (task + messages) of every call the provider answered (cache hits excluded), with counts."""
    return Counter(
        json.dumps([c["task"], c["messages"]], sort_keys=True)
        for c in llm_calls(run_dir)
        if not c.get("cache_hit") and not c.get("error")
    )


def outcome(run_dir: Path) -> dict[str, Any]:
    """What must not change between an uninterrupted and an interrupted-then-resumed run."""
    result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    return {
        "status": result["status"],
        "descriptions": json.loads((run_dir / "descriptions.json").read_text(encoding="utf-8")),
        "optimized": {k: result["optimized"][k] for k in ("feedback_accuracy", "test_accuracy")},
        "baselines": {k: v["test_accuracy"] for k, v in result["baselines"].items()},
        "history": [(h["feedback"]["n_correct"], round(h["feedback"]["mean_margin"], 6)) for h in result["history"]],
    }


def files_under(*roots: Path) -> list[Path]:
    """Every regular file under the given files or folders (SQLite -wal/-shm included)."""
    found: list[Path] = []
    for root in roots:
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found += [p for p in root.rglob("*") if p.is_file()]
    return found


def files_containing(needle: str, paths: Iterable[Path]) -> list[str]:
    """Paths whose bytes contain ``needle`` (as UTF-8 or UTF-16, the encodings SQLite may use)."""
    forms = [needle.encode("utf-8"), needle.encode("utf-16-le")]
    return [str(p) for p in paths if any(f in p.read_bytes() for f in forms)]


# --------------------------------------------------------------------------- the self-answering server
def scripted_reply(body: dict[str, Any]) -> str:
    """The scripted provider's answer to an OpenAI chat body (deterministic in the prompt)."""
    msgs = [HumanMessage(content=str(m.get("content") or "")) for m in body.get("messages", [])]
    return str(ScriptedChat()._answer(msgs, None).content)


def prompt_of(body: dict[str, Any]) -> str:
    """All message texts of a request body, joined."""
    return "\n".join(str(m.get("content") or "") for m in body.get("messages", []))


Responder = Callable[[dict[str, Any]], str]


class AutoFaultServer(FaultServer):
    """A FaultServer whose ``AUTO`` replies come from ``responder`` and which can die and come back.

    ``ok_count`` counts answered description requests (AUTO replies): across an outage and a resume it
    must equal a clean run's, which is how a test sees that no answered call was paid for twice. With
    ``echo_auth``, error replies quote the request's Authorization header back (a hostile or careless
    server), so a test can check that error messages cannot carry the key into files or logs.
    """

    def __init__(self, *, responder: Responder = scripted_reply, port: int = 0, default: Action | None = None) -> None:
        super().__init__(default=default or reply(AUTO))
        self.responder = responder
        self.port = port
        self.dead = False
        self.die_after: int | None = None
        self.ok_count = 0
        self.echo_auth = False

    def start(self) -> AutoFaultServer:
        """Bind (the given port, or a free one) and serve in a daemon thread."""
        server = self

        class Handler(_Handler):
            fault = server

            def do_POST(self) -> None:
                if server.dead:  # a dead server answers nothing on connections it had kept open
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                super().do_POST()
                if server.die_after is not None and server.ok_count >= server.die_after and not server.dead:
                    server.die()

            def _answer(self, action: Action, body: dict[str, Any]) -> None:
                if action.kind == "status" and server.echo_auth:  # as some servers do on a bad key
                    text = f"Incorrect API key provided: {self.headers.get('authorization')}"
                    self._send_json(action.status, {"error": {"message": text, "type": "invalid_request_error"}})
                    return
                if action.kind == "reply" and action.content == AUTO:
                    action = dataclasses.replace(action, content=server.responder(body))
                    with server._lock:
                        server.ok_count += 1
                super()._answer(action, body)

        ThreadingHTTPServer.allow_reuse_address = True
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="auto-fault-server", daemon=True
        )
        self._thread.start()
        return self

    def die(self) -> None:
        """Stop listening (connections are refused from now on) and drop every later request."""
        self.dead = True
        threading.Thread(target=self.stop, daemon=True).start()

    def __enter__(self) -> AutoFaultServer:
        return self.start()
