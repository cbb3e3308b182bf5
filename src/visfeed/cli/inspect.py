"""``visfeed trace`` (what a run did) and ``visfeed eval`` (baselines and description files, several seeds)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from visfeed.cli.common import out, parse_sets
from visfeed.errors import ConfigError


def _short(value: Any, width: int = 100) -> str:
    """One line, at most ``width`` characters, with rich markup escaped (traces hold LLM text)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return escape(text if len(text) <= width else text[: width - 1] + "…")


def _event_line(e: dict[str, Any], messages: bool) -> str:
    kind = e.get("event", "?")
    it = e.get("iteration")
    head = f"[dim]{e.get('time', '')[:19]}[/dim] " + (f"it {it} " if it is not None else "") + f"[bold]{kind}[/bold]"
    if kind in ("node_start", "node_end"):
        dur = f" {e['duration_s']:.2f}s" if "duration_s" in e else ""
        err = f" [red]{escape(str(e['error']))}[/red]" if e.get("error") else ""
        return f"{head} {e.get('node')}{dur}{err}"
    if kind == "llm_call":
        tokens = f"{e.get('prompt_tokens', 0)}+{e.get('completion_tokens', 0)} tok"
        line = f"{head} {e.get('task')} {e.get('model')} {tokens} {e.get('latency_s', 0):.1f}s"
        line += " [green]cache hit[/green]" if e.get("cache_hit") else ""
        if messages:
            for m in e.get("messages", []):
                line += f"\n    [cyan]{m.get('role')}[/cyan]: {escape(str(m.get('content')))}"
            reply = e.get("response") or {}
            line += f"\n    [magenta]response[/magenta]: {escape(str(reply.get('content', reply)))}"
        return line
    if kind == "tool_call":
        return f"{head} {e.get('tool')}({_short(e.get('args'), 80)}) -> {_short(e.get('summary', ''), 80)}"
    if kind == "iteration":
        val = e.get("validation_accuracy")
        val_text = "" if val is None else f", validation {100 * val:.1f}%"
        mark = " [green]new best[/green]" if e.get("improved") else ""
        return (
            f"{head} feedback accuracy {100 * e.get('feedback_accuracy', 0):.1f}% "
            f"(margin {e.get('mean_margin', 0):+.4f}){val_text}, {e.get('llm_calls', 0)} LLM calls{mark}"
        )
    skip = {"event", "time", "iteration", "messages"}
    return f"{head} " + _short({k: v for k, v in e.items() if k not in skip}, 140)


def trace_command(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    iteration: Annotated[int | None, typer.Option("--iteration", "-i", help="Only this iteration.")] = None,
    node: Annotated[str | None, typer.Option("--node", help="Only this node (initialize, mutate, ...).")] = None,
    classname: Annotated[
        str | None,
        typer.Option("--class", help="Lineage of this class's descriptions, what each change did, the words offered."),
    ] = None,
    messages: Annotated[bool, typer.Option("--messages", "-m", help="Show LLM prompts and answers.")] = False,
    event: Annotated[list[str] | None, typer.Option("--event", help="Only these event kinds (repeatable).")] = None,
) -> None:
    """A readable timeline of a run: nodes, LLM calls, tool calls, objective; or one class's lineage.

    Examples:
      visfeed trace runs/world-s0-...                   # the whole timeline

      visfeed trace runs/world-s0-... -i 2 --messages   # iteration 2 with prompts and answers

      visfeed trace runs/world-s0-... --class lemon     # how lemon's descriptions evolved
    """
    from visfeed.evals.inspect import filter_events, lineage_rows, require_run_dir, words_rows
    from visfeed.state.rundir import read_trace

    require_run_dir(run)
    if classname is not None:
        rows = lineage_rows(run, classname)
        if not rows:
            raise ConfigError(f"no descriptions of class {classname!r} in the trace of {run}")
        table = Table(title=f"lineage of {classname!r}")
        for col in ("added", "origin", "description", "objective change", "removed"):
            table.add_column(col)
        for r in sorted(rows, key=lambda r: r.added_iteration):
            change = "" if r.delta_correct is None else f"{r.delta_correct:+d} images"
            removed = "" if r.removed_iteration is None else f"it {r.removed_iteration}: {r.removed_reason}"
            table.add_row(str(r.added_iteration), escape(r.origin), escape(r.text), change, escape(removed))
        out.print(table)
        offered = words_rows(run, classname)
        if offered:
            words = Table(title=f"visual words offered for {classname!r}")
            for col in ("iteration", "its images look", "confused classes' images look"):
                words.add_column(col)
            for w in offered:
                words.add_row(str(w.iteration), escape(", ".join(w.own)), escape(w.against_text()))
            out.print(words)
        return
    events = read_trace(run, events=set(event) if event else None)
    for e in filter_events(events, iteration=iteration, node=node):
        out.print(_event_line(e, messages), highlight=False)


def read_descriptions(path: Path) -> dict[str, list[str]]:
    """CuPL JSON (class -> list of prompts) or text lines ``class: prompt`` (# comments, blank lines ignored)."""
    if not path.is_file():
        raise ConfigError(f"description file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"description file {path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or not all(
            isinstance(v, list) and all(isinstance(s, str) for s in v) for v in data.values()
        ):
            raise ConfigError(f"description file {path} must map each class name to a list of strings (CuPL format)")
        return {str(k): [s for s in v if s.strip()] for k, v in data.items()}
    prompts: dict[str, list[str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, prompt = line.partition(":")
        if not sep or not name.strip() or not prompt.strip():
            raise ConfigError(f"{path}:{n}: expected 'class name: prompt sentence', got {line!r}")
        prompts.setdefault(name.strip(), []).append(prompt.strip())
    return prompts


def check_covers(path: Path, prompts: Mapping[str, list[str]], classnames: list[str]) -> None:
    """Usage error unless the file has prompts for every class."""
    missing = [c for c in classnames if not prompts.get(c)]
    if missing:
        raise ConfigError(f"description file {path} has no prompts for classes {missing[:5]} ({len(missing)} missing)")


def eval_command(
    descriptions: Annotated[
        list[Path] | None, typer.Option("--descriptions", "-D", help="CuPL JSON or text file to score (repeatable).")
    ] = None,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="'world' or a dataset name.")] = "world",
    root: Annotated[Path | None, typer.Option("--root", help="Dataset folder or manifest.")] = None,
    backbone: Annotated[str | None, typer.Option("--backbone", help="open_clip model name.")] = None,
    pretrained: Annotated[str | None, typer.Option("--pretrained", help="Pretrained tag or checkpoint.")] = None,
    download: Annotated[bool, typer.Option("--download", help="Allow downloading weights or data.")] = False,
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated seeds (splits differ per seed).")] = "0",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any run-config field: --set n_test=100.")] = None,
    to: Annotated[Path | None, typer.Option("--out", help="Also write the table as JSON.")] = None,
) -> None:
    """Score the baselines (names, 80 templates, WaffleCLIP, the visual-words control) and description files.

    Mean and spread over seeds.

    Examples:
      visfeed eval                                          # baselines on the synthetic world

      visfeed eval -D runs/world-s0-.../descriptions.json --seeds 0,1,2
    """
    from visfeed.agents.resources import build_scoring, visual_words_control
    from visfeed.state.config import RunConfig
    from visfeed.tools.baselines import (
        description_prompts,
        names_prompts,
        prompt_objective,
        template_prompts,
        waffle_prompts,
    )

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds expects comma-separated integers, got {seeds!r}") from None
    if not seed_list:
        raise ConfigError("--seeds is empty")
    files = {str(p): read_descriptions(p) for p in descriptions or []}
    overrides: dict[str, Any] = {"dataset": dataset, "dataset_root": root, "backbone": backbone,
                                 "pretrained": pretrained, "allow_download": download or None}  # fmt: skip
    overrides.update(parse_sets(set_ or []))
    scores: dict[str, list[float]] = {}
    for seed in seed_list:
        cfg = RunConfig.load(None, {**overrides, "seed": seed})
        data = build_scoring(cfg)
        test = data.test_loader()
        n_prompts = max((len(v) for f in files.values() for v in f.values()), default=10)
        sets = {
            "names": names_prompts(data.classnames),
            "templates": template_prompts(data.classnames),
            "waffle": waffle_prompts({c: n_prompts for c in data.classnames}, np.random.default_rng([seed, 7])),
        }
        control = visual_words_control(data, cfg)
        if control is not None:
            sets["visual_words"] = description_prompts(control, cfg.resolved_template)
        for name, prompts in files.items():
            check_covers(Path(name), prompts, data.classnames)
            sets[name] = prompts
        for name, prompts in sets.items():
            obj = prompt_objective(
                data.encoder, data.classnames, prompts, test.image_emb, test.labels, device=cfg.device
            )
            scores.setdefault(name, []).append(100.0 * obj.n_correct / obj.n_images)
    table = Table(title=f"test accuracy (%) on {dataset}, seeds {seed_list}")
    for col in ("method", "mean", "std", "per seed"):
        table.add_column(col)
    summary = {}
    for name, vals in scores.items():
        arr = np.asarray(vals)
        summary[name] = {"mean": float(arr.mean()), "std": float(arr.std()), "per_seed": vals}
        table.add_row(name, f"{arr.mean():.1f}", f"{arr.std():.1f}", " ".join(f"{v:.1f}" for v in vals))
    out.print(table)
    if to is not None:
        from visfeed.fileio import write_json_atomic

        write_json_atomic(to, {"dataset": dataset, "seeds": seed_list, "methods": summary})
