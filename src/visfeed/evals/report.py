"""Self-contained HTML report of a run: plots as embedded PNGs (matplotlib), tables as plain HTML.

The report reads only the run's own records (``result.json`` and the trace), through :class:`ReportData`,
so it can be rebuilt at any time and shared as one file.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from pydantic import BaseModel, Field

from visfeed.fileio import write_text_atomic
from visfeed.state.image_side import short_weights


class LineageRow(BaseModel):
    """One description's life: when it came, what it did to accuracy, when and why it went."""

    classname: str
    text: str
    added_iteration: int
    origin: str = ""
    delta_correct: int | None = Field(default=None, description="Change in correct feedback images it came with.")
    removed_iteration: int | None = None
    removed_reason: str = ""


class SignalTable(BaseModel):
    """What one feedback signal told the LLM, per class and iteration (its trace events), as a table."""

    name: str
    title: str
    columns: list[str] = Field(description="After 'class' and 'iteration'.")
    rows: list[tuple[str, int, list[str]]] = Field(default_factory=list, description="(class, iteration, cells).")


class ReportData(BaseModel):
    """Everything a report shows; built from a run directory by the CLI."""

    title: str
    classnames: list[str]
    objective: list[float] = Field(description="Feedback-split accuracy (percent) per iteration, 0 = initial.")
    validation: list[float] = Field(default_factory=list, description="Validation accuracy per iteration, if used.")
    per_class_before: list[float] = Field(description="Test accuracy per class (percent), initial descriptions.")
    per_class_after: list[float] = Field(description="Test accuracy per class (percent), optimized descriptions.")
    confusion_before: list[list[int]]
    confusion_after: list[list[int]]
    baselines: dict[str, float] = Field(description="Method name to test accuracy in percent.")
    lineage: list[LineageRow] = Field(default_factory=list)
    signals: list[SignalTable] = Field(
        default_factory=list,
        description="Per feedback signal with a report table: what it said per class and iteration.",
    )
    summary: dict[str, str] = Field(default_factory=dict, description="Key facts shown at the top.")
    image_side: dict[str, Any] | None = Field(
        default=None, description="The run's image-side scores (result.json 'image_side'), when it had one."
    )


def png_data(fig: Figure) -> str:
    """The figure as base64 PNG (for a data URI); closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_objective(data: ReportData) -> Figure:
    """Objective per iteration (feedback split, and validation when present)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    its = np.arange(len(data.objective))
    ax.plot(its, data.objective, marker="o", label="feedback split")
    if data.validation:
        ax.plot(np.arange(len(data.validation)), data.validation, marker="s", label="validation")
    ax.set_xlabel("iteration")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Objective per iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_per_class(data: ReportData) -> Figure:
    """Per-class test accuracy before and after, sorted by the gain."""
    before, after = np.asarray(data.per_class_before), np.asarray(data.per_class_after)
    order = np.argsort(after - before)
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.22 * len(order))))
    y = np.arange(len(order))
    ax.barh(y - 0.2, before[order], height=0.4, label="initial")
    ax.barh(y + 0.2, after[order], height=0.4, label="optimized")
    ax.set_yticks(y, [data.classnames[i] for i in order], fontsize=7)
    ax.set_xlabel("test accuracy (%)")
    ax.set_title("Per-class accuracy before and after")
    ax.legend(loc="lower right")
    return fig


def plot_confusions(data: ReportData) -> Figure:
    """Confusion heatmaps (rows: true class, columns: predicted) before and after."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2))
    mats = [np.asarray(data.confusion_before), np.asarray(data.confusion_after)]
    vmax = max(int(m.max()) for m in mats) or 1
    show_names = len(data.classnames) <= 40
    for ax, mat, title in zip(axes, mats, ("initial", "optimized"), strict=True):
        im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(f"Confusion, {title}")
        if show_names:
            ticks = np.arange(len(data.classnames))
            ax.set_xticks(ticks, data.classnames, rotation=90, fontsize=6)
            ax.set_yticks(ticks, data.classnames, fontsize=6)
        ax.set_xlabel("predicted")
    axes[0].set_ylabel("true")
    fig.colorbar(im, ax=axes, shrink=0.7)
    return fig


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain HTML table, every cell escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
img { max-width: 100%; }
.removed { color: #999; text-decoration: line-through; }
"""
PLOTS_LOADED_SCRIPT = """<script>
// Marks how many plots decoded, so a headless browser check can tell a broken image from a drawn one.
window.addEventListener("load", () => {
  document.body.dataset.plotsLoaded = [...document.querySelectorAll("img.plot")]
    .filter((img) => img.complete && img.naturalWidth > 0).length;
});
</script>"""


def figures_html(plots: Sequence[tuple[str, Figure]]) -> str:
    """Each figure as an inlined ``img.plot`` (what the browser check counts)."""
    return "\n".join(
        f'<figure><img class="plot" id="plot-{name}" alt="{name} plot" src="data:image/png;base64,{png_data(fig)}"></figure>'
        for name, fig in plots
    )


def render_html(data: ReportData) -> str:
    """The whole report as one HTML string (images inlined as data URIs, no external requests)."""
    plots = [
        ("objective", plot_objective(data)),
        ("per-class", plot_per_class(data)),
        ("confusion", plot_confusions(data)),
    ]
    figures = figures_html(plots)
    summary = html_table(["", ""], list(data.summary.items()))
    baselines = html_table(["method", "test accuracy (%)"], [(k, f"{v:.1f}") for k, v in data.baselines.items()])
    lineage_rows = [
        (
            r.classname,
            r.text,
            r.added_iteration,
            r.origin,
            "" if r.delta_correct is None else f"{r.delta_correct:+d} images",
            "" if r.removed_iteration is None else f"{r.removed_iteration} ({r.removed_reason})",
        )
        for r in sorted(data.lineage, key=lambda r: (r.classname, r.added_iteration))
    ]
    lineage = html_table(["class", "description", "added at", "origin", "objective change", "removed at"], lineage_rows)
    signal_sections = "\n".join(
        f'<h2 id="signal-{html.escape(t.name)}">{html.escape(t.title)}</h2>'
        + html_table(["class", "iteration", *t.columns], [(c, it, *cells) for c, it, cells in t.rows])
        for t in data.signals
        if t.rows
    )
    image_section = _image_side_section(data.image_side) if data.image_side else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(data.title)}</title>
<style>{CSS}</style></head><body>
<h1>{html.escape(data.title)}</h1>
<h2>Summary</h2>{summary}
<h2>Baselines (same backbone, same test split)</h2>{baselines}
<h2>Plots</h2>{figures}
<h2>Description lineage</h2>{lineage}
{signal_sections}
{image_section}
{PLOTS_LOADED_SCRIPT}
</body></html>
"""


def _image_side_section(grid: dict[str, Any]) -> str:
    """Test accuracy of every method with the image alone and fused with the MLLM's words."""
    scores: dict[str, dict[str, dict[str, Any]]] = grid["scores"]
    sides = list(next(iter(scores.values()))) if scores else []
    wrong = [f"{s} where the guess is wrong" for s in sides[1:]] if grid.get("label_accuracy") is not None else []
    first = next(iter(scores.values()), {})
    auto = [s for s in sides if first[s].get("selection_accuracy") is not None]
    chosen = [f"{s}: weights (accuracy on {grid.get('selected_on')}, image alone there)" for s in auto]
    rows = []
    for method, row in scores.items():
        cells = [f"{row[s]['accuracy']:.1f}" for s in sides]
        if wrong:
            cells += [f"{row[s]['accuracy_label_wrong']:.1f}" for s in sides[1:]]
        cells += [
            f"{short_weights(row[s]['weights'])} ({row[s]['selection_accuracy']:.1f}, "
            + ("-" if row[s]["selection_image_accuracy"] is None else f"{row[s]['selection_image_accuracy']:.1f}")
            + ")"
            for s in auto
        ]
        rows.append((method, *cells))
    label = grid.get("label_accuracy")
    note = f"MLLM {html.escape(str(grid.get('mllm', '')))}; {grid.get('n_images', 0)} test pictures" + (
        f"; its own label accuracy {label:.1f} % ({grid.get('label_wrong', 0)} wrong guesses)"
        if label is not None
        else ""
    )
    if auto:
        note += (
            f"; auto weights (image/description/label) chosen per method on {grid.get('selection_images', 0)} "
            f"{html.escape(str(grid.get('selected_on')))} pictures, the test split scored once with them"
        )
    table = html_table(["method", *sides, *wrong, *chosen], rows)
    return f"<h2>Image side (test accuracy %, What do you see?)</h2><p>{note}</p>{table}"


def write_report(data: ReportData, path: Path) -> Path:
    """Write the report atomically and return its path."""
    write_text_atomic(path, render_html(data))
    return path
