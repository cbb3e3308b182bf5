"""Worth of the optimizer on the shipped synthetic world with the embedded local model.

Runs the default optimization for N seeds (each seed: its own world split and LLM sampling seed) and
writes, on the test split, mean and std of test accuracy (percent) for class names, the 80-template
ensemble, one-shot LLM descriptions, the WaffleCLIP control, the visual-words control (no LLM) and the
optimized descriptions, ProAPO and ProAPO+words (its search over templates, the name, the one-shot
descriptions and visual-word sentences), the searched words and the image line; then the same runs with
the LLM's items withheld (``library_llm_items: false``, the LLM's share: ``optimized_no_llm_items``; skip it
with --no-ablation); LLM calls and seconds per method; plus wall time, the non-LLM fraction of wall time,
and accuracy per iteration and per LLM call.

    python benchmarks/worth.py --seeds 3 --out benchmarks/results/worth.json

Each seed takes minutes on 2 CPU cores (the LLM dominates). Runs go to --runs-dir (default
runs/worth/<first 12 hex digits of the shipped tower's hash>, kept for inspection). Rerunning resumes
or reuses a run there only when its config is the one asked for; runs of another tower land elsewhere.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path
from typing import Any

from visfeed.agents.run import optimize, resume
from visfeed.fileio import write_json_atomic
from visfeed.state.config import RunConfig
from visfeed.state.rundir import CONFIG_FILE, load_result
from visfeed.tools.embedding.builtin_models import shipped_tower_id
from visfeed.tools.scoring.image_line import IMAGE_METHODS

BASELINES = ("names", "templates", "llm_oneshot", "waffle", "visual_words", "searched_words", "proapo", "proapo_words")
"""The rows that use no labelled image: what the optimized descriptions must beat."""
METHODS = (*BASELINES, "optimized", *IMAGE_METHODS)


def run_seed(seed: int, runs_dir: Path, overrides: dict[str, Any], cache_dir: Path) -> dict[str, Any]:
    """One seed's run; runs of one seed share an LLM response cache, so the ablation's one-shot descriptions
    are the full run's (the same prompts, the same per-call seeds) and cost no LLM time."""
    run_dir = runs_dir / f"seed{seed}"
    cache = cache_dir / f"llm_cache_seed{seed}.sqlite"
    cfg = RunConfig.load(None, {"seed": seed, "run_dir": run_dir, "llm.cache_file": cache, **overrides})
    t0 = time.perf_counter()
    if load_result(run_dir) is not None:
        stored = RunConfig.load(run_dir / CONFIG_FILE)
        if stored.to_file_dict() != cfg.to_file_dict():
            raise SystemExit(f"{run_dir} holds a run of another config; pass another --runs-dir or remove it")
        result = resume(run_dir)
    else:
        result = optimize(cfg)
    wall = time.perf_counter() - t0
    if result.optimized is None:
        raise SystemExit(f"seed {seed}: run ended with status {result.status!r}: {result.error}")
    scores = {**result.baselines, "optimized": result.optimized}
    acc = {m: scores[m].test_accuracy for m in METHODS if m in scores}
    oneshot_calls = result.history[0].llm_calls if result.history else 0
    uses_oneshot = ("llm_oneshot", "proapo", "proapo_words")
    return {
        "llm_calls": {m: (oneshot_calls if m in uses_oneshot else 0) for m in acc}
        | {"optimized": result.history[-1].llm_calls if result.history else 0},
        "search_s": dict(result.timings.get("search_s", {})) | {"optimized": result.timings.get("wall_s", 0.0)},
        "seed": seed,
        "status": result.status,
        "test_accuracy": {m: 100.0 * float(a) for m, a in acc.items() if a is not None},
        "feedback_accuracy_per_iteration": [100.0 * h.feedback.accuracy for h in result.history],
        "llm_calls_per_iteration": [h.llm_calls for h in result.history],
        "iterations": result.iterations,
        "stop_reason": result.stop_reason,
        "llm": result.llm,
        "timings": result.timings,
        "wall_s_this_call": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/worth.json"))
    ap.add_argument("--runs-dir", type=Path, default=None, help="default: runs/worth/<shipped tower hash>")
    ap.add_argument("--config", type=Path, default=None, help="optional YAML/TOML config for every seed")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="config override (YAML value)")
    ap.add_argument("--no-ablation", action="store_true", help="skip the runs with the LLM's items withheld")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import yaml

    overrides: dict[str, Any] = {}
    if args.config is not None:
        overrides.update(RunConfig.load(args.config).model_dump(exclude={"seed", "run_dir"}))
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    tower = shipped_tower_id()
    runs_dir = args.runs_dir or Path("runs/worth") / tower
    per_seed = [run_seed(s, runs_dir, overrides, runs_dir) for s in range(args.seeds)]
    ablation = (
        []
        if args.no_ablation
        else [
            run_seed(s, runs_dir / "no_llm_items", {**overrides, "search.library_llm_items": False}, runs_dir)
            for s in range(args.seeds)
        ]
    )
    methods = {m: _spread([r["test_accuracy"][m] for r in per_seed if m in r["test_accuracy"]]) for m in METHODS}
    methods["optimized_no_llm_items"] = _spread([r["test_accuracy"]["optimized"] for r in ablation])
    ceiling = [text_span_ceiling(runs_dir / f"seed{s}") for s in range(args.seeds)]
    ceiling_spread = _spread([c for c in ceiling if c is not None])
    methods = {m: v for m, v in methods.items() if v is not None}
    baselines = [methods[m]["mean"] for m in BASELINES if m in methods]
    wall = sum(r["timings"].get("wall_s", 0.0) for r in per_seed)
    llm_wall = sum(r["timings"].get("llm_wall_s", 0.0) for r in per_seed)
    out = {
        "seeds": args.seeds,
        "tower_sha256_12": tower,
        "runs_dir": str(runs_dir),
        "config_overrides": {k: str(v) for k, v in overrides.items()},
        "methods": methods,
        "gain_over_best_baseline_points": methods["optimized"]["mean"] - max(baselines) if baselines else None,
        "text_span_ceiling": ceiling_spread,
        "gain_over_visual_words_control_points": (
            methods["optimized"]["mean"] - methods["visual_words"]["mean"] if "visual_words" in methods else None
        ),
        "wall_s": wall,
        "wall_s_per_seed": [r["timings"].get("wall_s", 0.0) for r in per_seed],
        "non_llm_fraction": (wall - llm_wall) / wall if wall > 0 else None,
        "per_iteration_feedback_accuracy": [r["feedback_accuracy_per_iteration"] for r in per_seed],
        "per_iteration_llm_calls": [r["llm_calls_per_iteration"] for r in per_seed],
        "runs": per_seed,
        "ablation_runs": ablation,
    }
    for m, v in methods.items():
        mark = "  (image line: fitted on the labelled feedback images)" if m in IMAGE_METHODS else ""
        runs = ablation if m == "optimized_no_llm_items" else per_seed
        key = "optimized" if m == "optimized_no_llm_items" else m
        calls = statistics.fmean(r["llm_calls"].get(key, 0) for r in runs)
        secs = [r["search_s"][key] for r in runs if key in r["search_s"]]
        took = f"{statistics.fmean(secs):7.1f} s" if secs else "      -  "
        v |= {"llm_calls_mean": calls, "seconds_mean": statistics.fmean(secs) if secs else None}
        print(f"{m:24s} {v['mean']:6.2f} ± {v['std']:5.2f}  {calls:6.1f} LLM calls  {took}{mark}")
    write_json_atomic(args.out, out)
    if ceiling_spread is not None:
        print(f"{'text-span ceiling':24s} {ceiling_spread['mean']:6.2f} ± {ceiling_spread['std']:5.2f}  (diagnostic: "
              "the run's library mixed to fit each class's image prototype)")  # fmt: skip
    print(f"gain over best baseline: {out['gain_over_best_baseline_points']:+.2f} points")
    print(f"wall {wall:.1f}s, non-LLM fraction {out['non_llm_fraction']:.3f} -> {args.out}")


def text_span_ceiling(run_dir: Path) -> float | None:
    """Test accuracy (%) of the best non-negative mix of each class's library items fitted to its image
    prototype (the normalised mean of its feedback images): how far the library's sentences can reach at all.

    A diagnostic, not a method (it is fitted on the labelled images); None without a library.
    """
    import json

    import numpy as np
    from scipy.optimize import nnls

    from visfeed.agents.resources import build_scoring
    from visfeed.state.models import LibraryItem
    from visfeed.state.rundir import LIBRARY_FILE
    from visfeed.tools.scoring.image_line import normalise_rows, prototypes
    from visfeed.tools.search.items import accuracy_of, build_library

    path = run_dir / LIBRARY_FILE
    if not path.is_file():
        return None
    data = build_scoring(RunConfig.load(run_dir / CONFIG_FILE))
    raw = json.loads(path.read_text())
    items = [[LibraryItem(**{k: v for k, v in x.items() if k != "chosen"}) for x in raw[n]] for n in data.classnames]
    lib = build_library(data.classnames, items, data.encoder.embed_texts)
    protos = prototypes(data.feedback.image_emb, data.feedback.labels, len(data.classnames))
    rows = []
    for c, emb in enumerate(lib.emb):
        basis = normalise_rows(emb)  # (k, d): one unit vector per item
        w, _ = nnls(basis.T, protos[c])
        rows.append(basis.T @ w if w.any() else basis.mean(axis=0))
    test = data.test_loader()
    return 100.0 * accuracy_of(normalise_rows(np.stack(rows)), test.image_emb, test.labels)


def _spread(vals: list[float]) -> dict[str, Any] | None:
    if not vals:
        return None
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "per_seed": vals}


if __name__ == "__main__":
    main()
