"""Grounding ablation: a value's support against all classes (the default) or its nearest classes only.

Re-grounds the default builds of ``benchmarks/concepts.py --build DIR`` (same structure, same cached LLM
answers, the same seed's feedback images) with ``n_confusers`` = 0 (all classes), 1 and 3, and reports the
share of true (class, value) assignments per world attribute. No LLM call is made.

    python benchmarks/concepts_grounding.py --build runs/concepts/bench-market --seeds 3 \
        --out benchmarks/results/concepts_grounding_confusers.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from visfeed.agents.concepts import TREE_FILE
from visfeed.agents.resources import build_scoring
from visfeed.evals.concepts.world_truth import true_assignments
from visfeed.fileio import write_json_atomic
from visfeed.state.concepts import ConceptTree, merge_values
from visfeed.state.config import RunConfig
from visfeed.tools.concepts.grounding import ImageEvidence
from visfeed.tools.feedback.visual_words import load_vocabulary
from visfeed.tools.world.spec import load_spec

CONFUSERS = (0, 1, 3)


def one(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    tree = ConceptTree.load(args.build / f"seed{seed}" / "tree_grounded" / TREE_FILE)
    answers = [(s.part, s.attribute, s.class_name, s.llm_value) for s in tree.sources if s.llm_value]
    attributes = {path: part.attributes for path, part in tree.leaf_parts()}
    data = build_scoring(
        RunConfig(seed=seed, data={"n_val": 20, "n_test": 50, "world_spec": args.spec}, backbone={"device": "cpu"})
    )
    spec = load_spec(args.spec)
    out: dict[str, Any] = {}
    for m in CONFUSERS:
        evidence = ImageEvidence(
            encoder=data.encoder, image_emb=data.feedback.image_emb, labels=data.feedback.labels,
            vocabulary=load_vocabulary(None), n_confusers=m,
        )  # fmt: skip
        sources = evidence.ground(attributes, answers, data.classnames, tree.template)
        values = merge_values([(s.part, s.attribute, s.class_name, s.value) for s in sources], data.classnames)
        grounded = ConceptTree.model_validate({**tree.model_dump(), "values": values, "sources": []})
        out[str(m)] = {a: t["fraction"] for a, t in true_assignments(grounded, spec).items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, required=True, help="--build folder of benchmarks/concepts.py")
    ap.add_argument("--spec", type=Path, default=None)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = {seed: one(seed, args) for seed in range(args.seeds)}
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for m in map(str, CONFUSERS):
        attrs = sorted({a for r in rows.values() for a in r[m]})
        summary[m] = {}
        for a in attrs:
            v = [r[m][a] for r in rows.values() if a in r[m]]
            summary[m][a] = {"mean": float(np.mean(v)), "std": float(np.std(v))}
            print(f"confusers={m} {a:8s} {np.mean(v):.3f} ± {np.std(v):.3f}")
    write_json_atomic(args.out, {"build": str(args.build), "spec": str(args.spec), "summary": summary, "rows": rows})


if __name__ == "__main__":
    main()
