"""The real embedded model: llama_cpp.server with SmolLM2, one structured call end to end, and shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field
from tests.support.processes import default_sigint
from tests.support.required import missing_part

from visfeed.errors import ConfigError, ProviderError
from visfeed.state.llm import LLMSettings
from visfeed.tools.llm import LLMClient, LocalLLMServer, ResponseCache, resolve_provider
from visfeed.tools.llm.local_server import missing_local_modules

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _local_extra() -> None:
    """Every test here runs the real server: skip without the extra, fail under CI."""
    missing = missing_local_modules()
    if missing:
        missing_part(f"llama_cpp server extra not importable ({', '.join(missing)}): pip install 'visfeed[local]'")


class Descriptions(BaseModel):
    descriptions: list[str] = Field(min_length=1, max_length=5)


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting for a reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_structured_call_end_to_end_then_shutdown(tmp_path: Path) -> None:
    messages = [
        SystemMessage("You write short visual descriptions of object classes."),
        HumanMessage("Class: banana. Give 3 short descriptions of what it looks like."),
    ]
    example = Descriptions(descriptions=["a small red fruit", "tiny yellow seeds on its skin", "a green leafy top"])
    settings = LLMSettings(max_tokens=160, seed=3, temperature=0.7, timeout_s=60)
    with resolve_provider("local") as handle:
        client = LLMClient(handle, settings, cache=ResponseCache(tmp_path / "c.sqlite"))
        answer = asyncio.run(client.astructured(messages, Descriptions, task="init", example=example))
        assert handle.server is not None
        pid = handle.server.pid
        assert pid is not None and alive(pid)
        again = asyncio.run(client.astructured(messages, Descriptions, task="init", example=example))
    assert isinstance(answer, Descriptions) and all(isinstance(d, str) for d in answer.descriptions)
    assert any(d.strip() for d in answer.descriptions)
    first = client.records[0]
    assert first.provider == "local" and first.prompt_tokens > 50 and first.completion_tokens > 0
    assert again == answer and client.records[-1].cache_hit
    assert not alive(pid), "the server outlived its context"


def test_server_stops_when_the_body_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"), LocalLLMServer() as server:
        pid = server.pid
        assert pid is not None and alive(pid)
        raise RuntimeError("boom")
    assert not alive(pid) and not server.running


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_no_orphan_when_the_parent_dies(sig: signal.Signals) -> None:
    code = (
        "import time; from visfeed.tools.llm import LocalLLMServer\n"
        "with LocalLLMServer() as s:\n"
        "    print(s.pid, flush=True); time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # the ctrl-c case must work when the suite runs in the background
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert alive(pid)
        os.kill(parent.pid, sig)  # SIGKILL: no cleanup runs in the parent; SIGINT: KeyboardInterrupt unwinds
        parent.wait(timeout=20)
        if sig == signal.SIGINT:
            assert parent.stderr is not None and "KeyboardInterrupt" in parent.stderr.read()
        assert wait_gone(pid), "the server survived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_broken_model_file_fails_with_the_server_log(tmp_path: Path) -> None:
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"GGUF" + b"\0" * 64)
    server = LocalLLMServer(bogus, startup_timeout_s=60)
    with pytest.raises(ProviderError, match="exited with code"):
        server.start()
    assert not server.running
    with pytest.raises(ConfigError, match="not found"):
        LocalLLMServer(tmp_path / "absent.gguf").start()
