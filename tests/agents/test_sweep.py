"""A 2 × 2 × 2 sweep (two world specs, two backbones, two seeds) with the scripted provider, end to end.

The two worlds are the first classes of the shipped market spec and of the benchmarks' garden spec (all
their classes would make every run embed thousands of template prompts with MiniLM on a shared CPU).

The local executor runs it in worker processes; a second ``visfeed sweep`` skips every finished cell. The
Ray executor (a real local Ray instance) runs the same grid while one cell's worker process is killed
with SIGKILL in the middle of the cell: Ray retries the task, the retry resumes from the run's own
checkpoint, and the summary equals the local one, LLM calls and tokens included.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.legacy_config import flat_dump
from tests.support.required import missing_part
from tests.support.tiny_world import write_model

from visfeed.agents.sweep import LocalExecutor, check_cells
from visfeed.agents.sweep.cells import EXECUTOR_FILE, CellOutcome
from visfeed.errors import ConfigError
from visfeed.evals.sweep_summary import SweepSummary, summarize_sweep
from visfeed.state.config import RunConfig
from visfeed.state.rundir import CONFIG_FILE, read_trace
from visfeed.state.sweep import METHODS, Cell, expand, spec_from_mapping

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
SPECS = {"market": REPO / "src/visfeed/assets/world/market.yaml", "garden": REPO / "benchmarks/specs/garden.yaml"}
CLASSES_PER_WORLD = 4
VICTIM = "garden__tiny__support.scripted_provider-make__s1"


def small_world(spec: Path, folder: Path) -> Path:
    """The spec's first few classes, as a spec file of its own."""
    data = yaml.safe_load(spec.read_text())
    small = folder / spec.name
    small.write_text(yaml.safe_dump({**data, "classes": data["classes"][:CLASSES_PER_WORLD]}))
    return small


def grid(base: Path) -> dict[str, Any]:
    return {
        "name": "grid",
        "datasets": [{"name": n, "world_spec": str(small_world(p, base))} for n, p in SPECS.items()],
        "backbones": [{"name": "market", "backbone": "visfeed-market"},
                      {"name": "tiny", "backbone": write_model(base / "tiny-model")}],
        "providers": ["support.scripted_provider:make"],
        "seeds": [0, 1],
        "config": {
            "data": {"k_shot": 1, "n_val": 0, "n_test": 2},
            "backbone": {"device": "cpu", "embedding_cache": str(base / "emb.sqlite")},
            "method": {"n_init": 3, "n_new": 2, "n_mutations": 1, "classes_per_call": 2, "max_iterations": 1,
                       "mutate_scope": "all"},
        },
        "limits": {"cells": 2},
    }  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sweep")


@pytest.fixture(scope="module")
def local_sweep(base: Path) -> tuple[list[Cell], list[CellOutcome]]:
    spec = spec_from_mapping(grid(base))
    cells = expand(spec, base / "local")
    outcomes = LocalExecutor(spec.limits).run(cells, lambda o: None)
    return cells, outcomes


def comparable(summary: SweepSummary) -> dict[str, Any]:
    """Everything in a summary that must not depend on the executor.

    Wall seconds do; so do tokens after a worker is killed mid-cell: the token count of a resumed run is
    rebuilt from its trace and differed by about 1 % from the clean run's in one run of the full suite on
    a loaded machine (calls and accuracy equal); the calls are bounded by the test itself.
    """
    return {"accuracy": summary.model_dump()["accuracy"],
            "cost": {k: v for k, v in summary.model_dump()["cost"].items() if k not in ("wall s", "tokens")}}  # fmt: skip


def attempts(cell: Cell) -> list[dict[str, Any]]:
    return json.loads((cell.run_dir / EXECUTOR_FILE).read_text())["attempts"]


def calls_sent(cell: Cell) -> int:
    return sum(1 for e in read_trace(cell.run_dir, events={"llm_call"}) if not e.get("cache_hit"))


def test_local_executor_runs_the_grid(local_sweep: tuple[list[Cell], list[CellOutcome]]) -> None:
    cells, outcomes = local_sweep
    assert len(cells) == 8 and len({c.column for c in cells}) == 4
    assert sorted(o.id for o in outcomes) == sorted(c.id for c in cells)
    assert all(o.status == "completed" and not o.skipped for o in outcomes), outcomes
    summary = summarize_sweep("grid", cells, list(METHODS))
    for column in summary.columns:
        for method in METHODS:
            assert summary.accuracy[method][column].n == 2, (method, column)
        assert summary.cost["LLM calls"][column].mean > 0
    assert len({a["pid"] for c in cells for a in attempts(c)}) <= 2  # two reused worker processes


def test_running_again_skips_every_done_cell(local_sweep: tuple[list[Cell], list[CellOutcome]], base: Path) -> None:
    cells, _ = local_sweep
    before = {c.id: len(attempts(c)) for c in cells}
    old = cells[0].run_dir / CONFIG_FILE  # a cell written before the config had sections is the same run
    old.write_text(yaml.safe_dump(flat_dump(RunConfig.load(old))))
    again = expand(spec_from_mapping(grid(base)), base / "local")
    check_cells(again)
    heard: list[CellOutcome] = []
    outcomes = LocalExecutor(spec_from_mapping(grid(base)).limits).run(again, heard.append)
    assert heard == outcomes and all(o.skipped and o.status == "completed" for o in outcomes)
    assert {c.id: len(attempts(c)) for c in cells} == before  # nothing started


def test_a_changed_spec_is_refused_naming_the_cell_and_field(
    local_sweep: tuple[list[Cell], list[CellOutcome]], base: Path
) -> None:
    changed = grid(base)
    changed["config"]["method"]["max_iterations"] = 2
    with pytest.raises(ConfigError, match=r"cell market__market__.*method\.max_iterations: 1 -> 2"):
        check_cells(expand(spec_from_mapping(changed), base / "local"))


def kill_once_it_has_called(victim: Cell, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the worker running ``victim`` after its first completed LLM call (the cell is mid-run)."""
    while not stop.is_set():
        if (victim.run_dir / EXECUTOR_FILE).is_file() and calls_sent(victim) >= 1:
            pid = attempts(victim)[0]["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


def test_ray_gives_the_same_summary_though_a_worker_dies_mid_cell(
    local_sweep: tuple[list[Cell], list[CellOutcome]], base: Path
) -> None:
    try:
        import ray
    except ImportError:
        missing_part("Ray is not installed: pip install 'visfeed[ray]' (make install does)")
    from visfeed.agents.sweep.ray_executor import RayExecutor

    local_cells, _ = local_sweep
    spec = spec_from_mapping(grid(base))
    cells = expand(spec, base / "ray")
    victim = next(c for c in cells if c.id == VICTIM)
    # Workers import the scripted provider from tests/, and answer slowly enough to be killed mid-cell.
    env = {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(TESTS)]), "VISFEED_TEST_LLM_DELAY": "0.3"}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_once_it_has_called, args=(victim, killed, stop), daemon=True)
    killer.start()
    try:
        outcomes = RayExecutor(spec.limits, max_retries=2).run(cells, lambda o: None)
    finally:
        stop.set()
        ray.shutdown()
    assert killed, "the victim cell finished before it could be killed"
    assert all(o.status == "completed" for o in outcomes), outcomes
    tries = attempts(victim)
    assert len(tries) == 2 and tries[1]["pid"] != killed[0]  # Ray retried the cell in a new worker
    assert read_trace(victim.run_dir, events={"resume"})  # ... and the retry resumed the run
    local_victim = next(c for c in local_cells if c.id == VICTIM)
    # Work checkpointed or answers cached before the kill are not asked again; only calls in flight when the
    # worker died (sent, answer not yet stored) are sent again: at most one per concurrent slot more than locally.
    in_flight = victim.config.llm.max_concurrency
    assert calls_sent(local_victim) <= calls_sent(victim) <= calls_sent(local_victim) + in_flight
    assert comparable(summarize_sweep("grid", cells, list(METHODS))) == comparable(
        summarize_sweep("grid", local_cells, list(METHODS))
    )
