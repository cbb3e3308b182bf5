"""The "What do you see?" grid on the shipped world: image-side subsets x class-side methods, 3 seeds.

For each seed, the class sides are class names, the 80 templates, the visual-words control (no LLM) and,
where ``benchmarks/worth.py`` left its optimizer run of that seed (same split, same backbone), the run's
one-shot LLM descriptions and its optimized descriptions. The MLLM (default: the embedded eyes + SmolLM2,
label guesses constrained to the class names) is asked about the test pictures and, for auto weights,
about validation pictures (answers cached in the response cache). Every non-empty subset of {image,
description, label} is scored against every class side with equal weights (the paper) and, for the
subsets of two or three parts, with weights chosen per class side on the validation pictures only.

Also written: the eyes' attribute accuracy on the test pictures (their true attributes are known: the
world is rendered from them), the MLLM's label accuracy, every cell's accuracy on the pictures whose
guessed label is wrong, and an *oracle* row: the true attributes written as the eyes would write them,
fused with auto weights (what a perfect describer could add).

    python benchmarks/image_side.py --seeds 3 --out benchmarks/results/image_side.json

Only the first --per-class test and --val-per-class validation pictures of each class are asked about
(the embedded SmolLM2 answers a label question in about a second on 2 busy cores).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from visfeed.agents.resources import build_scoring
from visfeed.evals.image_side import (
    SelectionSplit,
    all_subsets,
    image_side_grid,
    open_mllm,
    projected,
    score_grid,
    union_side,
)
from visfeed.evals.inspect import lineage_rows
from visfeed.fileio import sha256_file, write_json_atomic
from visfeed.state.config import RunConfig
from visfeed.state.image_side import ImageSide
from visfeed.state.rundir import CONFIG_FILE, LIBRARY_FILE
from visfeed.tools.datasets.world import render_class_images
from visfeed.tools.embedding.builtin_models import shipped_tower_id, visfeed_cache_dir
from visfeed.tools.feedback.baselines import description_prompts, names_prompts, template_prompts
from visfeed.tools.feedback.registry import signal_controls
from visfeed.tools.image_side.answers import ImageViews
from visfeed.tools.image_side.fusion import NOISE_SE
from visfeed.tools.llm import LLMClient
from visfeed.tools.world.captions import image_codes
from visfeed.tools.world.eyes.network import Eyes, Seen, describe, load_image_bytes, shipped_eyes
from visfeed.tools.world.eyes.train import attribute_accuracy
from visfeed.tools.world.spec import load_spec

METHODS = ("names", "templates", "llm_oneshot", "visual_words", "optimized")
ALL_PARTS = "image+description+label"


def oneshot_descriptions(run_dir: Path) -> dict[str, list[str]]:
    """The run's one-shot LLM descriptions per class: its library's ``oneshot`` items (the library crossover,
    the default), else the lineage's ``init`` rows (the paper's crossover, whose lineage starts from them)."""
    initial: dict[str, list[str]] = {}
    if (run_dir / LIBRARY_FILE).is_file():
        library = json.loads((run_dir / LIBRARY_FILE).read_text(encoding="utf-8"))
        for name, items in library.items():
            initial[name] = [item["text"] for item in items if item["source"] == "oneshot"]
        return initial
    for row in lineage_rows(run_dir):
        if row.origin == "init":
            initial.setdefault(row.classname, []).append(row.text)
    return initial


def class_sides(run_dir: Path | None, data: Any, cfg: RunConfig) -> dict[str, dict[str, list[str]]]:
    """The class-side prompt sets: baselines, and the worth run's descriptions when there is a run."""
    sides = {"names": names_prompts(data.classnames), "templates": template_prompts(data.classnames)}
    if run_dir is not None:
        sides["llm_oneshot"] = description_prompts(oneshot_descriptions(run_dir), cfg.resolved_template)
    control = signal_controls(cfg, data).get("visual_words")
    if control is not None:
        sides["visual_words"] = description_prompts(control, cfg.resolved_template)
    if run_dir is not None:  # CuPL: full prompts
        sides["optimized"] = json.loads((run_dir / "descriptions.json").read_text(encoding="utf-8"))
    return sides


def true_attributes(paths: list[str], labels: np.ndarray, cfg: RunConfig, split: str) -> list[dict[str, str]]:
    """The attributes each world picture was rendered from (file ``NNNN.png`` is draw NNNN of its class)."""
    spec = load_spec(cfg.data.world_spec)
    n = cfg.data.n_test if split == "test" else cfg.data.n_val
    draws = {ci: render_class_images(spec, ci, n, seed=cfg.seed, split=split) for ci in set(labels.tolist())}
    return [draws[int(lab)][int(Path(p).stem)][0] for p, lab in zip(paths, labels, strict=True)]


def eyes_checkpoint(mllm: str) -> Path:
    """The checkpoint an ``eyes`` or ``eyes:PATH`` provider looks with."""
    return Path(mllm.partition(":")[2]) if ":" in mllm else shipped_eyes()


def eyes_attributes(paths: list[str], truth: list[dict[str, str]], checkpoint: Path) -> dict[str, float]:
    """The eyes' attribute accuracy on these pictures, against the attributes they were rendered from."""
    codes = np.stack([image_codes(a) for a in truth])
    images = np.stack([load_image_bytes(Path(p).read_bytes(), p) for p in paths])
    return attribute_accuracy(Eyes.load(checkpoint), images, codes)


def oracle_views(data: Any, image_emb: np.ndarray, truth: list[dict[str, str]]) -> ImageViews:
    """What a perfect describer would say: the true attributes in the eyes' own wording."""
    texts = [describe(Seen(a, dict.fromkeys(a, 1.0))) for a in truth]
    parts = {"image": np.asarray(image_emb, dtype=np.float32), "description": data.encoder.embed_texts(texts)}
    return ImageViews(texts, [""] * len(texts), np.full(len(texts), -1), parts)


def first_of_each_class(split: Any, per_class: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    keep = [i for i, p in enumerate(split.paths) if int(Path(p).stem) < per_class]
    return [split.paths[i] for i in keep], split.labels[keep], split.image_emb[keep]


def run_seed(seed: int, runs_dir: Path, args: argparse.Namespace, client: LLMClient) -> dict[str, Any]:
    worth_run = runs_dir / f"seed{seed}"
    run_dir: Path | None = worth_run
    if (worth_run / CONFIG_FILE).is_file():
        cfg = RunConfig.load(worth_run / CONFIG_FILE)
        if cfg.seed != seed:
            raise SystemExit(f"{worth_run} is a run of seed {cfg.seed}, not {seed}")
    else:
        logging.warning("no worth run in %s: class sides are the baselines and the visual-words control", run_dir)
        overrides = {"seed": seed} | ({"data.world_spec": args.world_spec} if args.world_spec else {})
        run_dir, cfg = None, RunConfig.load(None, overrides)
    data = build_scoring(cfg)
    paths, labels, image_emb = first_of_each_class(data.test_loader(), args.per_class)
    val_paths, val_labels, val_emb = first_of_each_class(data.validation, args.val_per_class)
    selection = SelectionSplit("validation", val_paths, val_emb, val_labels)
    sides = all_subsets() + [s for s in all_subsets(auto=True) if s.auto]
    t0, before = time.perf_counter(), client.totals
    n_asked = len(paths) + len(val_paths)
    logging.info("seed %d: %s", seed, projected(client.handle, n_asked, union_side(sides), data.classnames))
    methods = class_sides(run_dir, data, cfg)
    grid = image_side_grid(
        client, data.encoder, data.classnames, methods, paths, image_emb, labels, sides, selection=selection,
        noise_se=args.noise_se,
    )  # fmt: skip
    totals = client.totals
    truth, val_truth = (
        true_attributes(paths, labels, cfg, "test"),
        true_attributes(val_paths, val_labels, cfg, "validation"),
    )
    oracle_sides = [ImageSide(parts=("image",)), ImageSide(parts=("image", "description"), weights="auto")]
    oracle = score_grid(
        data.encoder, data.classnames, methods, oracle_views(data, image_emb, truth), labels, oracle_sides,
        selection=("validation", oracle_views(data, val_emb, val_truth), val_labels), mllm="oracle",
        noise_se=args.noise_se,
    )  # fmt: skip
    return {
        "seed": seed,
        "class_sides_from": str(run_dir) if run_dir is not None else "baselines only (no worth run)",
        "grid": grid.model_dump(mode="json"),
        "oracle_description": oracle.model_dump(mode="json"),
        "attribute_accuracy": (
            eyes_attributes(paths, truth, eyes_checkpoint(args.mllm)) if args.mllm.startswith("eyes") else None
        ),
        "mllm_calls": totals.calls - before.calls,
        "mllm_cache_hits": totals.cache_hits - before.cache_hits,
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def _spread(vals: list[float]) -> dict[str, float] | None:
    """Mean and std over seeds; None where no seed had the figure (an attribute no picture shows is NaN)."""
    vals = [v for v in vals if v == v]
    if not vals:
        return None
    return {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0}


def _table(grids: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for method, row in grids[0]["scores"].items():
        for side in row:
            cells = [g["scores"][method][side] for g in grids]
            entry: dict[str, Any] = dict(_spread([c["accuracy"] for c in cells]) or {})
            wrong = [c["accuracy_label_wrong"] for c in cells if c["accuracy_label_wrong"] is not None]
            if wrong:
                entry["label_wrong"] = _spread(wrong)
            if cells[0].get("selection_accuracy") is not None:
                entry["weights_per_seed"] = [c["weights"] for c in cells]
                entry["validation"] = _spread([c["selection_accuracy"] for c in cells])
                if cells[0].get("selection_best_accuracy") is not None:
                    entry["validation_best"] = _spread([c["selection_best_accuracy"] for c in cells])
                if cells[0]["selection_image_accuracy"] is not None:
                    entry["validation_image"] = _spread([c["selection_image_accuracy"] for c in cells])
            table.setdefault(method, {})[side] = entry
    return table


def summarize(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over seeds of every cell, the goals of issue 26, and the MLLM's own figures."""
    grids = [s["grid"] for s in per_seed]
    table = _table(grids)
    auto = f"{ALL_PARTS} auto"

    def gain(side: str) -> dict[str, float]:
        return {m: table[m][side]["mean"] - table[m]["image"]["mean"] for m in table if side in table[m]}

    gains_auto = gain(auto)
    with_image = [s for s in table[next(iter(table))] if s.startswith("image+") and s.endswith(" auto")]
    worst_auto = {m: min(table[m][s]["mean"] - table[m]["image"]["mean"] for s in with_image) for m in table}
    strongest = "optimized" if "optimized" in table else "visual_words"
    attrs = [s["attribute_accuracy"] for s in per_seed if s["attribute_accuracy"]]
    return {
        "table": table,
        "gain_all_parts_over_image_equal": gain(ALL_PARTS),
        "gain_all_parts_over_image_auto": gains_auto,
        "worst_auto_side_minus_image": worst_auto,
        "oracle_description": _table([s["oracle_description"] for s in per_seed]),
        "label_accuracy": _spread([g["label_accuracy"] for g in grids if g["label_accuracy"] is not None]),
        "validation_label_accuracy": _spread(
            [g["selection_label_accuracy"] for g in grids if g["selection_label_accuracy"] is not None]
        ),
        "attribute_accuracy": {a: _spread([x[a] for x in attrs]) for a in (attrs[0] if attrs else {})},
        "goal_class_side": strongest,
        "goal_auto_all_parts_at_least_image_plus_2": gains_auto.get(strongest, float("-inf")) >= 2.0,
        "goal_every_auto_side_at_least_image_minus_half": all(v >= -0.5 for v in worst_auto.values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/image_side.json"))
    ap.add_argument("--runs-dir", type=Path, default=None, help="worth runs; default runs/worth/<shipped tower hash>")
    ap.add_argument("--mllm", default="eyes", help="multimodal provider (default: the embedded eyes + SmolLM2)")
    ap.add_argument("--base-url", default=None, help="for --mllm openai-compatible:MODEL")
    ap.add_argument(
        "--cache", type=Path, default=visfeed_cache_dir(os.environ) / "mllm_cache.sqlite", help="response cache"
    )
    ap.add_argument("--per-class", type=int, default=10, help="test pictures per class (the first N of the split)")
    ap.add_argument("--val-per-class", type=int, default=10, help="validation pictures per class the weights see")
    ap.add_argument(
        "--noise-se",
        type=float,
        default=NOISE_SE,
        help="auto weights: standard errors within which the simplest weighting wins (0: the best on validation)",
    )
    ap.add_argument("--world-spec", type=Path, default=None, help="another world (without worth runs), e.g. garden")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    tower = shipped_tower_id()
    runs_dir = args.runs_dir or Path("runs/worth") / tower
    # One MLLM for every seed: the eyes' text model answers an equal question once per process.
    handle, client = open_mllm(args.mllm, base_url=args.base_url, cache_path=args.cache, seed=0, max_concurrency=2)
    with handle:
        per_seed = [run_seed(s, runs_dir, args, client) for s in range(args.seeds)]
    record = {
        "command": "python benchmarks/image_side.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "tower_sha256_12": tower,
        "eyes_sha256_12": sha256_file(eyes_checkpoint(args.mllm))[:12] if args.mllm.startswith("eyes") else None,
        "mllm": args.mllm,
        "runs_dir": str(runs_dir),
        "load_average_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()],
        "summary": summarize(per_seed),
        "per_seed": per_seed,
    }
    write_json_atomic(args.out, record)
    s = record["summary"]
    print(f"MLLM label accuracy {s['label_accuracy']['mean']:.1f} ± {s['label_accuracy']['std']:.1f} %")
    if s["attribute_accuracy"]:
        print(f"eyes attribute accuracy {s['attribute_accuracy']['mean']['mean']:.1f} %")
    for method, row in s["table"].items():
        print(f"{method}: " + ", ".join(f"{x} {c['mean']:.1f} ± {c['std']:.1f}" for x, c in row.items()))
    for method, row in s["oracle_description"].items():
        print(f"oracle description, {method}: " + ", ".join(f"{x} {c['mean']:.1f}" for x, c in row.items()))
    print({k: v for k, v in s.items() if k.startswith("goal")})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
