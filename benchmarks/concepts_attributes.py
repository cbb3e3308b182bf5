"""Can the scorer tell an attribute's values apart on the world's images, and what does grounding lose?

Per world attribute (colour, shape, pattern, size), world spec and seed:

- ``scorer``: the backbone's zero-shot accuracy among the world's own values of the attribute, each value
  the mean embedding of every phrase the world's captions use for it (the words the tower was trained on,
  as "a {phrase} object" / "an object with {noun}"): per image (test split, 50 per class; patterns only on
  whole items, the cut hides them) and per class (the value with the highest mean similarity over the
  class's 8 feedback images, the images grounding sees): the best the pictures and the backbone allow,
  whatever words a tree uses. Also the recall of each value (test split), and the same with every phrase
  in the clue sentence ("the shape of the object is egg-shaped"): what the sentence form costs.
- ``grounding``: the default rule of ``visfeed.tools.concepts.grounding`` (the clue sentence "the {attribute}
  of the object is {value}", support against all classes) on the same feedback images, with three sets of
  candidates: ``vocabulary`` (the visual vocabulary's words of the attribute's facet: the default build's),
  ``vocabulary_learned`` (those of them the world's captions also use: words the tower learned) and
  ``world_values`` (one caption phrase per world value): what the candidate words cost; and the
  vocabulary's words under two other rules (``raw``: no contrast; ``borda``: raw fit and contrast ranked
  together): what the contrast costs.

Truth: ``evals.concepts.world_truth.true_assignments`` (the share of classes whose value is one the class can
take); world truth is used here only, never by a build. No LLM call.

    python benchmarks/concepts_attributes.py --seeds 3 --out benchmarks/results/concepts_attributes_market.json
    python benchmarks/concepts_attributes.py --spec benchmarks/specs/garden.yaml --seeds 3 \
        --out benchmarks/results/concepts_attributes_garden.json
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from visfeed.agents.resources import build_scoring
from visfeed.evals.concepts.world_truth import image_attributes, shows, true_assignments
from visfeed.fileio import write_json_atomic
from visfeed.state.concepts import DEFAULT_CLUE_TEMPLATE, ConceptPart, ConceptTree, merge_values
from visfeed.state.config import RunConfig
from visfeed.tools.concepts.grounding import FALLBACK_ATTRIBUTES, class_fit, facet_entries, ground_attribute
from visfeed.tools.feedback.visual_words import load_vocabulary
from visfeed.tools.world.captions import COLOR_WORDS, PATTERN_WORDS, SHAPE_WORDS, SIZE_WORDS
from visfeed.tools.world.spec import load_spec

PART = "object"


def caption_phrases(attribute: str) -> dict[str, list[str]]:
    """World value -> the captions' texts for it, as whole phrases about an object."""
    if attribute == "pattern":
        return {
            v: [f"a {a} {PART}" for a in adj] + [f"an {PART} with {n}" for n in nouns]
            for v, (adj, nouns) in PATTERN_WORDS.items()
        }
    table = {"color": COLOR_WORDS, "shape": SHAPE_WORDS, "size": SIZE_WORDS}[attribute]
    return {v: [f"a {p} {PART}" for p in phrases] for v, phrases in table.items()}


def caption_words(attribute: str) -> dict[str, list[str]]:
    """World value -> the captions' single words or short phrases for it (what a clue's value can be)."""
    if attribute == "pattern":
        return {v: [*adj, *nouns] for v, (adj, nouns) in PATTERN_WORDS.items()}
    return dict({"color": COLOR_WORDS, "shape": SHAPE_WORDS, "size": SIZE_WORDS}[attribute])


def true_share(attribute: str, picks: list[str], classnames: list[str], spec: Any) -> float:
    """Share of classes whose picked value the class can take (world truth, as the main benchmark counts)."""
    values = merge_values([(PART, attribute, c, v) for c, v in zip(classnames, picks, strict=True)], classnames)
    tree = ConceptTree(
        domain=PART, classnames=classnames, parts=[ConceptPart(name=PART, attributes=[attribute])], values=values
    )
    row = true_assignments(tree, spec).get(attribute)
    return float(row["fraction"]) if row else 0.0


def scorer(data: Any, test: Any, spec: Any, seed: int, attribute: str, *, clue_form: bool = False) -> dict[str, Any]:
    """Zero-shot accuracy among the world's values, per image (test, feedback) and per class (feedback).

    ``clue_form``: each phrase in the clue sentence ("the shape of the object is egg-shaped") instead of
    the captions' own forms: what the sentence form costs.
    """
    table = caption_phrases(attribute)
    if clue_form:
        sentence = DEFAULT_CLUE_TEMPLATE.format(part=PART, attribute=attribute, value="{value}")
        table = {v: [sentence.format(value=w) for w in ws] for v, ws in caption_words(attribute).items()}
    values = list(table)
    emb = []
    for v in values:
        e = data.encoder.embed_texts(table[v]).mean(axis=0)
        emb.append(e / np.linalg.norm(e))
    text = np.stack(emb)
    out: dict[str, Any] = {"values": len(values), "chance": 1.0 / len(values)}
    for split, emb_split, name in (("test", test, "test"), ("feedback", data.feedback, "feedback")):
        attrs = image_attributes(spec, name, seed, emb_split.labels)
        seen = np.asarray([shows(a, attribute, a[attribute]) for a in attrs])
        truth = np.asarray([values.index(a[attribute]) for a in attrs])
        pred = (emb_split.image_emb @ text.T).argmax(axis=1)
        out[f"image_accuracy_{split}"] = float((pred == truth)[seen].mean())
        if split == "test":
            out["recall_test"] = {
                v: float((pred[seen & (truth == i)] == i).mean())
                for i, v in enumerate(values)
                if (seen & (truth == i)).any()
            }
    x, y = data.feedback.image_emb, data.feedback.labels
    sims = x @ text.T
    picks = [values[int(np.argmax(sims[y == c].mean(axis=0)))] for c in range(len(data.classnames))]
    out["class_true_share"] = true_share(attribute, picks, data.classnames, spec)
    return out


def grounding(data: Any, spec: Any, attribute: str) -> dict[str, Any]:
    """The default grounding rule's true share with each candidate set (see the module docstring)."""
    vocab = facet_entries(load_vocabulary(None), FALLBACK_ATTRIBUTES[attribute])
    words = caption_words(attribute)
    learned = {w.casefold() for ws in words.values() for w in ws}
    sets = {
        "vocabulary": vocab,
        "vocabulary_learned": [w for w in vocab if w in learned],
        "world_values": [ws[0] for ws in words.values()],
    }
    sentence = DEFAULT_CLUE_TEMPLATE.format(part=PART, attribute=attribute, value="{value}")
    against: list[list[int]] = [[] for _ in data.classnames]
    out: dict[str, Any] = {}
    for name, cands in sets.items():
        chosen = ground_attribute(
            data.encoder, sentence, cands, {}, data.feedback.image_emb, data.feedback.labels, data.classnames, against
        )
        picks = [v for v, _, _ in chosen]
        out[name] = {
            "candidates": len(cands),
            "true_share": true_share(attribute, picks, data.classnames, spec),
            "picks": dict(zip(data.classnames, picks, strict=True)),
        }
    out.update(other_rules(data, spec, attribute, sentence, sets["vocabulary"]))
    return out


def other_rules(data: Any, spec: Any, attribute: str, sentence: str, cands: list[str]) -> dict[str, Any]:
    """The vocabulary's candidates chosen by two other rules: is the default's contrast what loses values?

    ``raw``: the highest mean similarity over the class's images (no contrast: a word close to every image
    wins everywhere); ``borda``: the best sum of a candidate's ranks under ``raw`` and under the default's
    support (what fits the class's images best and also sets them apart).
    """
    emb = data.encoder.embed_texts([sentence.format(value=v) for v in cands])
    x, y = data.feedback.image_emb, data.feedback.labels
    sims = x @ np.asarray(emb, dtype=np.float64).T
    raw = np.stack([sims[y == c].mean(axis=0) for c in range(len(data.classnames))])
    support = class_fit(x, y, len(data.classnames), emb)
    borda = np.stack([rankdata(r) + rankdata(s) + 1e-9 * s for r, s in zip(raw, support, strict=True)])
    out = {}
    for name, score in (("vocabulary_raw", raw), ("vocabulary_borda", borda)):
        picks = [cands[int(np.argmax(row))] for row in score]
        out[name] = {"candidates": len(cands), "true_share": true_share(attribute, picks, data.classnames, spec)}
    return out


def one(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    cfg = RunConfig(seed=seed, data={"n_val": 20, "n_test": 50, "world_spec": args.spec}, backbone={"device": "cpu"})
    data = build_scoring(cfg)
    test = data.test_loader()
    spec = load_spec(args.spec)
    return {
        a: {
            "scorer": scorer(data, test, spec, seed, a),
            "scorer_clue_form": scorer(data, test, spec, seed, a, clue_form=True),
            "grounding": grounding(data, spec, a),
        }
        for a in args.attributes
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--spec", type=Path, default=None, help="world spec YAML (default: the shipped market)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--attributes", type=lambda s: s.split(","), default=list(FALLBACK_ATTRIBUTES))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rows = {seed: one(seed, args) for seed in range(args.seeds)}
    summary: dict[str, dict[str, Any]] = {}
    spread = lambda v: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": v}  # noqa: E731
    for a in args.attributes:
        s = [r[a]["scorer"] for r in rows.values()]
        g = [r[a]["grounding"] for r in rows.values()]
        summary[a] = {
            "scorer_image_accuracy_test": spread([x["image_accuracy_test"] for x in s]),
            "scorer_image_accuracy_feedback": spread([x["image_accuracy_feedback"] for x in s]),
            "scorer_class_true_share": spread([x["class_true_share"] for x in s]),
            "scorer_clue_form_image_accuracy_test": spread(
                [r[a]["scorer_clue_form"]["image_accuracy_test"] for r in rows.values()]
            ),
            "scorer_clue_form_class_true_share": spread(
                [r[a]["scorer_clue_form"]["class_true_share"] for r in rows.values()]
            ),
            "chance": s[0]["chance"],
            **{f"grounding_{k}": spread([x[k]["true_share"] for x in g]) for k in g[0]},
        }
        print(
            f"{a:8s} scorer per image {np.mean([x['image_accuracy_test'] for x in s]):.3f} (chance {s[0]['chance']:.2f}),"
            f" per class {summary[a]['scorer_class_true_share']['mean']:.3f};"
            + "".join(f" grounding/{k} {summary[a][f'grounding_{k}']['mean']:.3f}" for k in g[0])
        )
    write_json_atomic(args.out, {"spec": str(args.spec or "market (shipped)"), "seeds": args.seeds, "summary": summary,
                                 "rows": rows})  # fmt: skip


if __name__ == "__main__":
    main()
