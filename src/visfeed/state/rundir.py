"""A run directory's records: file names, ``result.json`` and the trace reader.

Why in ``state``: the runner (agents) writes these files and the inspectors (evals, CLI) read them, so
their names and shapes live below both. A run directory holds ``config.yaml``, ``checkpoints.sqlite``
(LangGraph's SQLite checkpointer), ``llm_cache.sqlite`` (unless configured elsewhere), ``trace.jsonl``,
``descriptions.json``, ``descriptions_raw.json``, ``evaluation.json`` and ``result.json``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from visfeed.state.config import RunConfig
from visfeed.state.models import IterationRecord

log = logging.getLogger(__name__)

CONFIG_FILE, RESULT_FILE, CHECKPOINTS = "config.yaml", "result.json", "checkpoints.sqlite"
EVALUATION_FILE = "evaluation.json"  # per-class test accuracy and confusion, before and after
LIBRARY_FILE = "library.json"  # crossover "library": every item per class, its source and whether it was chosen
TRACE_FILE = "trace.jsonl"


class MethodScore(BaseModel):
    """Accuracy of one prompt set on the feedback, validation and test splits."""

    feedback_accuracy: float
    validation_accuracy: float | None = None
    test_accuracy: float | None = None
    prompts_per_class: float = Field(description="Mean number of prompts per class (0 for the image line).")
    uses_images: bool = Field(
        default=False,
        description="Fitted on the labelled feedback images (the image line), not zero-shot: a reference line.",
    )


IMAGE_LINE_MARK = " (labelled images)"
"""Appended to an image-line method's name wherever results are shown: it is not zero-shot."""


def shown_name(name: str, score: MethodScore) -> str:
    """A method's name as tables show it, marked when it was fitted on the labelled images."""
    return name + IMAGE_LINE_MARK if score.uses_images else name


class RunResult(BaseModel):
    """What ``result.json`` holds, and what ``optimize`` / ``resume`` return."""

    status: str = Field(description="'completed', 'stopped: budget', 'failed: ...', 'interrupted' or 'running'.")
    run_dir: str
    dataset: str = ""
    n_classes: int = 0
    iterations: int = 0
    best_iteration: int = 0
    stop_reason: str | None = None
    optimized: MethodScore | None = None
    baselines: dict[str, MethodScore] = Field(default_factory=dict)
    history: list[IterationRecord] = Field(default_factory=list)
    llm: dict[str, Any] = Field(default_factory=dict, description="Calls, cache hits, tokens, cost (whole run).")
    timings: dict[str, Any] = Field(default_factory=dict, description="Wall, LLM and non-LLM seconds of this process.")
    filter_dropped: int = 0
    logit_scale: float | None = Field(default=None, description="Softmax scale of the lambda test in this run.")
    logit_scale_source: str | None = Field(
        default=None, description="Where the scale came from: 'backbone' (learned), 'config' or 'fallback' (100)."
    )
    error: str | None = None
    image_side: dict[str, Any] | None = Field(
        default=None,
        description="With config.image_side: test accuracy per method with and without fusion, the MLLM's own "
        "label accuracy and accuracy where its guess is wrong (visfeed.evals.image_side.ImageSideResult).",
    )
    config: dict[str, Any] = Field(default_factory=dict)
    finished_at: str | None = None


def default_run_dir(cfg: RunConfig) -> Path:
    """runs/<dataset>-s<seed>-<UTC time>."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.data.name.replace(':', '_')}-s{cfg.seed}-{stamp}"


def load_result(run_dir: str | Path) -> RunResult | None:
    """The run's ``result.json`` if it exists and parses."""
    path = Path(run_dir) / RESULT_FILE
    try:
        return RunResult.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def checkpoint_bytes(run_dir: str | Path) -> int:
    """Bytes on disk of the run's checkpoint database (with SQLite's -wal and -shm files)."""
    return sum(p.stat().st_size for p in Path(run_dir).glob(f"{CHECKPOINTS}*") if p.is_file())


def read_trace(run_dir: str | Path, *, events: set[str] | None = None) -> list[dict[str, Any]]:
    """All well-formed events of a run (optionally only some kinds); torn or corrupt lines are skipped."""
    path = Path(run_dir) / TRACE_FILE
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    with path.open("rb") as f:
        lines = f.read().split(b"\n")
    for n, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            if n < len(lines) - 1 and lines[n + 1 :] != [b""] and any(x.strip() for x in lines[n + 1 :]):
                log.warning("%s: skipping a corrupt line %d (a crash during a write)", path, n + 1)
            continue
        if isinstance(item, dict) and (events is None or item.get("event") in events):
            out.append(item)
    return out


def usage_from_trace(run_dir: str | Path) -> dict[str, Any]:
    """LLM spend recorded so far (calls sent, cache hits, tokens, cost), from every process of the run.

    The trace, not the checkpoint, is the ledger: calls made by a node that was interrupted before its
    checkpoint still cost money and still count against the budget of the resumed run.
    """
    totals = {"calls": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
    for e in read_trace(run_dir, events={"llm_call"}):
        if e.get("cache_hit"):
            totals["cache_hits"] += 1
            continue
        totals["calls"] += 1
        totals["prompt_tokens"] += int(e.get("prompt_tokens", 0))
        totals["completion_tokens"] += int(e.get("completion_tokens", 0))
        totals["cost_usd"] += float(e.get("cost_usd", 0.0))
    return totals
