"""One sweep cell = one ordinary run: started with ``optimize``, continued with ``resume``, skipped when done.

Why no state of its own: the run directory already records everything a retry needs (the SQLite
checkpoint, the response cache, ``result.json``), so an executor may run a cell any number of times, in
any process or on any machine that sees the sweep directory, and the run continues where it stopped,
repeating no LLM call that had completed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from visfeed.agents.run import optimize, resume
from visfeed.errors import ConfigError, VisfeedError
from visfeed.fileio import write_json_atomic
from visfeed.state.config import RunConfig
from visfeed.state.rundir import CONFIG_FILE, load_result
from visfeed.state.sweep import PUBLISHED_FILE, Cell, read_published
from visfeed.state.templates import parse_source

log = logging.getLogger(__name__)

EXECUTOR_FILE = "executor.json"  # which process ran each attempt of a cell (pid, host, start time)


class CellOutcome(BaseModel):
    """What one attempt at a cell ended with (the run's own ``result.json`` has the rest)."""

    id: str
    status: str = Field(description="The run's status, or 'failed: ...' when the run could not start.")
    skipped: bool = Field(default=False, description="The cell was already done: nothing ran.")
    wall_s: float = 0.0


def is_done(status: str | None) -> bool:
    """Whether a run with this status is finished (a finished run is never run again)."""
    return status is not None and (status == "completed" or status.startswith("stopped"))


def check_cells(cells: list[Cell]) -> None:
    """Refuse to resume a cell whose run directory holds a run of another config (names the cell and fields).

    A changed spec must not silently mix old and new runs in one table: the user picks another sweep
    directory or deletes the stale cells.
    """
    for cell in cells:
        path = cell.run_dir / CONFIG_FILE
        if not path.is_file():
            continue
        old = RunConfig.load(path).flat()
        new = cell.config.flat()
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:5])
            raise ConfigError(
                f"cell {cell.id}: its run directory {cell.run_dir} holds a run of another config ({detail}); "
                "use another sweep directory (--out) or delete that cell's folder"
            )


def _record_attempt(cell: Cell) -> None:
    """Append this process to the cell's ``executor.json`` (a retried Ray task shows up as a second entry)."""
    path = cell.run_dir / EXECUTOR_FILE
    attempts: list[dict[str, Any]] = []
    if path.is_file():
        try:
            attempts = list(json.loads(path.read_text(encoding="utf-8")).get("attempts", []))
        except (OSError, ValueError):
            attempts = []
    attempts.append({"pid": os.getpid(), "host": socket.gethostname(), "started_at": datetime.now(UTC).isoformat()})
    cell.run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"cell": cell.id, "attempts": attempts})


def score_published(cell: Cell) -> None:
    """Score the cell's published description sets on its test split, into ``published.json``.

    A published set is scored like a baseline of the run: same split, backbone and embedding cache (so
    nothing is embedded twice), once. Sets already scored from the same file are kept, so adding a set to
    the spec scores only the new one.
    """
    scored = read_published(cell.run_dir)
    todo = {row: src for row, src in cell.descriptions.items() if scored.get(row, {}).get("source") != src}
    if not todo:
        return
    from visfeed.agents.resources import build_scoring
    from visfeed.tools.feedback.baselines import prompt_objective
    from visfeed.tools.feedback.description_files import read_description_file

    data = build_scoring(cell.config)
    test = data.test_loader()
    for row, source in todo.items():
        prompts = read_description_file(*parse_source(source)).for_classes(data.classnames)
        obj = prompt_objective(
            data.encoder, data.classnames, prompts, test.image_emb, test.labels, device=cell.config.backbone.device
        )
        scored[row] = {"source": source, "test_accuracy": obj.accuracy}
    write_json_atomic(cell.run_dir / PUBLISHED_FILE, scored)


def run_cell(cell: Cell) -> CellOutcome:
    """Run, continue or skip one cell, then score its published sets; a failed run is left resumable."""
    t0 = time.perf_counter()
    done = load_result(cell.run_dir)
    skipped = done is not None and is_done(done.status)
    try:
        if done is not None and skipped:
            status = done.status
        else:
            _record_attempt(cell)
            resuming = (cell.run_dir / CONFIG_FILE).is_file()
            status = (resume(cell.run_dir) if resuming else optimize(cell.config)).status
        if is_done(status):
            score_published(cell)
    except VisfeedError as exc:  # data, backbone, provider or published-set problems
        log.error("cell %s failed: %s", cell.id, exc)
        return CellOutcome(id=cell.id, status=f"failed: {exc}", wall_s=time.perf_counter() - t0)
    return CellOutcome(id=cell.id, status=status, skipped=skipped, wall_s=time.perf_counter() - t0)
