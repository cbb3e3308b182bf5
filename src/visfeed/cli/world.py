"""``visfeed world``: render a procedural world to an ImageFolder, or train the market image tower."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shlex
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from visfeed.errors import VisfeedError
from visfeed.tools.world.settings import EyesConfig, TrainConfig

_T, _E = TrainConfig, EyesConfig  # the options' defaults are the configs' own (torch-free to import)


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Write a training run record as indented JSON, atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", suffix=".json.tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


app = typer.Typer(help="The synthetic market world: render images, train the default VLM.", no_args_is_help=True)
console = Console(stderr=True)


@app.command()
def render(
    out: Annotated[Path, typer.Option("--out", help="Output folder (one subfolder of PNGs per class).")],
    spec: Annotated[Path | None, typer.Option("--spec", help="Class spec YAML/JSON (default: shipped market).")] = None,
    per_class: Annotated[int, typer.Option("--per-class", min=1, help="Images per class.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Rendering seed (same seed, same pictures).")] = 0,
) -> None:
    """Render an ImageFolder from a class spec, deterministically for a seed."""
    from visfeed.tools.datasets.world import write_split
    from visfeed.tools.world.spec import load_spec

    try:
        world = load_spec(spec)
        t0 = time.time()
        paths, _ = write_split(world, out, "test", per_class, seed)
    except VisfeedError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"wrote {len(paths)} images of {len(world.classes)} classes to {out} in {time.time() - t0:.1f} s")


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Image-tower checkpoint to write (+ a .json run record).")] = Path(
        "market_vlm.pt"
    ),
    seed: Annotated[int, typer.Option("--seed", help="Seed of captions, images and initialisation.")] = _T.seed,
    images: Annotated[int, typer.Option("--images", min=256, help="Training images to render and see.")] = _T.images,
    batch_size: Annotated[int, typer.Option("--batch-size", min=8)] = _T.batch_size,
    lr: Annotated[float, typer.Option("--lr")] = _T.lr,
    pool_size: Annotated[int, typer.Option("--pool-size", min=100, help="Distinct generated captions.")] = _T.pool_size,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Rendering worker processes.")] = _T.workers,
    threads: Annotated[
        int,
        typer.Option("--threads", min=1, help="torch threads (1 is fastest on 2 cores: the renderer uses the other)."),
    ] = _T.threads,
    twins: Annotated[int, typer.Option("--twins", min=0, help="Hard-negative twin images per batch.")] = _T.twins,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", min=0, help="Steps between partial checkpoints (0: none).")
    ] = _T.checkpoint_every,
    evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="Measure the gates at the end.")] = True,
) -> None:
    """Train the visfeed-market image tower (uses CUDA when present) and write its run record."""
    from visfeed.tools.world.train import train as run_train

    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    cfg = TrainConfig(
        seed=seed,
        images=images,
        batch_size=batch_size,
        lr=lr,
        pool_size=pool_size,
        workers=workers,
        threads=threads,
        checkpoint_every=checkpoint_every,
        twins=twins,
    )

    def progress(d: dict[str, float]) -> None:
        console.print(
            f"step {int(d['step']):>5}  images {int(d['images']):>8}  loss {d['loss']:.3f}  "
            f"scale {d['logit_scale']:.1f}  {d['images_per_s']:.0f} img/s  {d['elapsed_s']:.0f} s"
        )

    t0 = time.time()
    try:
        result = run_train(cfg, out, progress=progress)
        record: dict[str, Any] = {
            "command": (
                f"visfeed world train --out {shlex.quote(str(out))} --seed {seed} --images {images} "
                f"--batch-size {batch_size} --lr {lr} --pool-size {pool_size} --workers {workers} --threads {threads} "
                f"--twins {twins}"
            ),
            "seed": seed,
            "config": {k: v for k, v in cfg.__dict__.items() if not (isinstance(v, float) and math.isnan(v))},
            **{k: v for k, v in result.items() if k not in ("model", "tokenizer")},
            "python": platform.python_version(),
            "torch": __import__("torch").__version__,
        }
        if evaluate:
            import open_clip

            from visfeed.tools.world.measure import measure
            from visfeed.tools.world.train import model_image_size

            model = result["model"].cpu()
            preprocess = open_clip.image_transform(model_image_size(model), is_train=False)
            record["final_metrics"] = measure(model, preprocess, result["tokenizer"], threads=2)
        record["total_wall_s"] = round(time.time() - t0, 1)
    except VisfeedError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    rec_path = out.with_suffix(".json")
    write_record(rec_path, record)
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {rec_path}")
    if "final_metrics" in record:
        console.print_json(json.dumps(record["final_metrics"]))


@app.command("train-eyes")
def train_eyes_command(
    out: Annotated[Path, typer.Option("--out", help="Eyes checkpoint to write (+ a .json run record).")] = Path(
        "market_eyes.pt"
    ),
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the rendered pictures and the initialisation.")
    ] = _E.seed,
    images: Annotated[int, typer.Option("--images", min=64, help="Training pictures to render and see.")] = _E.images,
    batch_size: Annotated[int, typer.Option("--batch-size", min=8)] = _E.batch_size,
    lr: Annotated[float, typer.Option("--lr")] = _E.lr,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Rendering worker processes.")] = _E.workers,
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch threads.")] = _E.threads,
    minutes: Annotated[
        float | None,
        typer.Option(
            "--minutes", min=0, help="Time budget: the schedule ends when it or --images runs out (0: no budget)."
        ),
    ] = _E.minutes,
    bf16: Annotated[
        bool, typer.Option("--bf16", help="bfloat16 autocast: about 2x faster on CPUs with AMX/AVX-512 BF16.")
    ] = _E.bf16,
    skin_weight: Annotated[
        float, typer.Option("--skin-weight", min=0.0, help="Weight of the skin texture's loss (1 for the others).")
    ] = _E.skin_weight,
) -> None:
    """Train the "eyes" (the offline stand-in for a multimodal LLM's vision) on random world pictures."""
    from visfeed.tools.world.eyes.train import train_eyes

    minutes = minutes or None  # 0: no time budget
    cfg = EyesConfig(
        seed=seed,
        images=images,
        batch_size=batch_size,
        lr=lr,
        workers=workers,
        threads=threads,
        minutes=minutes,
        bf16=bf16,
        skin_weight=skin_weight,
    )

    def progress(d: dict[str, float]) -> None:
        console.print(
            f"step {int(d['step']):>5}  images {int(d['images']):>7}  loss {d['loss']:.3f}  {d['elapsed_s']:.0f} s"
        )

    try:
        record: dict[str, Any] = {
            "command": (
                f"visfeed world train-eyes --out {shlex.quote(str(out))} --seed {seed} --images {images} "
                f"--batch-size {batch_size} --lr {lr} --workers {workers} --threads {threads}"
                + (f" --minutes {minutes:g}" if minutes is not None else "")
                + (" --bf16" if bf16 else "")
                + (f" --skin-weight {skin_weight:g}" if skin_weight != 1.0 else "")
            ),
            **train_eyes(cfg, out, progress=progress),
            "python": platform.python_version(),
        }
    except VisfeedError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    write_record(out.with_suffix(".json"), record)
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {out.with_suffix('.json')}")
    console.print_json(json.dumps(record["heldout_attribute_accuracy"]))
