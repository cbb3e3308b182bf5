"""Concept classifiers on the shipped market world: accuracy, faithfulness, and descriptions as features.

For each seed (its own world split) and training size (8 images per class, the few-shot regime, and 100):
the per-part vote, a flat logistic regression and a Random Forest on each feature source, beside zero-shot
(class names; the 80 templates) and a linear probe on the raw image embeddings, all on the same split.
Features are selected on the validation split (20 per class); the test split (50 per class) is scored once.

Feature sources:
- ``tree_llm``: the tree the embedded LLM built (``--tree``; ``visfeed concepts build``), if given;
- ``tree_spec``: the tree read off the world spec (every value true): the upper bound of clue quality;
- ``optimized`` / ``initial``: the optimized and the initial (one-shot LLM) descriptions of the
  optimization run of the same seed (``--worth-runs``, the runs of benchmarks/worth.py);
- ``both``: ``tree_llm`` (else ``tree_spec``) plus the optimized descriptions.

Faithfulness (tree sources): clue AUROC against the rendered images' true attribute values (test split),
precision@5 of each class's most important clues (validation split) against the spec, and the twin test.

    python benchmarks/concepts.py --tree runs/concepts/tree-llm-given/tree.json \
        --worth-runs runs/worth/<tower> --seeds 3 --out benchmarks/results/concepts.json
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from visfeed.agents.resources import build_scoring
from visfeed.evals.concepts.experiment import Experiment, explain_model, fit_models, score_on_test
from visfeed.evals.concepts.world_truth import (
    clue_auroc,
    image_attributes,
    precision_at_k,
    spec_tree,
    twin_pairs,
    twin_score,
)
from visfeed.fileio import sha256_file, write_json_atomic
from visfeed.state.concepts import ConceptTree
from visfeed.state.config import RunConfig
from visfeed.state.rundir import read_trace
from visfeed.tools.baselines import description_prompts
from visfeed.tools.builtin_models import shipped_checkpoint
from visfeed.tools.concepts.classifiers import CLASSIFIERS
from visfeed.tools.concepts.features import FeatureSpace, clue_features, combine, description_space, tree_space
from visfeed.tools.datasets.world.spec import load_spec
from visfeed.tools.description_files import read_description_file
from visfeed.tools.session import resolve_logit_scale

TREES = ("tree_llm", "tree_spec")


def run_descriptions(run_dir: Path, template: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(optimized, initial) prompt sets of an optimization run (initial: its iteration-0 lineage)."""
    optimized = read_description_file(run_dir / "descriptions.json", "cupl").prompts()
    initial: dict[str, list[str]] = {}
    for e in read_trace(run_dir, events={"lineage_add"}):
        if e.get("introduced_iteration") == 0:
            initial.setdefault(e["class_name"], []).append(e["text"])
    return optimized, description_prompts(initial, template)


def spaces_for(
    seed: int, args: argparse.Namespace, cfg: RunConfig, llm_tree: ConceptTree | None
) -> dict[str, FeatureSpace]:
    spaces: dict[str, FeatureSpace] = {}
    if llm_tree is not None:
        spaces["tree_llm"] = tree_space(llm_tree)
    spaces["tree_spec"] = tree_space(spec_tree(load_spec()))
    if args.worth_runs is not None:
        optimized, initial = run_descriptions(args.worth_runs / f"seed{seed}", cfg.resolved_template)
        spaces["optimized"] = description_space(optimized)
        spaces["initial"] = description_space(initial)
        spaces["both"] = combine(spaces.get("tree_llm", spaces["tree_spec"]), spaces["optimized"])
    return spaces


def one(seed: int, size: int, args: argparse.Namespace, llm_tree: ConceptTree | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    cfg = RunConfig(seed=seed, k_shot=size, n_val=20, n_test=50, device="cpu")
    data = build_scoring(cfg)
    assert data.validation is not None
    scale, _ = resolve_logit_scale(None, data.logit_scale)
    exp = Experiment(data.encoder, data.classnames, data.feedback, data.validation, data.test_loader, scale, "cpu")
    spaces = spaces_for(seed, args, cfg, llm_tree)
    fitted = fit_models(exp, spaces, list(CLASSIFIERS), seed=seed)
    base, test = score_on_test(exp, fitted)
    spec = load_spec()
    out: dict[str, Any] = {
        "seed": seed, "train_per_class": size, "baselines": base,
        "models": [f.score.model_dump() for f in fitted], "faithfulness": {},
    }  # fmt: skip
    attrs = image_attributes(spec, "test", seed, test.labels)
    for name in TREES:
        if name not in spaces:
            continue
        space = spaces[name]
        auroc = clue_auroc(space, clue_features(exp.encoder, space, test.image_emb, scale=scale, device="cpu"), attrs)
        p5 = {}
        for f in fitted:
            if f.score.source == name:
                ex = explain_model(f, exp, test, seed=seed)
                p5[f.score.classifier] = float(np.mean(list(precision_at_k(ex.per_class, f.space, spec).values())))
        out["faithfulness"][name] = {
            "clues": len(space), "matched_clues": len(auroc),
            "mean_auroc": float(np.mean(list(auroc.values()))) if auroc else None,
            "auroc": auroc, "precision_at_5": p5,
        }  # fmt: skip
    if size == args.sizes[0]:  # the twins do not depend on the training size
        with tempfile.TemporaryDirectory() as tmp:
            pairs = twin_pairs(spec, test.labels, seed, Path(tmp))
            before = data.encoder.embed_images([p[0] for p in pairs])  # type: ignore[attr-defined]
            after = data.encoder.embed_images([p[1] for p in pairs])  # type: ignore[attr-defined]
        for name in TREES:
            if name in spaces:
                s = spaces[name]
                fb = clue_features(exp.encoder, s, before, scale=scale, device="cpu")
                fa = clue_features(exp.encoder, s, after, scale=scale, device="cpu")
                out["faithfulness"][name]["twins"] = {"pairs": len(pairs), **twin_score(s, fb, fa, pairs)}
    out["wall_s"] = time.perf_counter() - t0
    logging.info("seed %d, %d per class: %.0f s", seed, size, out["wall_s"])
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    acc: dict[str, list[float]] = {}
    for r in rows:
        n = r["train_per_class"]
        for m in r["models"]:
            acc.setdefault(f"{n}/{m['source']}/{m['classifier']}", []).append(m["test_accuracy"])
        for b, v in r["baselines"].items():
            acc.setdefault(f"{n}/baseline/{b}", []).append(v)
    faith: dict[str, list[float]] = {}
    for r in rows:
        for tree, f in r["faithfulness"].items():
            if f.get("mean_auroc") is not None:
                faith.setdefault(f"{tree}/mean_auroc", []).append(f["mean_auroc"])
            for k, v in f["precision_at_5"].items():
                faith.setdefault(f"{tree}/{r['train_per_class']}/precision_at_5/{k}", []).append(v)
            if "twins" in f and f["twins"]["checks"]:
                faith.setdefault(f"{tree}/twins_right", []).append(f["twins"]["right"])
    spread = lambda v: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v), "per_seed": v}  # noqa: E731
    return {
        "test_accuracy": {k: spread(v) for k, v in acc.items()},
        "faithfulness": {k: spread(v) for k, v in faith.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[8, 100])
    ap.add_argument("--tree", type=Path, default=None, help="tree.json of an LLM build (tree_llm)")
    ap.add_argument("--worth-runs", type=Path, default=None, help="folder of seed<N> optimization runs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    llm_tree = ConceptTree.load(args.tree) if args.tree is not None else None
    rows = [one(seed, size, args, llm_tree) for seed in range(args.seeds) for size in args.sizes]
    build = args.tree.parent / "build.json" if args.tree is not None else None
    result = {
        "tower_sha256": sha256_file(shipped_checkpoint())[:12],
        "seeds": args.seeds, "sizes": args.sizes, "tree": str(args.tree), "worth_runs": str(args.worth_runs),
        "llm_tree_build": json.loads(build.read_text()) if build is not None and build.is_file() else None,
        "summary": summarize(rows), "rows": rows,
    }  # fmt: skip
    write_json_atomic(args.out, result)
    for k, v in result["summary"]["test_accuracy"].items():
        print(f"{k:50s} {v['mean']:6.1f} ± {v['std']:4.1f}")
    for k, v in result["summary"]["faithfulness"].items():
        print(f"{k:50s} {v['mean']:6.3f} ± {v['std']:.3f}")


if __name__ == "__main__":
    main()
