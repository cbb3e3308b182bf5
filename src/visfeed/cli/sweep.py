"""``visfeed sweep SPEC``: a grid of runs with a live table, resumable, summarized as a paper's table."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from visfeed.cli.common import console, out

if TYPE_CHECKING:
    from visfeed.agents.sweep import CellOutcome
    from visfeed.agents.sweep.ray_executor import RayExecutor
    from visfeed.state.sweep import Cell, SweepSpec


def sweep_command(
    spec: Annotated[
        Path, typer.Argument(help="Sweep spec (YAML, TOML or JSON): datasets, backbones, providers, seeds.")
    ],
    sweep_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Sweep directory (default: sweeps/<spec name>).")
    ] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Run cells as Ray tasks (starts or joins a local Ray).")] = False,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Run cells on the Ray cluster at this address.")
    ] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Local executor: most cells at once.")] = None,
    summary_only: Annotated[
        bool, typer.Option("--summary", help="Run nothing: rebuild the summary of what has finished.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live table: one line per finished cell.")] = False,
) -> None:
    """Run every cell (dataset × backbone × provider × seed) as an ordinary run directory, then summarize.

    Running it again resumes: finished cells are skipped, failed or interrupted ones continue from their
    checkpoint. Writes SWEEP_DIR/summary.json, summary.csv and summary.html. Exit 1 when a cell failed
    (run the same command again to resume it).

    Examples:
      visfeed sweep benchmarks/specs/sweep_worlds.yaml

      visfeed sweep spec.yaml --ray                      # cells as Ray tasks on a local Ray instance

      visfeed sweep spec.yaml --ray-address ray://head:10001 --out /shared/sweeps/table1
    """
    from visfeed.state.sweep import expand, load_spec
    from visfeed.state.templates import parse_source
    from visfeed.tools.feedback.description_files import read_description_file

    cfg = load_spec(spec)
    target = sweep_dir or Path("sweeps") / cfg.name
    cells = expand(cfg, target, base=spec.resolve().parent)
    for source in dict.fromkeys(s for c in cells for s in c.descriptions.values()):
        read_description_file(*parse_source(source))  # a missing or malformed file is a usage error up front
    outcomes = []
    if not summary_only:
        outcomes = _run_cells(spec, cfg, cells, target, address=ray_address, ray=ray or ray_address is not None,
                              jobs=jobs, quiet=quiet)  # fmt: skip
    _write_summary(cfg, cells, target)
    failed = [o.id for o in outcomes if not (o.status == "completed" or o.status.startswith("stopped"))]
    if failed:
        more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
        console.print(f"[red]{len(failed)} cell(s) did not finish[/red] ({escape(', '.join(failed[:3]))}{more}); "
                      f"resume them with: visfeed sweep {spec} --out {target}")  # fmt: skip
        raise typer.Exit(1)


def _run_cells(
    spec_path: Path, cfg: SweepSpec, cells: list[Cell], target: Path, *, address: str | None, ray: bool,
    jobs: int | None, quiet: bool,
) -> list[CellOutcome]:  # fmt: skip
    """Check the cells, then run them with the chosen executor under the live table; exit 130 on Ctrl-C."""
    from visfeed.agents.sweep import LocalExecutor, check_cells
    from visfeed.cli.live import SweepView
    from visfeed.evals.sweep_summary import cell_status
    from visfeed.state.sweep import SWEEP_FILE

    check_cells(cells)
    executor: LocalExecutor | RayExecutor
    if ray:
        from visfeed.agents.sweep.ray_executor import RayExecutor
        from visfeed.tools.embedding.ray_support import import_ray

        import_ray()  # a missing extra is a usage error, raised before anything is written
        executor = RayExecutor(cfg.limits, address=address)
    else:
        executor = LocalExecutor(cfg.limits.model_copy(update={"cells": jobs}) if jobs else cfg.limits)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(spec_path, target / SWEEP_FILE)

    def report(outcome: CellOutcome) -> None:
        if quiet:
            done = " (already done)" if outcome.skipped else ""
            console.print(f"{escape(outcome.id)}: {escape(outcome.status)}{done}")

    try:
        if quiet:
            return executor.run(cells, report)
        with SweepView(console, lambda: [cell_status(c) for c in cells], f"sweep {cfg.name}"):
            return executor.run(cells, report)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted.[/yellow] Continue with: visfeed sweep {spec_path} --out {target}")
        raise typer.Exit(130) from None


def _write_summary(cfg: SweepSpec, cells: list[Cell], target: Path) -> None:
    """summary.json, summary.csv and summary.html in the sweep directory, and the table on the terminal."""
    from visfeed.evals.sweep_report import write_sweep_report
    from visfeed.evals.sweep_summary import summarize_sweep, summary_csv
    from visfeed.fileio import write_json_atomic, write_text_atomic

    summary = summarize_sweep(cfg.name, cells, cfg.rows)
    target.mkdir(parents=True, exist_ok=True)
    write_json_atomic(target / "summary.json", summary.model_dump(mode="json"))
    write_text_atomic(target / "summary.csv", summary_csv(summary))
    write_sweep_report(summary, target / "summary.html")
    table = Table(title=escape(f"sweep {cfg.name}: test accuracy (%), mean ± std over seeds; cost per seed"))
    table.add_column("method")
    for column in summary.columns:
        table.add_column(escape(column), justify="right")
    for row in summary.rows():
        table.add_row(*(escape(x) for x in row))
    out.print(table)
    out.print(f"summary: {target / 'summary.html'} (and .json, .csv)")
