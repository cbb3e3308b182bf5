"""Checkpoints store what changed; a finished run can keep only its last checkpoint and still read the same."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import aiosqlite
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from tests.agents.conftest import fruit_chat

from visfeed.agents.checkpoints import THREAD, checkpoint_serde, keep_checkpoints
from visfeed.agents.graph import build_graph
from visfeed.agents.run import optimize
from visfeed.state.models import GraphState
from visfeed.state.rundir import CHECKPOINTS, checkpoint_bytes, read_trace


def final_state(run_dir: Path) -> GraphState:
    async def read() -> dict[str, Any]:
        async with aiosqlite.connect(str(run_dir / CHECKPOINTS)) as conn:
            graph = build_graph(checkpointer=AsyncSqliteSaver(conn, serde=checkpoint_serde()))
            return dict((await graph.aget_state(THREAD)).values)

    return GraphState.model_validate(asyncio.run(read()))


def rows(run_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(run_dir / CHECKPOINTS)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_nodes_store_only_what_they_changed_and_the_state_rebuilds_exactly(base_config, make_resources):
    cfg = base_config(method={"max_iterations": 3, "patience": 5})
    result = optimize(cfg, resources=make_resources(fruit_chat()))
    assert result.status == "completed" and result.iterations == 3
    state = final_state(cfg.run_dir)
    assert state.history == result.history
    assert state.iteration == 3 and state.best
    # lineage: each update_memory write holds only that iteration's added and closed entries, as traced
    serde = checkpoint_serde()
    lineage_writes = [
        serde.loads_typed((t, v))
        for t, v in rows(cfg.run_dir, "SELECT type, value FROM writes WHERE channel = 'lineage' ORDER BY checkpoint_id")
    ]
    traced = Counter(
        (e["event"], e["introduced_iteration"] if e["event"] == "lineage_add" else e["deleted_iteration"])
        for e in read_trace(cfg.run_dir, events={"lineage_add", "lineage_delete"})
    )
    assert lineage_writes[0] == [] and len(lineage_writes) == 5  # the input, initialize, update_memory x 3
    assert len(lineage_writes[1]) == traced[("lineage_add", 0)]
    for it, w in enumerate(lineage_writes[2:], start=1):
        assert len(w) == traced[("lineage_add", it)] + traced[("lineage_delete", it)], it
    assert len(state.lineage) == sum(n for (kind, _), n in traced.items() if kind == "lineage_add")
    # the growing fields are not copied into checkpoint rows: every row is far smaller than the state
    largest_row = max(n for (n,) in rows(cfg.run_dir, "SELECT length(checkpoint) FROM checkpoints"))
    assert largest_row < len(state.model_dump_json()) / 4, (largest_row, len(state.model_dump_json()))


def test_keep_last_leaves_one_checkpoint_with_the_same_final_state(base_config, make_resources):
    cfg = base_config(method={"max_iterations": 2, "patience": 5})
    assert optimize(cfg, resources=make_resources(fruit_chat())).status == "completed"
    state = final_state(cfg.run_dir)
    n_before = rows(cfg.run_dir, "SELECT count(*) FROM checkpoints")[0][0]
    assert keep_checkpoints(cfg.run_dir, "all")[1] == checkpoint_bytes(cfg.run_dir)
    before, after = keep_checkpoints(cfg.run_dir, "last")
    assert n_before > 5 and rows(cfg.run_dir, "SELECT count(*) FROM checkpoints")[0][0] == 1
    assert rows(cfg.run_dir, "SELECT count(*) FROM writes")[0][0] == 0
    assert after < before and after == checkpoint_bytes(cfg.run_dir)
    assert final_state(cfg.run_dir) == state
