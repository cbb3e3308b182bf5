"""A sweep's table: rows = methods, columns = dataset × backbone, mean ± std of test accuracy over seeds.

Read only from the cells' own ``result.json`` files, so the summary can be rebuilt at any time (and
while a sweep runs: unfinished cells are listed, never averaged in). Cost rows (LLM calls, tokens, wall
seconds, mean per seed) sit under the accuracy rows, as papers report them.
"""

from __future__ import annotations

import csv
import io
import json
from collections import deque
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from visfeed.state.rundir import TRACE_FILE, RunResult, load_result
from visfeed.state.sweep import Cell, read_published

COST_ROWS = ("LLM calls", "tokens", "wall s")
_TAIL_BYTES = 256 * 1024  # the live status reads only the end of a trace


class Stat(BaseModel):
    """Mean and spread of one table entry over the seeds that finished."""

    mean: float | None = None
    std: float | None = Field(default=None, description="Sample standard deviation (ddof 1); None for one seed.")
    n: int = 0
    values: list[float] = Field(default_factory=list)

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        """The stat of ``values`` (empty: no entry)."""
        if not values:
            return cls()
        arr = np.asarray(values, dtype=np.float64)
        std = float(arr.std(ddof=1)) if len(arr) > 1 else None
        return cls(mean=float(arr.mean()), std=std, n=len(arr), values=list(values))

    def text(self, digits: int = 1) -> str:
        """'84.9 ± 1.7', '84.9' (one seed) or '-'."""
        if self.mean is None:
            return "-"
        return f"{self.mean:.{digits}f}" + ("" if self.std is None else f" ± {self.std:.{digits}f}")


class CellStatus(BaseModel):
    """Where one cell stands (the live table and the summary's cell list)."""

    id: str
    column: str
    seed: int
    status: str = "pending"
    node: str = ""
    iteration: int | None = None
    feedback_accuracy: float | None = None
    llm_calls: int | None = None


class SweepSummary(BaseModel):
    """The table of a sweep plus the state of every cell (summary.json holds exactly this)."""

    name: str
    columns: list[str]
    methods: list[str]
    accuracy: dict[str, dict[str, Stat]] = Field(description="method -> column -> test accuracy (percent).")
    cost: dict[str, dict[str, Stat]] = Field(description="'LLM calls' | 'tokens' | 'wall s' -> column -> per seed.")
    cells: list[CellStatus]

    @property
    def complete(self) -> bool:
        """Every cell finished (completed or stopped by its budget)."""
        return all(c.status == "completed" or c.status.startswith("stopped") for c in self.cells)

    def rows(self, digits: int = 1) -> list[list[str]]:
        """The table as text: one row per method, then the cost rows; first cell the row name."""
        out = [[m, *(self.accuracy[m][c].text(digits) for c in self.columns)] for m in self.methods]
        out += [[k, *(self.cost[k][c].text(0) for c in self.columns)] for k in COST_ROWS]
        return out


def _tail_events(run_dir: Path) -> list[dict[str, object]]:
    """The complete trace events in the last part of a run's trace (cheap to poll while it grows)."""
    path = run_dir / TRACE_FILE
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - _TAIL_BYTES))
            lines = deque(f.read().split(b"\n"), maxlen=400)
    except OSError:
        return []
    events = []
    for raw in lines:
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if isinstance(item, dict):
            events.append(item)
    return events


def cell_status(cell: Cell) -> CellStatus:
    """A cell's status from its run directory: result.json, else the latest node and objective in the trace."""
    return _status(cell, load_result(cell.run_dir))


def _status(cell: Cell, result: RunResult | None) -> CellStatus:
    """:func:`cell_status` from an already loaded result (the summary reads each result.json once)."""
    status = CellStatus(id=cell.id, column=cell.column, seed=cell.seed)
    if result is not None:
        status.status = result.status
        status.iteration = result.iterations
        status.llm_calls = int(result.llm.get("calls", 0)) if result.llm else None
        if result.optimized is not None:
            status.feedback_accuracy = result.optimized.feedback_accuracy
    for e in _tail_events(cell.run_dir) if status.status == "running" else []:
        if e.get("event") == "node_start":
            status.node = str(e.get("node", ""))
            status.iteration = int(str(e.get("iteration", 0)))
        elif e.get("event") == "iteration":
            status.feedback_accuracy = float(str(e.get("feedback_accuracy")))
            status.llm_calls = int(str(e.get("llm_calls", 0)))
    return status


def _test_percent(result: RunResult, published: dict[str, dict[str, object]], row: str) -> float | None:
    """A row's test accuracy in one cell: a method of its result.json, or a published set it scored."""
    if row in published:
        return 100.0 * float(str(published[row]["test_accuracy"]))
    score = result.optimized if row == "optimized" else result.baselines.get(row)
    return None if score is None or score.test_accuracy is None else 100.0 * score.test_accuracy


def summarize_sweep(name: str, cells: list[Cell], methods: list[str]) -> SweepSummary:
    """Build the table from the cells' results; cells that have not finished are left out of every mean.

    ``methods``: the accuracy rows, built-in methods and published sets (``SweepSpec.rows``).
    """
    columns = list(dict.fromkeys(c.column for c in cells))
    acc: dict[str, dict[str, list[float]]] = {m: {c: [] for c in columns} for m in methods}
    cost: dict[str, dict[str, list[float]]] = {k: {c: [] for c in columns} for k in COST_ROWS}
    results = {cell.id: load_result(cell.run_dir) for cell in cells}
    for cell in cells:
        result = results[cell.id]
        if result is None or not (result.status == "completed" or result.status.startswith("stopped")):
            continue
        published = read_published(cell.run_dir)
        for m in methods:
            value = _test_percent(result, published, m)
            if value is not None:
                acc[m][cell.column].append(value)
        llm = result.llm
        cost["LLM calls"][cell.column].append(float(llm.get("calls", 0)))
        cost["tokens"][cell.column].append(float(llm.get("prompt_tokens", 0)) + float(llm.get("completion_tokens", 0)))
        cost["wall s"][cell.column].append(float(result.timings.get("wall_s", 0.0)))
    return SweepSummary(
        name=name,
        columns=columns,
        methods=list(methods),
        accuracy={m: {c: Stat.of(v) for c, v in cols.items()} for m, cols in acc.items()},
        cost={k: {c: Stat.of(v) for c, v in cols.items()} for k, cols in cost.items()},
        cells=[_status(c, results[c.id]) for c in cells],
    )


def summary_csv(summary: SweepSummary) -> str:
    """Long-format CSV: one line per (row, column) with mean, std and the number of seeds."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["row", "column", "mean", "std", "n"])
    for kind in (summary.accuracy, summary.cost):
        for row, cols in kind.items():
            for column in summary.columns:
                s = cols[column]
                writer.writerow([row, column, "" if s.mean is None else f"{s.mean:.4f}",
                                 "" if s.std is None else f"{s.std:.4f}", s.n])  # fmt: skip
    return buf.getvalue()
