"""The ``visfeed`` command's top-level commands (typer). Rich output lives in this package and only here.

Exit codes: 0 success; 2 bad usage or bad config (the reason is printed and nothing is written); 1 a
runtime failure (the run is left resumable); 130 interrupted by Ctrl-C (resumable).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from visfeed import __version__
from visfeed.cli.common import (
    BackboneOpt,
    ConfigOpt,
    DatasetOpt,
    DownloadOpt,
    PretrainedOpt,
    ProviderOpt,
    RootOpt,
    SeedOpt,
    SetOpt,
    console,
    handle_errors,
    out,
    parse_sets,
)
from visfeed.cli.concepts import app as concepts_app
from visfeed.cli.embed import embed_command
from visfeed.cli.inspect import eval_command, trace_command
from visfeed.cli.sweep import sweep_command
from visfeed.cli.world import app as world_app
from visfeed.errors import ConfigError


class Keep(StrEnum):
    """What a finished run keeps of its checkpoint history."""

    all = "all"
    last = "last"


KeepOpt = Annotated[
    Keep,
    typer.Option(
        "--keep-checkpoints", help="What a finished run keeps of its checkpoints: all (time travel) or the last one."
    ),
]

app = typer.Typer(
    name="visfeed",
    help="Optimize class descriptions for zero-shot image classifiers with LLMs and visual feedback "
    "(arXiv 2311.11904).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(world_app, name="world")
app.add_typer(concepts_app, name="concepts")
app.command(name="trace")(handle_errors(trace_command))
app.command(name="eval")(handle_errors(eval_command))
app.command(name="sweep")(handle_errors(sweep_command))
app.command(name="embed")(handle_errors(embed_command))


@app.command()
def version() -> None:
    """Print the installed version."""
    out.print(__version__)


@app.command()
@handle_errors
def optimize(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    root: RootOpt = None,
    backbone: BackboneOpt = None,
    pretrained: PretrainedOpt = None,
    download: DownloadOpt = False,
    provider: ProviderOpt = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="Base URL of an OpenAI-compatible server.")] = None,
    seed: SeedOpt = None,
    k_shot: Annotated[int | None, typer.Option("--k-shot", help="Feedback images per class.")] = None,
    max_iterations: Annotated[int | None, typer.Option("--max-iterations", help="Most iterations.")] = None,
    patience: Annotated[int | None, typer.Option("--patience", help="Stop after N iterations without gain.")] = None,
    max_calls: Annotated[int | None, typer.Option("--max-calls", help="LLM budget: most calls.")] = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", "-o", help="Run directory (default: runs/...).")] = None,
    vocabulary: Annotated[
        Path | None, typer.Option("--vocabulary", help="Visual-word list, one word or phrase a line.")
    ] = None,
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live view.")] = False,
    keep_checkpoints: KeepOpt = Keep.all,
) -> None:
    """Run the optimization graph and write a run directory.

    Examples:
      visfeed optimize                                  # synthetic world, embedded VLM and LLM

      visfeed optimize -d flowers102 --root ~/data --backbone ViT-B-32 --pretrained openai -p openai:gpt-4o-mini

      visfeed optimize -c run.yaml --set method.patience=3 --set search.crossover=beam

      visfeed optimize --vocabulary my_words.txt --set signals.visual_words.count=8

      visfeed optimize --keep-checkpoints last          # a finished run keeps only its final checkpoint
    """
    from visfeed.state.config import RunConfig

    overrides: dict[str, Any] = {
        "data.name": dataset, "data.root": root, "backbone.model": backbone, "backbone.pretrained": pretrained,
        "backbone.allow_download": download or None, "llm.provider": provider, "llm.base_url": base_url, "seed": seed,
        "data.k_shot": k_shot, "method.max_iterations": max_iterations, "method.patience": patience, "budget.max_calls": max_calls,
        "run_dir": run_dir, "signals.visual_words.vocabulary": vocabulary,
    }  # fmt: skip
    overrides.update(parse_sets(set_ or []))
    cfg = RunConfig.load(config, overrides)
    _check_writable(cfg.run_dir)
    from visfeed.agents.run import optimize as run_optimize

    _run(lambda progress: run_optimize(cfg, progress=progress), quiet=quiet, keep=keep_checkpoints.value)


@app.command()
@handle_errors
def resume(
    run: Annotated[Path, typer.Argument(help="Run directory to continue.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live view.")] = False,
    keep_checkpoints: KeepOpt = Keep.all,
) -> None:
    """Continue an interrupted or failed run; completed LLM calls come from the cache.

    On a finished run it only prints the result (and applies --keep-checkpoints).

    Examples:
      visfeed resume runs/world-s0-20261127-101500

      visfeed resume runs/world-s0-20261127-101500 --keep-checkpoints last   # drop a finished run's history
    """
    from visfeed.agents.run import resume as run_resume
    from visfeed.evals.inspect import require_run_dir

    require_run_dir(run)
    _run(lambda progress: run_resume(run, progress=progress), quiet=quiet, keep=keep_checkpoints.value)


def _check_writable(run_dir: Path | None) -> None:
    """Fail early (exit 2, nothing written) when the run directory cannot be created."""
    target = Path(run_dir) if run_dir is not None else Path("runs")
    probe = target
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"run directory {target} cannot be created: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"run directory {target} is not writable ({probe} denies writing)")


def _run(
    start: Callable[[Callable[[str, dict[str, Any]], None] | None], Any], *, quiet: bool, keep: str = "all"
) -> None:
    """Run with a live view; print the result; exit 1 on a failed run, 130 on Ctrl-C.

    ``keep``: which checkpoints a finished run keeps (an unfinished one keeps all: it must stay resumable).
    """
    from visfeed.cli.live import LiveView

    view = None if quiet else LiveView(console)
    try:
        if view is None:
            result = start(None)
        else:
            with view:
                result = start(view.update)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted.[/yellow] Continue with: visfeed resume RUN_DIR (see runs/)")
        raise typer.Exit(130) from None
    _print_result(result)
    if keep != "all" and (result.status == "completed" or result.status.startswith("stopped")):
        from visfeed.agents.checkpoints import keep_checkpoints

        before, after = keep_checkpoints(Path(result.run_dir), "last")
        out.print(f"checkpoints: kept the last; {before / 1e6:.1f} MB -> {after / 1e6:.2f} MB")
    if result.status == "interrupted":
        console.print(f"[yellow]interrupted.[/yellow] Continue with: visfeed resume {result.run_dir}")
        raise typer.Exit(130)
    if result.status.startswith("failed"):
        console.print(f"[red]{result.status}[/red]. The run is resumable: visfeed resume {result.run_dir}")
        raise typer.Exit(1)


def _print_result(result: Any) -> None:
    from visfeed.state.rundir import shown_name

    table = Table(title=escape(f"{result.dataset}: {result.status}"), show_lines=False)
    table.add_column("method")
    table.add_column("feedback acc", justify="right")
    table.add_column("test acc", justify="right")
    rows = {**result.baselines, **({"optimized": result.optimized} if result.optimized else {})}
    for name, s in rows.items():
        test = "-" if s.test_accuracy is None else f"{100 * s.test_accuracy:.1f}%"
        table.add_row(shown_name(name, s), f"{100 * s.feedback_accuracy:.1f}%", test)
    out.print(table)
    out.print(f"run directory: {result.run_dir}  ({result.stop_reason or result.status})")


@app.command()
@handle_errors
def runs(root: Annotated[Path, typer.Argument(help="Folder holding run directories.")] = Path("runs")) -> None:
    """List runs with status, objective, test accuracy, cost and checkpoint database size.

    Example: visfeed runs runs/
    """
    from visfeed.evals.inspect import find_runs

    table = Table(title=f"runs in {root}")
    for col in ("run", "status", "dataset", "iters", "feedback acc", "test acc", "LLM calls", "cost $", "checkpoints"):
        table.add_column(col)

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    for r in find_runs(root):
        table.add_row(escape(r.run_dir), escape(r.status), escape(r.dataset), str(r.iterations), pct(r.feedback_accuracy),
                      pct(r.test_accuracy), str(r.llm_calls), f"{r.cost_usd:.4f}",
                      f"{r.checkpoint_bytes / 1e6:.1f} MB")  # fmt: skip
    out.print(table)


@app.command()
@handle_errors
def export(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    to: Annotated[Path, typer.Option("--out", help="CuPL JSON file to write.")] = Path("descriptions.json"),
) -> None:
    """Write the run's best descriptions as CuPL JSON (class name -> list of prompt sentences).

    The file works as a custom template file for CLIP_benchmark and with open_clip's
    build_zero_shot_classifier. Example: visfeed export runs/world-s0-... --out flowers.json
    """
    from visfeed.evals.inspect import require_run_dir
    from visfeed.fileio import write_json_atomic

    src = require_run_dir(run) / "descriptions.json"
    if not src.is_file():
        raise ConfigError(f"run {run} has no descriptions.json yet; finish it with `visfeed resume {run}`")
    data = json.loads(src.read_text(encoding="utf-8"))
    write_json_atomic(to, data)
    out.print(f"wrote {len(data)} classes to {to}")


@app.command()
@handle_errors
def report(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    to: Annotated[Path | None, typer.Option("--out", help="HTML file (default: RUN/report.html).")] = None,
) -> None:
    """Write a self-contained HTML report: objective per iteration, per-class accuracy, confusions, lineage.

    Example: visfeed report runs/world-s0-... && chromium runs/world-s0-.../report.html
    """
    from visfeed.evals.inspect import report_data
    from visfeed.evals.report import write_report

    path = write_report(report_data(run), to or run / "report.html")
    out.print(f"wrote {path}")


@app.command()
@handle_errors
def datasets() -> None:
    """List the supported datasets and the on-disk layout each expects."""
    from visfeed.tools.datasets import list_datasets

    table = Table(title="datasets (use --dataset NAME --root PATH; `world` needs no root)")
    table.add_column("name")
    table.add_column("expected layout")
    for info in list_datasets():
        table.add_row(escape(info.name), escape(info.layout))
    out.print(table)


@app.command()
def doctor(
    no_server: Annotated[bool, typer.Option("--no-server", help="Skip starting the embedded LLM server.")] = False,
) -> None:
    """Check that `visfeed optimize` on the embedded defaults can run here; exit 0 only if it can.

    Starts the embedded LLM server and asks it for a token, loads the embedded backbone, and reports
    package versions, the llama.cpp CPU build, torch threads, CUDA and Chromium.

    Example: visfeed doctor
    """
    from visfeed.tools.doctor import Check, healthy, run_checks
    from visfeed.tools.embedding.builtin_models import visfeed_cache_dir

    def show(check: Check) -> None:
        mark = "[green]  ok[/green]" if check.ok else ("[red]FAIL[/red]" if check.required else "[yellow]warn[/yellow]")
        out.print(f"{mark} [bold]{escape(check.name)}[/bold]: {escape(check.detail)}")

    checks = run_checks(server=not no_server, on_check=show, cache_dir=visfeed_cache_dir(os.environ))
    if not healthy(checks):
        console.print("[red]visfeed cannot run its main job here[/red]: fix the FAIL lines above")
        raise typer.Exit(1)
    out.print("everything `visfeed optimize` needs works here")


def main() -> None:
    """Entry point with library logging routed to stderr."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
