"""Crash and resume of the real ``visfeed`` process: SIGKILL at several points and Ctrl-C, then resume.

One run is killed five times in a row (each resume dies at the next point), then resumed to the end:

1. SIGKILL from outside while an LLM call of mutate (iteration 0) is in flight;
2. SIGKILL inside the SQLite transaction that writes the checkpoint after crossover (iteration 0);
3. SIGKILL between iterations, half-way through writing a trace line (a torn last line);
4. Ctrl-C (SIGINT) while an LLM call of mutate (iteration 1) is in flight: exit 130 and how to resume;
5. SIGKILL in the middle of crossover's candidate scoring (iteration 1).

After every stop the run directory must read back (config, result, trace, both SQLite files); at the end
the descriptions and every score equal an uninterrupted run's with the same seed, and the provider
answered exactly the calls the uninterrupted run needed: completed calls came from the cache.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reliability.harness import (
    CRASH_PROVIDER,
    assert_run_dir_readable,
    invoke,
    llm_calls,
    outcome,
    paid_calls,
    subprocess_env,
    visfeed_exe,
    world_args,
)
from support.processes import default_sigint
from visfeed.state.rundir import TRACE_FILE, read_trace

LLM_DELAY = "0.5"  # seconds per scripted LLM call: a wide window to land a signal mid-call


def _spawn(args: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        visfeed_exe() + args,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=subprocess_env(**env),
        preexec_fn=default_sigint,  # the Ctrl-C case must work when the suite runs in the background
    )


def _finish(proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> tuple[int, str]:
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"visfeed did not stop within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")
    return code, log.read_text(errors="replace")


def _wait_for(proc: subprocess.Popen[bytes], log: Path, cond: Callable[[], bool], timeout: float = 90) -> None:
    """Poll until ``cond()``; fail if the process ends first (the signal would come too late)."""
    t_end = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"visfeed ended (rc {proc.returncode}) before the kill point:\n{log.read_text()[-3000:]}")
        if time.monotonic() > t_end:
            proc.kill()
            pytest.fail("the kill point was never reached")
        time.sleep(0.03)


def _calls_in_node(run_dir: Path, segment: int, node: str, iteration: int) -> list[dict[str, Any]]:
    """llm_call events of ``segment`` written after that segment's node_start of ``node`` in ``iteration``."""
    seg, inside, found = -1, False, []
    for e in read_trace(run_dir):
        if e["event"] in ("run_start", "resume"):
            seg += 1
            inside = False
        if seg != segment:
            continue
        if e["event"] == "node_start":
            inside = e["node"] == node and e["iteration"] == iteration
        elif e["event"] == "llm_call" and inside:
            found.append(e)
    return found


def _signal_mid_call(
    args: list[str], run_dir: Path, log: Path, segment: int, iteration: int, sig: signal.Signals
) -> tuple[int, str, int]:
    """Start visfeed with slow LLM calls; once two mutate calls completed, signal it half-way into the third."""
    proc = _spawn(args, log, VISFEED_TEST_LLM_DELAY=LLM_DELAY)
    _wait_for(proc, log, lambda: len(_calls_in_node(run_dir, segment, "mutate", iteration)) >= 2)
    time.sleep(float(LLM_DELAY) / 2)
    proc.send_signal(sig)
    done = len(_calls_in_node(run_dir, segment, "mutate", iteration))
    code, text = _finish(proc, log)
    return code, text, done


@pytest.mark.slow
def test_kills_and_ctrl_c_at_every_point_then_resume_equals_an_uninterrupted_run(
    world: dict[str, Any], tmp_path: Path
) -> None:
    def args(run_dir: Path) -> list[str]:
        return world_args(world, run_dir, "-p", CRASH_PROVIDER, "--max-iterations", "2")

    ref = tmp_path / "ref"
    res = invoke(args(ref))
    assert res.exit_code == 0, res.output

    run = tmp_path / "run"
    resume = ["resume", "-q", str(run)]

    # 1. SIGKILL from outside during an LLM call (mutate, iteration 0)
    code, text, done = _signal_mid_call(args(run), run, tmp_path / "p1.log", 0, 0, signal.SIGKILL)
    assert code == -signal.SIGKILL, text
    assert assert_run_dir_readable(run).status == "running"
    assert not (run / "descriptions.json").exists()
    listed = invoke(["runs", str(tmp_path)])
    assert listed.exit_code == 0 and "running" in listed.output

    # 2. SIGKILL inside the checkpoint transaction after crossover (iteration 0)
    code, text = _finish(
        _spawn(resume, tmp_path / "p2.log", VISFEED_TEST_KILL_AT="checkpoint:crossover:0"), tmp_path / "p2.log"
    )
    assert code == -signal.SIGKILL, text
    assert_run_dir_readable(run)
    hits = [c for c in llm_calls(run) if c["segment"] == 1 and c["cache_hit"]]
    assert len(hits) >= done, "mutate calls completed before the first kill must come from the cache"
    seg1 = [e for e in read_trace(run) if e["event"] in ("node_end", "node_start")][-2:]
    assert [(e["event"], e["node"]) for e in seg1] == [("node_start", "crossover"), ("node_end", "crossover")]

    # 3. SIGKILL between iterations, while a trace line is half written
    code, text = _finish(
        _spawn(resume, tmp_path / "p3.log", VISFEED_TEST_KILL_AT="torn-trace:feedback:1"), tmp_path / "p3.log"
    )
    assert code == -signal.SIGKILL, text
    tail = (run / TRACE_FILE).read_bytes().rsplit(b"\n", 1)[-1]
    assert tail.startswith(b'{"event": "node_start"'), "the last trace line should be torn"
    assert_run_dir_readable(run)

    # 4. Ctrl-C during an LLM call (mutate, iteration 1): exit 130, says how to resume
    code, text, _ = _signal_mid_call(resume, run, tmp_path / "p4.log", 3, 1, signal.SIGINT)
    assert code == 130, text
    assert f"visfeed resume {run}" in text
    assert "Traceback" not in text
    assert assert_run_dir_readable(run).status == "interrupted"

    # 5. SIGKILL during crossover's scoring (iteration 1)
    code, text = _finish(
        _spawn(resume, tmp_path / "p5.log", VISFEED_TEST_KILL_AT="scoring:crossover:1"), tmp_path / "p5.log"
    )
    assert code == -signal.SIGKILL, text
    assert_run_dir_readable(run)

    # resume to the end
    code, text = _finish(_spawn(resume, tmp_path / "p6.log"), tmp_path / "p6.log")
    assert code == 0, text
    assert_run_dir_readable(run)
    assert sum(e["event"] == "resume" for e in read_trace(run)) == 5
    assert outcome(run) == outcome(ref)
    # the provider answered exactly the calls of the uninterrupted run: nothing completed was paid twice
    assert paid_calls(run) == paid_calls(ref)
    assert sum(c["cache_hit"] for c in llm_calls(run)) >= done
