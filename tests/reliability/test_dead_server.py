"""A local LLM server that dies is reported at once with its cause, not retried for minutes (issue 29).

The stand-in (tests/fixtures/dying_llama) is a real process put first on PYTHONPATH in place of
``llama_cpp``: visfeed's own wrapper, supervision, client and CLI run unchanged against it, and it kills
itself with a real signal, as a llama.cpp built for the wrong CPU (SIGILL) or the OOM killer (SIGKILL) does.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reliability.harness import assert_run_dir_readable, flat, llm_calls, subprocess_env, visfeed_exe, world_args
from visfeed.tools.llm.local_server import missing_local_modules

STANDIN = Path(__file__).resolve().parents[1] / "fixtures" / "dying_llama"

pytestmark = pytest.mark.skipif(
    bool(set(missing_local_modules()) - {"llama_cpp"}), reason="the 'local' extra's server modules are missing"
)


def _standin_env(signal_name: str, die_on: int) -> dict[str, str]:
    env = subprocess_env(STANDIN_SIGNAL=signal_name, STANDIN_DIE_ON=str(die_on))
    env["PYTHONPATH"] = os.pathsep.join([str(STANDIN), env["PYTHONPATH"]])
    return env


def _run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Exit code and output of a ``visfeed`` subprocess (its wall time is not asserted: the machine is shared)."""
    done = subprocess.run([*visfeed_exe(), *args], env=env, capture_output=True, text=True, timeout=300)
    return done.returncode, flat(done.stdout + done.stderr)


@pytest.mark.parametrize(
    ("signal_name", "says"),
    [("ILL", "SIGILL (illegal instruction): llama.cpp was built for CPU features"), ("KILL", "SIGKILL")],
)
def test_server_dying_on_its_first_completion_fails_optimize_before_any_work(
    world: dict[str, Any], tmp_path: Path, signal_name: str, says: str
) -> None:
    run_dir = tmp_path / "run"
    code, output = _run(world_args(world, run_dir, "--provider", "local"), _standin_env(signal_name, 1))
    assert code == 1, output
    assert says in output, output
    assert "stand-in: dying with" in output, output  # the end of the server's log is quoted
    assert not run_dir.exists(), "a run that could not start its LLM must leave nothing behind"


def test_server_dying_mid_run_fails_the_run_with_its_signal_and_leaves_it_resumable(
    world: dict[str, Any], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    code, output = _run(world_args(world, run_dir, "--provider", "local"), _standin_env("KILL", 2))
    assert code == 1, output
    assert "was killed by SIGKILL" in output and "visfeed resume" in output, output
    result = assert_run_dir_readable(run_dir)
    assert result.status.startswith("failed") and "SIGKILL" in (result.error or ""), result
    calls = llm_calls(run_dir)
    assert calls and all(c["attempts"] == 1 for c in calls), calls  # no retry of a dead server


def test_doctor_reports_the_broken_server(tmp_path: Path) -> None:
    code, output = _run(["doctor"], _standin_env("ILL", 1))
    assert code == 1, output
    assert "FAIL local LLM server" in output and "SIGILL" in output, output
    assert "cannot run its main job here" in output
