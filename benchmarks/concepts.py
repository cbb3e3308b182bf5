"""Concept classifiers on a world (the shipped market, or --spec): accuracy, faithfulness, descriptions.

For each seed (its own world split) and training size (8 images per class, the few-shot regime, and 100):
the per-part vote, a flat logistic regression and a Random Forest on each feature source, beside zero-shot
(class names; the 80 templates) and a linear probe on the raw image embeddings, all on the same split.
Features are selected on the validation split (20 per class); the test split (50 per class) is scored once.

Feature sources:
- ``tree_llm``: the tree the embedded LLM built (``--tree``; ``visfeed concepts build``), if given;
- ``tree_grounded`` / ``tree_llm_only`` (``--build DIR``): the default build (``visfeed concepts build``
  with the embedded LLM and default settings), per seed on that seed's feedback images, and the same LLM
  answers left unchecked (``--llm-only``); both share one response cache, so only the first build asks;
- ``tree_spec``: the tree read off the world spec (every value true): the upper bound of clue quality;
- ``optimized`` / ``initial``: the optimized and the initial (one-shot LLM) descriptions of the
  optimization run of the same seed (``--worth-runs``, the runs of benchmarks/worth.py);
- ``both``: ``tree_llm`` (else ``tree_spec``) plus the optimized descriptions.

Faithfulness (tree sources): clue AUROC against the rendered images' true attribute values (test split),
precision@5 of each class's most important clues (validation split) against the spec, the same over each
class's positive evidence only (also at 1 and 3, its ceiling and its importance-weighted form), the share
of true (class, value) assignments per attribute, and the twin test. World truth is used here only, never
in a build.

    python benchmarks/concepts.py --tree runs/concepts/tree-llm-given/tree.json \
        --worth-runs runs/worth/<tower> --seeds 3 --out benchmarks/results/concepts.json
    python benchmarks/concepts.py --build runs/concepts/bench-market --seeds 3 --sizes 8,100 \
        --classifiers part_vote,logistic --out benchmarks/results/concepts_grounded_market.json
    python benchmarks/concepts.py --build runs/concepts/bench-market --seeds 3 --sizes 8,100 --no-select \
        --classifiers part_vote,logistic --out benchmarks/results/concepts_grounded_market_all_clues.json
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

from visfeed.agents.concepts import BUILD_FILE, TREE_FILE, build_tree
from visfeed.agents.resources import build_scoring, provider_handle
from visfeed.evals.concepts.experiment import Experiment, explain_model, fit_models, score_on_test
from visfeed.evals.concepts.world_truth import (
    clue_auroc,
    image_attributes,
    positive_precision_at_k,
    positive_profile,
    precision_at_k,
    spec_tree,
    true_assignments,
    twin_pairs,
    twin_score,
)
from visfeed.fileio import sha256_file, write_json_atomic
from visfeed.state.concepts import ConceptSettings, ConceptTree, merge_values
from visfeed.state.config import RunConfig
from visfeed.state.rundir import CHECKPOINTS, read_trace
from visfeed.tools.concepts.classifiers import CLASSIFIERS
from visfeed.tools.concepts.features import FeatureSpace, clue_features, combine, description_space, tree_space
from visfeed.tools.concepts.grounding import ImageEvidence
from visfeed.tools.embedding.builtin_models import shipped_checkpoint
from visfeed.tools.feedback.baselines import description_prompts
from visfeed.tools.feedback.description_files import read_description_file
from visfeed.tools.feedback.visual_words import load_vocabulary
from visfeed.tools.scoring.session import resolve_logit_scale
from visfeed.tools.world.spec import load_spec

TREES = ("tree_llm", "tree_llm_only", "tree_grounded", "tree_spec")


def build_trees(seed: int, args: argparse.Namespace, cfg: RunConfig, data: Any) -> dict[str, ConceptTree]:
    """The default build of this seed, grounded on its feedback images, and its LLM-only twin.

    The twin has the same parts and attributes and the LLM's own usable answers as values (those the images
    checked), so the two differ in the values alone. (``--llm-only`` on the default build stops with exit 1
    when the LLM gives no usable part: there is no tree of its own to compare.)
    """
    out = args.build / f"seed{seed}" / "tree_grounded"
    if not (out / TREE_FILE).is_file():
        llm_cfg = cfg.with_updates({"llm.cache_file": args.build / "llm_cache.sqlite"})
        evidence = ImageEvidence(
            encoder=data.encoder, image_emb=data.feedback.image_emb, labels=data.feedback.labels,
            vocabulary=load_vocabulary(None),
        )  # fmt: skip
        t0 = time.perf_counter()
        with provider_handle(llm_cfg) as handle:
            build_tree(
                out, llm_cfg, ConceptSettings(), data.classnames, args.domain, handle, evidence=evidence,
                resume=(out / CHECKPOINTS).exists(),
            )  # fmt: skip
        logging.info("seed %d: grounded tree built in %.0f s", seed, time.perf_counter() - t0)
    grounded = ConceptTree.load(out / TREE_FILE)
    answers = [(s.part, s.attribute, s.class_name, s.llm_value) for s in grounded.sources if s.llm_value]
    llm_only = grounded.model_copy(update={"values": merge_values(answers, grounded.classnames), "sources": []})
    return {"tree_grounded": grounded, "tree_llm_only": ConceptTree.model_validate(llm_only.model_dump())}


def run_descriptions(run_dir: Path, template: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(optimized, initial) prompt sets of an optimization run (initial: its iteration-0 lineage)."""
    optimized = read_description_file(run_dir / "descriptions.json", "cupl").prompts()
    initial: dict[str, list[str]] = {}
    for e in read_trace(run_dir, events={"lineage_add"}):
        if e.get("introduced_iteration") == 0:
            initial.setdefault(e["class_name"], []).append(e["text"])
    return optimized, description_prompts(initial, template)


def spaces_for(
    seed: int, args: argparse.Namespace, cfg: RunConfig, trees: dict[str, ConceptTree]
) -> dict[str, FeatureSpace]:
    spaces = {name: tree_space(t) for name, t in trees.items() if t.values}  # an LLM may give no usable value
    if args.worth_runs is not None:
        optimized, initial = run_descriptions(args.worth_runs / f"seed{seed}", cfg.resolved_template)
        spaces["optimized"] = description_space(optimized)
        spaces["initial"] = description_space(initial)
        spaces["both"] = combine(spaces.get("tree_llm", spaces["tree_spec"]), spaces["optimized"])
    return spaces


def seed_trees(seed: int, args: argparse.Namespace, llm_tree: ConceptTree | None) -> dict[str, ConceptTree]:
    """Every tree of one seed: the given LLM tree, the default builds (on this seed's 8-shot feedback), the spec's."""
    spec = load_spec(args.spec)
    trees = {"tree_llm": llm_tree} if llm_tree is not None else {}
    if args.build is not None:
        cfg = RunConfig(
            seed=seed, data={"n_val": 20, "n_test": 50, "world_spec": args.spec}, backbone={"device": "cpu"}
        )
        trees.update(build_trees(seed, args, cfg, build_scoring(cfg)))
    trees["tree_spec"] = spec_tree(spec)
    return trees


def one(seed: int, size: int, args: argparse.Namespace, trees: dict[str, ConceptTree]) -> dict[str, Any]:
    t0 = time.perf_counter()
    cfg = RunConfig(
        seed=seed, data={"k_shot": size, "n_val": 20, "n_test": 50, "world_spec": args.spec}, backbone={"device": "cpu"}
    )
    data = build_scoring(cfg)
    assert data.validation is not None
    scale, _ = resolve_logit_scale(None, data.logit_scale)
    exp = Experiment(data.encoder, data.classnames, data.feedback, data.validation, data.test_loader, scale, "cpu")
    spaces = spaces_for(seed, args, cfg, trees)
    fitted = fit_models(exp, spaces, args.classifiers, seed=seed, select=args.select)
    base, test = score_on_test(exp, fitted)
    spec = load_spec(args.spec)
    out: dict[str, Any] = {
        "seed": seed, "train_per_class": size, "baselines": base,
        "models": [f.score.model_dump() for f in fitted], "faithfulness": {},
    }  # fmt: skip
    attrs = image_attributes(spec, "test", seed, test.labels)
    for name in TREES:
        if name not in spaces:
            if name in trees:  # no value to fit on; its (zero) true assignments still count
                out["faithfulness"][name] = {"clues": 0, "precision_at_5": {}, "true_assignments": {}}
            continue
        space = spaces[name]
        auroc = clue_auroc(space, clue_features(exp.encoder, space, test.image_emb, scale=scale, device="cpu"), attrs)
        p5, pos5, pos_classes, profile = {}, {}, {}, {}
        for f in fitted:
            if f.score.source == name:
                ex = explain_model(f, exp, test, seed=seed, top_k=len(f.space))  # whole lists, for the profile
                p5[f.score.classifier] = float(np.mean(list(precision_at_k(ex.per_class, f.space, spec).values())))
                pos = positive_precision_at_k(ex.per_class_positive, f.space, spec)
                pos5[f.score.classifier] = float(np.mean(list(pos.values()))) if pos else 0.0
                pos_classes[f.score.classifier] = len(pos)
                profile[f.score.classifier] = positive_profile(ex.per_class_positive, f.space, spec)
        out["faithfulness"][name] = {
            "clues": len(space), "matched_clues": len(auroc),
            "mean_auroc": float(np.mean(list(auroc.values()))) if auroc else None,
            "auroc": auroc, "precision_at_5": p5, "positive_precision_at_5": pos5,
            "classes_with_positive_evidence": pos_classes, "positive_profile": profile, "true_assignments": true_assignments(trees[name], spec),
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
            for k, v in f.get("positive_precision_at_5", {}).items():
                faith.setdefault(f"{tree}/{r['train_per_class']}/positive_precision_at_5/{k}", []).append(v)
            for k, prof in f.get("positive_profile", {}).items():
                for measure, v in prof.items():
                    faith.setdefault(f"{tree}/{r['train_per_class']}/positive_{measure}/{k}", []).append(v)
            if r["train_per_class"] == rows[0]["train_per_class"]:
                for attr, t in f.get("true_assignments", {}).items():
                    faith.setdefault(f"{tree}/true_fraction/{attr}", []).append(t["fraction"])
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
    ap.add_argument("--spec", type=Path, default=None, help="world spec YAML (default: the shipped market)")
    ap.add_argument("--build", type=Path, default=None, help="folder for the default builds (tree_grounded, ...)")
    ap.add_argument("--domain", default="object", help="domain of the builds (the CLI's default: object)")
    ap.add_argument("--classifiers", type=lambda s: s.split(","), default=list(CLASSIFIERS))
    ap.add_argument(
        "--no-select", dest="select", action="store_false",
        help="fit on every clue (no selection on validation): how much of a low precision the selection causes",
    )  # fmt: skip
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    llm_tree = ConceptTree.load(args.tree) if args.tree is not None else None
    rows, builds = [], {}
    for seed in range(args.seeds):
        trees = seed_trees(seed, args, llm_tree)
        if args.build is not None:
            builds[f"seed{seed}"] = json.loads((args.build / f"seed{seed}" / "tree_grounded" / BUILD_FILE).read_text())
        rows += [one(seed, size, args, trees) for size in args.sizes]
    build = args.tree.parent / "build.json" if args.tree is not None else None
    result = {
        "tower_sha256": sha256_file(shipped_checkpoint())[:12], "spec": str(args.spec or "market (shipped)"),
        "seeds": args.seeds, "sizes": args.sizes, "tree": str(args.tree), "worth_runs": str(args.worth_runs),
        "classifiers": args.classifiers, "select": args.select, "builds": builds,
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
