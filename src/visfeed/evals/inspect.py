"""Reading finished or interrupted runs: summaries for ``visfeed runs``, trace filters, report data.

Library code (no printing): the CLI renders what these functions return. Everything is read from the run
directory's own files (``result.json``, ``config.yaml``, ``trace.jsonl``), so a run can be inspected on
another machine and while it is still running.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from visfeed.errors import ConfigError
from visfeed.evals.report import LineageRow, ReportData, WordsRow
from visfeed.state.config.keys import get_path, nest
from visfeed.state.rundir import CONFIG_FILE, EVALUATION_FILE, checkpoint_bytes, load_result, read_trace, shown_name


class RunSummary(BaseModel):
    """One row of ``visfeed runs``."""

    run_dir: str
    status: str
    dataset: str
    iterations: int
    feedback_accuracy: float | None
    test_accuracy: float | None
    llm_calls: int
    cost_usd: float
    checkpoint_bytes: int = 0


def require_run_dir(run_dir: Path) -> Path:
    """The run directory, or a ConfigError that says what a run directory looks like."""
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(f"{run_dir} is not a run directory (it has no {CONFIG_FILE})")
    return run_dir


def summarize(run_dir: Path) -> RunSummary:
    """Status, objective, test accuracy and cost of one run (a run without result.json is 'running')."""
    result = load_result(run_dir)
    size = checkpoint_bytes(run_dir)
    if result is None:
        return RunSummary(
            run_dir=str(run_dir), status="running or crashed (resumable)", dataset="", iterations=0,
            feedback_accuracy=None, test_accuracy=None, llm_calls=0, cost_usd=0.0, checkpoint_bytes=size,
        )  # fmt: skip
    opt = result.optimized
    return RunSummary(
        run_dir=str(run_dir),
        status=result.status,
        dataset=result.dataset,
        iterations=result.iterations,
        feedback_accuracy=opt.feedback_accuracy if opt else None,
        test_accuracy=opt.test_accuracy if opt else None,
        llm_calls=int(result.llm.get("calls", 0)),
        cost_usd=float(result.llm.get("cost_usd", 0.0)),
        checkpoint_bytes=size,
    )


def find_runs(root: Path) -> list[RunSummary]:
    """Every run directory below ``root`` (one level or two), newest first."""
    dirs = {p.parent for p in root.glob(f"*/{CONFIG_FILE}")} | {p.parent for p in root.glob(f"*/*/{CONFIG_FILE}")}
    if (root / CONFIG_FILE).is_file():
        dirs.add(root)
    return [summarize(d) for d in sorted(dirs, key=lambda d: d.stat().st_mtime, reverse=True)]


def filter_events(
    events: Iterable[dict[str, Any]],
    *,
    iteration: int | None = None,
    node: str | None = None,
    classname: str | None = None,
) -> list[dict[str, Any]]:
    """Trace events of one iteration, node and/or class (an event without the field is kept only if unfiltered)."""
    out = []
    for e in events:
        if iteration is not None and e.get("iteration") != iteration:
            continue
        if node is not None and e.get("node") != node:
            continue
        if classname is not None:
            classes = e.get("classes") or ([e["class_name"]] if "class_name" in e else [])
            if classname not in classes:
                continue
        out.append(e)
    return out


def lineage_rows(run_dir: Path, classname: str | None = None) -> list[LineageRow]:
    """Description lineage from the trace (added / deleted events), optionally of one class."""
    rows: dict[tuple[str, str], LineageRow] = {}
    for e in read_trace(run_dir, events={"lineage_add", "lineage_delete"}):
        key = (e.get("class_name", ""), e.get("text", ""))
        if classname is not None and key[0] != classname:
            continue
        if e["event"] == "lineage_add":
            rows[key] = LineageRow(
                classname=key[0],
                text=key[1],
                added_iteration=int(e.get("introduced_iteration", 0)),
                origin=str(e.get("origin", "")),
                delta_correct=e.get("delta_correct"),
            )
        elif key in rows:
            row = rows[key]
            row.removed_iteration = e.get("deleted_iteration")
            row.removed_reason = str(e.get("deleted_reason") or "")
    return list(rows.values())


def words_rows(run_dir: Path, classname: str | None = None) -> list[WordsRow]:
    """The visual words offered to the LLM per class and iteration, from the trace, optionally of one class."""
    rows = [
        WordsRow(
            classname=str(e.get("class_name", "")),
            iteration=int(e.get("iteration", 0)),
            own=list(e.get("own", [])),
            against=dict(e.get("against", {})),
        )
        for e in read_trace(run_dir, events={"visual_words"})
    ]
    rows = [r for r in rows if classname is None or r.classname == classname]
    return sorted({(r.classname, r.iteration): r for r in rows}.values(), key=lambda r: (r.classname, r.iteration))


def _percent(values: list[float | None]) -> list[float]:
    """Fractions to percent; a class without test images (None) becomes NaN, which plots as a gap."""
    return [float("nan") if v is None else 100.0 * v for v in values]


def report_data(run_dir: Path) -> ReportData:
    """Everything the HTML report shows, from the run's result.json and trace."""
    require_run_dir(run_dir)
    result = load_result(run_dir)
    if result is None or result.optimized is None:
        raise ConfigError(f"run {run_dir} has no final result yet; finish it with `visfeed resume {run_dir}`")
    evaluation_path = run_dir / EVALUATION_FILE
    evaluation = json.loads(evaluation_path.read_text(encoding="utf-8")) if evaluation_path.is_file() else {}
    classnames = evaluation.get("classnames", [])
    before = evaluation.get("llm_oneshot", {})
    after = evaluation.get("optimized", {})
    pct = 100.0
    config = nest(result.config, warn=False)  # old runs' result.json has flat keys
    return ReportData(
        title=f"visfeed run {run_dir.name}",
        classnames=classnames,
        objective=[pct * r.feedback.n_correct / max(1, r.feedback.n_images) for r in result.history],
        validation=[
            pct * r.validation.n_correct / max(1, r.validation.n_images) for r in result.history if r.validation
        ],
        per_class_before=_percent(before.get("per_class_accuracy", [])),
        per_class_after=_percent(after.get("per_class_accuracy", [])),
        confusion_before=before.get("confusion", []),
        confusion_after=after.get("confusion", []),
        baselines={
            shown_name(name, s): pct * s.test_accuracy
            for name, s in {**result.baselines, "optimized": result.optimized}.items()
            if s.test_accuracy is not None
        },
        lineage=lineage_rows(run_dir),
        visual_words=words_rows(run_dir),
        image_side=result.image_side,
        summary={
            "status": result.status,
            "dataset": result.dataset,
            "classes": str(result.n_classes),
            "backbone": str(get_path(config, "backbone.model") or ""),
            "provider": str(get_path(config, "llm.provider") or ""),
            "iterations": f"{result.iterations} (best: {result.best_iteration})",
            "stop reason": str(result.stop_reason or ""),
            "LLM calls": str(result.llm.get("calls", 0)),
            "wall time (s)": f"{result.timings.get('wall_s', 0):.0f}",
        },
    )
