"""The "What do you see?" grid on the shipped world: image-side subsets x class-side methods, 3 seeds.

For each seed, the optimizer run that ``benchmarks/worth.py`` made (same split, same backbone) gives the
class sides: class names, the 80 templates, the run's one-shot LLM descriptions, the visual-words control
and the optimized descriptions. The MLLM (default: the embedded eyes + SmolLM2) is asked about every test
picture once (answers cached in the response cache); then every non-empty subset of {image, description,
label} is scored against every class side. Also written: the eyes' attribute accuracy on the test
pictures (their true attributes are known: the world is rendered from them), the MLLM's label accuracy,
and every cell's accuracy on the pictures whose guessed label is wrong.

    python benchmarks/image_side.py --seeds 3 --out benchmarks/results/image_side.json

Only the first --per-class test pictures of each class are asked about (default 10 of 50: the embedded
SmolLM2 answers a label question in seconds on 2 cores).

Needs the worth runs (``python benchmarks/worth.py --seeds 3``; --runs-dir to point at them).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from visfeed.agents.resources import build_scoring, visual_words_control
from visfeed.evals.image_side import all_subsets, image_side_grid, open_mllm, projected, union_side
from visfeed.evals.inspect import lineage_rows
from visfeed.evals.world.captions import image_codes
from visfeed.evals.world.eyes import attribute_accuracy
from visfeed.fileio import sha256_file, write_json_atomic
from visfeed.state.config import RunConfig
from visfeed.state.rundir import CONFIG_FILE
from visfeed.tools.baselines import description_prompts, names_prompts, template_prompts
from visfeed.tools.builtin_models import shipped_tower_id, visfeed_cache_dir
from visfeed.tools.datasets.world.spec import load_spec
from visfeed.tools.datasets.world.splits import render_class_images
from visfeed.tools.eyes.network import Eyes, load_image_bytes, shipped_eyes
from visfeed.tools.llm import LLMClient

METHODS = ("names", "templates", "llm_oneshot", "visual_words", "optimized")


def class_sides(run_dir: Path, data: Any, cfg: RunConfig) -> dict[str, dict[str, list[str]]]:
    """The class-side prompt sets of one worth run (same template and split as the run)."""
    initial: dict[str, list[str]] = {}
    for row in lineage_rows(run_dir):
        if row.origin == "init":
            initial.setdefault(row.classname, []).append(row.text)
    optimized = json.loads((run_dir / "descriptions.json").read_text(encoding="utf-8"))  # CuPL: full prompts
    sides = {
        "names": names_prompts(data.classnames),
        "templates": template_prompts(data.classnames),
        "llm_oneshot": description_prompts(initial, cfg.resolved_template),
    }
    control = visual_words_control(data, cfg)
    if control is not None:
        sides["visual_words"] = description_prompts(control, cfg.resolved_template)
    sides["optimized"] = optimized
    return sides


def eyes_attributes(paths: list[str], labels: np.ndarray, cfg: RunConfig) -> dict[str, float]:
    """The eyes' attribute accuracy on the test pictures, against the attributes they were rendered from."""
    spec = load_spec(cfg.world_spec)
    truth = {ci: render_class_images(spec, ci, cfg.n_test, seed=cfg.seed, split="test") for ci in set(labels.tolist())}
    codes = np.stack([image_codes(truth[int(lab)][int(Path(p).stem)][0]) for p, lab in zip(paths, labels, strict=True)])
    images = np.stack([load_image_bytes(Path(p).read_bytes(), p) for p in paths])
    return attribute_accuracy(Eyes.load(), images, codes)


def run_seed(seed: int, runs_dir: Path, args: argparse.Namespace, client: LLMClient) -> dict[str, Any]:
    run_dir = runs_dir / f"seed{seed}"
    cfg = RunConfig.load(run_dir / CONFIG_FILE)
    if cfg.seed != seed:
        raise SystemExit(f"{run_dir} is a run of seed {cfg.seed}, not {seed}")
    data = build_scoring(cfg)
    test = data.test_loader()
    assert test.paths is not None
    keep = [i for i, p in enumerate(test.paths) if int(Path(p).stem) < args.per_class]
    paths, labels, image_emb = [test.paths[i] for i in keep], test.labels[keep], test.image_emb[keep]
    sides = all_subsets()
    t0, before = time.perf_counter(), client.totals
    logging.info("seed %d: %s", seed, projected(client.handle, len(paths), union_side(sides), data.classnames))
    grid = image_side_grid(
        client, data.encoder, data.classnames, class_sides(run_dir, data, cfg), paths, image_emb, labels, sides
    )
    totals = client.totals
    return {
        "seed": seed,
        "grid": grid.model_dump(mode="json"),
        "attribute_accuracy": eyes_attributes(paths, labels, cfg) if args.mllm.startswith("eyes") else None,
        "mllm_calls": totals.calls - before.calls,
        "mllm_cache_hits": totals.cache_hits - before.cache_hits,
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def _spread(vals: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0}


def summarize(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over seeds of every cell, of its label-wrong accuracy and of the MLLM's own figures."""
    grids = [s["grid"] for s in per_seed]
    table: dict[str, dict[str, Any]] = {}
    for method, row in grids[0]["scores"].items():
        for side in row:
            cells = [g["scores"][method][side] for g in grids]
            entry = _spread([c["accuracy"] for c in cells])
            wrong = [c["accuracy_label_wrong"] for c in cells if c["accuracy_label_wrong"] is not None]
            if wrong:
                entry["label_wrong"] = _spread(wrong)
            table.setdefault(method, {})[side] = entry
    gains = {
        m: table[m]["image+description+label"]["mean"] - table[m]["image"]["mean"]
        for m in table
        if "image+description+label" in table[m]
    }
    attrs = [s["attribute_accuracy"] for s in per_seed if s["attribute_accuracy"]]
    return {
        "table": table,
        "gain_all_parts_over_image": gains,
        "label_accuracy": _spread([g["label_accuracy"] for g in grids if g["label_accuracy"] is not None]),
        "attribute_accuracy": {a: _spread([x[a] for x in attrs]) for a in (attrs[0] if attrs else {})},
        "goal_optimized_gain_at_least_5": gains.get("optimized", float("-inf")) >= 5.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/image_side.json"))
    ap.add_argument("--runs-dir", type=Path, default=None, help="worth runs; default runs/worth/<shipped tower hash>")
    ap.add_argument("--mllm", default="eyes", help="multimodal provider (default: the embedded eyes + SmolLM2)")
    ap.add_argument("--base-url", default=None, help="for --mllm openai-compatible:MODEL")
    ap.add_argument("--cache", type=Path, default=visfeed_cache_dir() / "mllm_cache.sqlite", help="response cache")
    ap.add_argument("--per-class", type=int, default=10, help="test pictures per class (the first N of the split)")
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
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v),
        "tower_sha256_12": tower,
        "eyes_sha256_12": sha256_file(shipped_eyes())[:12],
        "mllm": args.mllm,
        "runs_dir": str(runs_dir),
        "summary": summarize(per_seed),
        "per_seed": per_seed,
    }
    write_json_atomic(args.out, record)
    s = record["summary"]
    print(f"MLLM label accuracy {s['label_accuracy']['mean']:.1f} ± {s['label_accuracy']['std']:.1f} %")
    if s["attribute_accuracy"]:
        print(f"eyes attribute accuracy {s['attribute_accuracy']['mean']['mean']:.1f} %")
    sides = list(next(iter(s["table"].values())))
    print(f"{'method':<14}" + "".join(f"{x:>26}" for x in sides))
    for method, row in s["table"].items():
        print(f"{method:<14}" + "".join(f"{row[x]['mean']:>19.1f} ± {row[x]['std']:<4.1f}" for x in sides))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
