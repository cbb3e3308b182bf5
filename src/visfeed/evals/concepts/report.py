"""Self-contained HTML report of a concept classifier: tree picture, importances, confusion, accuracies.

Built from a :class:`ConceptReport` (what ``visfeed concepts fit`` measured), drawn with matplotlib and
inlined, like the optimization report (:mod:`visfeed.evals.report`), whose helpers it shares.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from pydantic import BaseModel, Field

from visfeed.evals.concepts.experiment import Explained, ModelScore
from visfeed.evals.report import CSS, PLOTS_LOADED_SCRIPT, figures_html, html_table
from visfeed.fileio import write_text_atomic
from visfeed.state.concepts import ConceptPart, ConceptTree

MAX_BARS = 20


class ConceptReport(BaseModel):
    """Everything the report shows."""

    title: str
    classnames: list[str]
    tree: ConceptTree | None = None
    model: ModelScore = Field(description="The saved model's scores.")
    scores: list[ModelScore] = Field(description="Every classifier and source fitted, for the table.")
    baselines: dict[str, float] = Field(description="Baseline -> test accuracy (percent).")
    explained: Explained
    summary: dict[str, str] = Field(default_factory=dict)


def _tree_rows(
    parts: list[ConceptPart], depth: int, counts: Mapping[tuple[str, str], int], prefix: str
) -> list[tuple[int, str]]:
    rows: list[tuple[int, str]] = []
    for p in parts:
        path = f"{prefix}/{p.name}" if prefix else p.name
        rows.append((depth, p.name))
        rows += [(depth + 1, f"{a} ({counts.get((path, a), 0)} values)") for a in p.attributes]
        rows += _tree_rows(p.parts, depth + 1, counts, path)
    return rows


def plot_tree(tree: ConceptTree) -> Figure:
    """The tree as an indented diagram: domain, parts, sub-parts, attributes with their number of values."""
    counts: dict[tuple[str, str], int] = {}
    for v in tree.values:
        counts[(v.part, v.attribute)] = counts.get((v.part, v.attribute), 0) + 1
    rows = [(0, tree.domain), *[(d + 1, t) for d, t in _tree_rows(tree.parts, 0, counts, "")]]
    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.28 * len(rows))))
    ys = np.arange(len(rows))[::-1]
    parents: dict[int, float] = {}
    for (depth, text), y in zip(rows, ys, strict=True):
        parents[depth] = y
        if depth > 0:
            ax.plot([depth - 0.8, depth - 0.8, depth - 0.1], [parents[depth - 1] - 0.3, y, y], color="#999", lw=0.8)
        is_attr = text.endswith("values)")
        ax.text(depth, y, text, va="center", fontsize=8, color="#555" if is_attr else "#000",
                bbox={"boxstyle": "round", "fc": "#eef" if not is_attr else "#fff", "ec": "#99a"})  # fmt: skip
    ax.set_xlim(-0.2, max(d for d, _ in rows) + 3)
    ax.set_ylim(-1, len(rows))
    ax.axis("off")
    ax.set_title("Concept tree (parts, attributes, number of values)")
    return fig


def plot_bars(values: Mapping[str, float], title: str) -> Figure:
    """Horizontal bars of the largest values (importance = accuracy drop when shuffled)."""
    items = list(values.items())[:MAX_BARS][::-1]
    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.3 * len(items) + 0.8)))
    ax.barh([k[:70] for k, _ in items], [v for _, v in items], color="#4a7")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("permutation importance (validation accuracy drop)")
    ax.set_title(title)
    return fig


def plot_confusion(conf: list[list[int]], classnames: list[str]) -> Figure:
    """Test confusion matrix (rows: true class)."""
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(np.asarray(conf), cmap="viridis")
    if len(classnames) <= 40:
        ticks = np.arange(len(classnames))
        ax.set_xticks(ticks, classnames, rotation=90, fontsize=6)
        ax.set_yticks(ticks, classnames, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion on the test split")
    fig.colorbar(im, ax=ax, shrink=0.7)
    return fig


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def _values_table(tree: ConceptTree) -> str:
    """Where each value of a grounded tree came from; the images' disagreements with the LLM first."""
    order = {"llm_overruled": 0, "images": 1, "both": 2, "llm": 3}
    rows = [
        (
            v.class_name,
            v.part,
            v.attribute,
            v.value,
            v.origin,
            v.note(),
            "" if v.support is None else f"{v.support:.3f}",
        )
        for v in sorted(tree.sources, key=lambda v: order[v.origin])
    ]
    overruled = sum(v.origin == "llm_overruled" for v in tree.sources)
    return (
        f"<h2>Values and where they came from ({overruled} of {len(tree.sources)} overrule the LLM)</h2>"
        + html_table(["class", "part", "attribute", "value", "origin", "disagreement", "image support"], rows)
    )


def render_html(r: ConceptReport) -> str:
    """The whole report as one HTML string (no external requests)."""
    ex = r.explained
    plots: list[tuple[str, Figure]] = []
    if r.tree is not None:
        plots.append(("tree", plot_tree(r.tree)))
    plots += [
        ("parts", plot_bars(ex.by_part, "Importance per part")),
        ("attributes", plot_bars(ex.by_attribute, "Importance per attribute")),
        ("clues", plot_bars(ex.importance, f"Most important clues (top {MAX_BARS})")),
        ("confusion", plot_confusion(ex.confusion, r.classnames)),
    ]
    scores = html_table(
        ["classifier", "features", "columns kept", "validation (%)", "test (%)"],
        [
            (s.classifier, s.source, f"{s.n_selected}/{s.n_features}", _pct(s.val_accuracy), _pct(s.test_accuracy))
            for s in r.scores
        ]
        + [(name, "baseline", "", "", f"{v:.1f}") for name, v in r.baselines.items()],
    )
    per_class = html_table(
        ["class", "most important clues (drop in the true class's probability)"],
        [(c, "; ".join(f"{t} ({v:+.3f})" for t, v in top)) for c, top in ex.per_class.items()],
    )
    values = _values_table(r.tree) if r.tree is not None and r.tree.sources else ""
    pairs = html_table(
        ["true", "predicted as", "test images", "clues important to both"],
        [(p["true"], p["predicted"], p["count"], "; ".join(p["shared"]) or "(none)") for p in ex.confused_pairs],
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(r.title)}</title>
<style>{CSS}</style></head><body>
<h1>{html.escape(r.title)}</h1>
<h2>Summary</h2>{html_table(["", ""], list(r.summary.items()))}
<h2>Accuracy (same splits; test scored once)</h2>{scores}
<h2>Plots</h2>{figures_html(plots)}
<h2>Per class</h2>{per_class}
{values}
<h2>Most confused pairs</h2>{pairs}
{PLOTS_LOADED_SCRIPT}
</body></html>
"""


def write_report(r: ConceptReport, path: Path) -> Path:
    """Write the report atomically and return its path."""
    write_text_atomic(path, render_html(r))
    return path
