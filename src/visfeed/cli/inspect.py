"""``visfeed trace`` (what a run did) and ``visfeed eval`` (baselines and description files, several seeds)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from visfeed.cli.common import out, parse_sets
from visfeed.errors import ConfigError

if TYPE_CHECKING:
    from visfeed.agents.resources import EmbeddedSplit, ScoringData
    from visfeed.evals.image_side import ImageSideResult, SideScore
    from visfeed.state.config import RunConfig
    from visfeed.state.image_side import ImageSide


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
        mark = " [red]invalid[/red]" if e.get("valid") is False else ""
        return f"{head} {e.get('tool')}({_short(e.get('args'), 80)}){mark} -> {_short(e.get('summary', ''), 80)}"
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
    from visfeed.evals.inspect import filter_events, lineage_rows, require_run_dir, signal_tables
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
        for signal in (t for t in signal_tables(run, classname) if t.rows):  # what each signal told the LLM
            said = Table(title=f"{signal.title}: {classname!r}")
            for col in ("iteration", *signal.columns):
                said.add_column(col)
            for _, it, cells in signal.rows:
                said.add_row(str(it), *(escape(x) for x in cells))
            out.print(said)
        return
    events = read_trace(run, events=set(event) if event else None)
    for e in filter_events(events, iteration=iteration, node=node):
        out.print(_event_line(e, messages), highlight=False)


def eval_command(
    descriptions: Annotated[
        list[str] | None,
        typer.Option(
            "--descriptions",
            "-D",
            help="Description file to score (repeatable): CuPL JSON, 'class: prompt' lines, DCLIP descriptors "
            "(descriptors_*.json) or an IVF *_sota.txt list; prefix FORMAT: to name the format (dclip:FILE).",
        ),
    ] = None,
    file_format: Annotated[
        str,
        typer.Option("--format", help="Format of -D files without a prefix: auto, cupl, lines, dclip or ivf."),
    ] = "auto",
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="'world' or a dataset name.")] = "world",
    root: Annotated[Path | None, typer.Option("--root", help="Dataset folder or manifest.")] = None,
    backbone: Annotated[str | None, typer.Option("--backbone", help="open_clip model name.")] = None,
    pretrained: Annotated[str | None, typer.Option("--pretrained", help="Pretrained tag or checkpoint.")] = None,
    download: Annotated[bool, typer.Option("--download", help="Allow downloading weights or data.")] = False,
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated seeds (splits differ per seed).")] = "0",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any run-config key: --set data.n_test=100.")] = None,
    to: Annotated[Path | None, typer.Option("--out", help="Also write the table as JSON.")] = None,
    image_side: Annotated[
        str | None,
        typer.Option(
            "--image-side",
            help="Fuse the image with a multimodal LLM's words: any of image,description,label (comma-separated).",
        ),
    ] = None,
    image_weights: Annotated[
        str,
        typer.Option(
            "--image-weights",
            help="auto (chosen per class side on the validation split), equal (the paper), or e.g. description=0.5.",
        ),
    ] = "auto",
    mllm: Annotated[
        str, typer.Option("--mllm", help="Multimodal provider: eyes (embedded), openai:MODEL, openai-compatible:MODEL.")
    ] = "eyes",
    mllm_base_url: Annotated[
        str | None, typer.Option("--mllm-base-url", help="Base URL for openai-compatible.")
    ] = None,
    mllm_max_calls: Annotated[
        int | None, typer.Option("--mllm-max-calls", min=0, help="Budget: most MLLM calls sent.")
    ] = None,
    mllm_max_cost: Annotated[
        float | None, typer.Option("--mllm-max-cost", min=0, help="Budget: most MLLM spend in USD.")
    ] = None,
) -> None:
    """Score the baselines and description files: mean and spread over seeds.

    Baselines: names, 80 templates, WaffleCLIP, the visual-words control, the searched words, ProAPO (here
    without an LLM: templates, names and visual-word sentences) and the image line.

    Examples:
      visfeed eval                                          # baselines on the synthetic world

      visfeed eval -D runs/world-s0-.../descriptions.json --seeds 0,1,2

      visfeed eval -d flowers102 --root /data -D descriptors_flowers.json -D ivf:flowers_sota.txt
      visfeed eval --image-side image,description,label   # each method with and without fusion
    """
    from visfeed.agents.resources import build_scoring, image_line, proapo_lines, searched_words
    from visfeed.state.config import RunConfig
    from visfeed.state.image_side import parse_image_side, short_weights
    from visfeed.state.rundir import IMAGE_LINE_MARK
    from visfeed.state.templates import parse_source
    from visfeed.tools.feedback.baselines import (
        description_prompts,
        names_prompts,
        prompt_objective,
        template_prompts,
        waffle_prompts,
    )
    from visfeed.tools.feedback.description_files import read_description_file
    from visfeed.tools.feedback.registry import signal_controls
    from visfeed.tools.scoring.image_line import accuracy
    from visfeed.tools.search.items import accuracy_of

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds expects comma-separated integers, got {seeds!r}") from None
    if not seed_list:
        raise ConfigError("--seeds is empty")
    # rows are named as given, so one file read in two formats (dclip:F and cupl:F) gives two rows
    files = {spec: read_description_file(*parse_source(spec, file_format)) for spec in descriptions or []}
    overrides: dict[str, Any] = {"data.name": dataset, "data.root": root, "backbone.model": backbone,
                                 "backbone.pretrained": pretrained, "backbone.allow_download": download or None}  # fmt: skip
    overrides.update(parse_sets(set_ or []))
    side = None if image_side is None else parse_image_side(image_side, image_weights)
    fused: dict[str, list[float]] = {}
    chosen: dict[str, list[SideScore]] = {}
    selected_on: str | None = None
    label_acc: list[float] = []
    scores: dict[str, list[float]] = {}
    for seed in seed_list:
        cfg = RunConfig.load(None, {**overrides, "seed": seed})
        data = build_scoring(cfg)
        test = data.test_loader()
        n_prompts = max((len(v) for f in files.values() for v in f.entries.values()), default=10)
        sets = {
            "names": names_prompts(data.classnames),
            "templates": template_prompts(data.classnames),
            "waffle": waffle_prompts({c: n_prompts for c in data.classnames}, np.random.default_rng([seed, 7])),
        }
        for method, control in signal_controls(cfg, data).items():  # visual words: descriptions from them alone
            sets[method] = description_prompts(control, cfg.resolved_template)
        searched = searched_words(data)
        for name, file in files.items():
            sets[name] = file.for_classes(data.classnames)
        for name, prompts in sets.items():
            obj = prompt_objective(
                data.encoder, data.classnames, prompts, test.image_emb, test.labels, device=cfg.backbone.device
            )
            scores.setdefault(name, []).append(100.0 * obj.n_correct / obj.n_images)
        if searched is not None:  # no LLM: name templates and visual-word sentences, searched on feedback
            vectors = searched[0].vectors(searched[1].chosen)
            scores.setdefault("searched_words", []).append(100.0 * accuracy_of(vectors, test.image_emb, test.labels))
        for method, found in proapo_lines(data, cfg, {}).items():  # no LLM here: templates, names, words
            vectors = found.library.vectors(found.found.chosen)
            scores.setdefault(method, []).append(100.0 * accuracy_of(vectors, test.image_emb, test.labels))
        line = image_line(data, seed)
        if line is not None:  # not zero-shot: marked in the table
            for method in line.methods:
                acc = accuracy(line.predict(method, test.image_emb), test.labels)
                scores.setdefault(method + IMAGE_LINE_MARK, []).append(100.0 * acc)
        if side is not None:
            grid = _image_side(data, cfg, sets, test, side, mllm, mllm_base_url, mllm_max_calls, mllm_max_cost)
            for name, row in grid.scores.items():
                fused.setdefault(name, []).append(row[side.label].accuracy)
                chosen.setdefault(name, []).append(row[side.label])
            selected_on = grid.selected_on
            if grid.label_accuracy is not None:
                label_acc.append(grid.label_accuracy)
    columns = ["method", "mean", "std", "per seed"]
    if side is not None:
        columns += [f"{side.label} mean", "std", "gain"]
        if side.auto:
            columns += [f"weights per seed ({selected_on})", f"{selected_on} fused / image"]
    table = Table(title=f"test accuracy (%) on {dataset}, seeds {seed_list}")
    for col in columns:
        table.add_column(col)
    summary: dict[str, Any] = {}
    for name, vals in scores.items():
        arr = np.asarray(vals)
        summary[name] = {"mean": float(arr.mean()), "std": float(arr.std()), "per_seed": vals}
        cells = [name, f"{arr.mean():.1f}", f"{arr.std():.1f}", " ".join(f"{v:.1f}" for v in vals)]
        if side is not None and name not in fused:  # the image line and the searched words: no class side fused
            cells += ["-"] * (len(columns) - len(cells))
        elif side is not None:
            f = np.asarray(fused[name])
            summary[name]["fused"] = {
                "side": side.label,
                "mean": float(f.mean()),
                "std": float(f.std()),
                "per_seed": fused[name],
                "weights_per_seed": [c.weights for c in chosen[name]],
            }
            cells += [f"{f.mean():.1f}", f"{f.std():.1f}", f"{f.mean() - arr.mean():+.1f}"]
            if side.auto:
                sel = [c.selection_accuracy or 0.0 for c in chosen[name]]
                img = [c.selection_image_accuracy for c in chosen[name]]
                summary[name]["fused"] |= {"selected_on": selected_on, "selection_accuracy_per_seed": sel,
                                           "selection_image_accuracy_per_seed": img}  # fmt: skip
                alone = "-" if None in img else f"{np.mean([v or 0.0 for v in img]):.1f}"
                cells += [
                    " ".join(short_weights(c.weights or {}) for c in chosen[name]),
                    f"{np.mean(sel):.1f} / {alone}",
                ]
        table.add_row(*cells)
    out.print(table)
    if label_acc:
        out.print(
            f"MLLM {mllm} label accuracy: {np.mean(label_acc):.1f} % (per seed {' '.join(f'{v:.1f}' for v in label_acc)})"
        )
    if to is not None:
        from visfeed.fileio import write_json_atomic

        payload: dict[str, Any] = {"dataset": dataset, "seeds": seed_list, "methods": summary}
        if side is not None:
            payload["image_side"] = {"side": side.model_dump(), "mllm": mllm, "label_accuracy_per_seed": label_acc}
        write_json_atomic(to, payload)


def _image_side(
    data: ScoringData,
    cfg: RunConfig,
    sets: Mapping[str, dict[str, list[str]]],
    test: EmbeddedSplit,
    side: ImageSide,
    mllm: str,
    base_url: str | None,
    max_calls: int | None,
    max_cost: float | None,
) -> ImageSideResult:
    """One seed's image-side scores (the projected cost is printed before the MLLM is asked)."""
    from visfeed.evals.image_side import image_side_grid, open_mllm, projected, selection_split
    from visfeed.tools.embedding.builtin_models import visfeed_cache_dir

    if test.paths is None:
        raise ConfigError("this dataset gives no image files, so the image side cannot ask an MLLM about them")
    handle, client = open_mllm(
        mllm, base_url=base_url, cache_path=cfg.llm.cache_file or visfeed_cache_dir(os.environ) / "mllm_cache.sqlite",
        seed=cfg.seed, max_calls=max_calls, max_cost_usd=max_cost, max_concurrency=cfg.llm.max_concurrency,
    )  # fmt: skip
    selection = selection_split(data.validation, data.feedback) if side.auto else None
    with handle:
        if side.asks_mllm:
            n = len(test.paths) + (len(selection.paths) if selection is not None else 0)
            where = f" (+ {selection.name} pictures to choose the weights on)" if selection is not None else ""
            out.print(f"[dim]MLLM {mllm}, {n} pictures{where}: {projected(handle, n, side, data.classnames)}[/dim]")
        grid = image_side_grid(
            client, data.encoder, data.classnames, sets, test.paths, test.image_emb, test.labels, [side],
            device=cfg.backbone.device, selection=selection,
        )  # fmt: skip
        totals = client.totals
        out.print(
            f"[dim]MLLM calls sent {totals.calls}, cache hits {totals.cache_hits}, cost ${totals.cost_usd:.4f}[/dim]"
        )
    return grid
