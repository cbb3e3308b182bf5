"""A sweep's summary as one self-contained HTML page: the table, a bar plot with spread, the cells.

Same conventions as the run report (:mod:`visfeed.evals.report`): the plot is an inline PNG, nothing is
fetched, every name is escaped.
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from visfeed.evals.report import CSS, PLOTS_LOADED_SCRIPT, figures_html, html_table
from visfeed.evals.sweep_summary import SweepSummary
from visfeed.fileio import write_text_atomic


def plot_methods(summary: SweepSummary) -> Figure:
    """Test accuracy per column, one bar per method, error bars = std over seeds."""
    cols, methods = summary.columns, summary.methods
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(cols) + 2), 3.8))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(cols))
    for i, m in enumerate(methods):
        stats = [summary.accuracy[m][c] for c in cols]
        means = [np.nan if s.mean is None else s.mean for s in stats]
        errs = [0.0 if s.std is None else s.std for s in stats]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=errs, capsize=2, label=m)
    ax.set_xticks(x, cols, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{summary.name}: mean ± std over seeds")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncols=min(3, len(methods)))
    return fig


def render_sweep_html(summary: SweepSummary) -> str:
    """The whole page as one HTML string."""
    table = html_table(["method", *summary.columns], summary.rows())
    cells = html_table(
        ["cell", "column", "seed", "status", "iterations", "LLM calls"],
        [(c.id, c.column, c.seed, c.status, "" if c.iteration is None else c.iteration,
          "" if c.llm_calls is None else c.llm_calls) for c in summary.cells],
    )  # fmt: skip
    plot = figures_html([("methods", plot_methods(summary))])
    title = html.escape(f"sweep {summary.name}")
    note = "" if summary.complete else "<p><strong>Not every cell has finished; their seeds are left out.</strong></p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{CSS}</style></head><body>
<h1>{title}</h1>
{note}
<h2>Test accuracy (%), mean ± std over seeds; cost per seed</h2>{table}
<h2>Plot</h2>{plot}
<h2>Cells</h2>{cells}
{PLOTS_LOADED_SCRIPT}
</body></html>
"""


def write_sweep_report(summary: SweepSummary, path: Path) -> Path:
    """Write the page atomically and return its path."""
    write_text_atomic(path, render_sweep_html(summary))
    return path
