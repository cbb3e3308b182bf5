"""ProAPO's search and the loop's library search at many classes, on synthetic embeddings (no LLM, no model).

Why: both searches are pure scoring, so their cost is what the method adds at ImageNet scale. The world
is made here: each class has a centre; images are centre + noise; a text is the normalised sum of its
words' vectors, where a class's name word and its trait words lie near its centre and every other word
(template words) is a fixed random vector. Each class's library: its name under the template set, 10
descriptions and 10 word sentences (ProAPO+words' library), as in a run.

Prints and writes as JSON: wall seconds and CPU seconds of ProAPO's stage 1 (templates) and stage 2 (items),
of the loop's search (one iteration's search, ``library_rounds`` rounds) over the same library, their
feedback/validation accuracies, candidates evaluated, and the machine's load average.

Usage: python benchmarks/proapo_scale.py --classes 1000 --out benchmarks/results/proapo_scale_1000.json
(``--loop-only``: the loop's search alone, over the library ProAPO would search with the name template alone)
"""

from __future__ import annotations

import argparse
import cProfile
import os
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from profiling import write_profile
from visfeed.fileio import write_json_atomic
from visfeed.state.templates import DEFAULT_TEMPLATE
from visfeed.tools.search.items import accuracy_of, build_library, search_items, single
from visfeed.tools.search.proapo import description_item, name_item, proapo


def world(n_classes: int, dim: int, shots: int, val: int, seed: int) -> dict[str, Any]:
    """Class centres, images of the feedback and validation splits, and a bag-of-words text encoder."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim))
    known = {f"class{c}": centres[c] for c in range(n_classes)}
    for c in range(n_classes):
        for j in range(10):
            known[f"trait{c}x{j}"] = centres[c] + 1.5 * rng.standard_normal(dim)

    def vec(word: str) -> np.ndarray:
        if word in known:
            return known[word]
        return np.random.default_rng(zlib.crc32(word.encode())).standard_normal(dim) * 0.5

    def embed(texts: list[str]) -> np.ndarray:
        rows = np.stack(
            [sum((vec(w) for w in t.replace(",", " ").replace(".", " ").split()), np.zeros(dim)) for t in texts]
        )
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(n_classes), n)
        return centres[y] + 2.0 * rng.standard_normal((len(y), dim)), y

    return {"embed": embed, "feedback": images(shots), "validation": images(val)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--shots", type=int, default=1, help="feedback images per class (ProAPO's paper: 1)")
    ap.add_argument("--val", type=int, default=2, help="validation images per class")
    ap.add_argument("--rounds", type=int, default=8, help="rounds of the loop's search")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", type=Path, default=None, help="cProfile the loop's search: PATH.prof and PATH.txt")
    ap.add_argument(
        "--loop-only", action="store_true", help="skip ProAPO: the loop's search over the name-template library"
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/proapo_scale.json"))
    args = ap.parse_args()
    w = world(args.classes, args.dim, args.shots, args.val, args.seed)
    (x, y), (xv, yv) = w["feedback"], w["validation"]
    names = [f"class{c}" for c in range(args.classes)]
    descs = [[f"trait{c}x{j}" for j in range(10)] for c in range(args.classes)]
    words = [[f"a trait{c}x{j} thing" for j in range(10)] for c in range(args.classes)]
    load = os.getloadavg()

    proapo_figures = None
    if args.loop_only:
        items = [
            [name_item(n, ["a photo of a {}."]), *(description_item(n, d, ["a photo of a {}."], DEFAULT_TEMPLATE,
             "oneshot") for d in ds), *(single(w, "words") for w in ws)]
            for n, ds, ws in zip(names, descs, words, strict=True)
        ]  # fmt: skip
    else:
        t0, c0 = time.perf_counter(), time.process_time()
        found = proapo(
            names, descs, words, run_template=DEFAULT_TEMPLATE, embed=w["embed"], image_emb=x, labels=y,
            scale=100.0, seed=args.seed, val_emb=xv, val_labels=yv,
        )  # fmt: skip
        proapo_wall, proapo_cpu = time.perf_counter() - t0, time.process_time() - c0
        vec = found.library.vectors(found.found.chosen)
        items = found.items
        proapo_figures = {
            "wall_s": proapo_wall,
            "cpu_s": proapo_cpu,
            "template_stage_s": found.templates.seconds,
            "templates_chosen": len(found.templates.templates),
            "template_candidates": found.templates.evaluated,
            "item_candidates": found.found.evaluated,
            "feedback_accuracy": accuracy_of(vec, x, y),
            "validation_accuracy": accuracy_of(vec, xv, yv),
        }

    lib = build_library(names, items, w["embed"], mean_of_cosines=True)
    prof = cProfile.Profile() if args.profile is not None else None
    t0, c0 = time.perf_counter(), time.process_time()
    if prof is not None:
        prof.enable()
    loop = search_items(lib, x, y, init=[[0]] * args.classes, rounds=args.rounds, val_emb=xv, val_labels=yv)
    loop_wall, loop_cpu = time.perf_counter() - t0, time.process_time() - c0
    if prof is not None:
        prof.disable()
        write_profile(prof, args.profile)
    lvec = lib.vectors(loop.chosen)

    out = {
        "classes": args.classes,
        "dim": args.dim,
        "shots": args.shots,
        "validation_per_class": args.val,
        "library_items_per_class": float(np.mean([len(t) for t in lib.texts])),
        "load_average_at_start": load,
        "proapo": proapo_figures,
        "loop_search": {
            "wall_s": loop_wall,
            "cpu_s": loop_cpu,
            "rounds": len(loop.rounds) - 1,
            "classes_searched_per_round": [int(r["classes_searched"]) for r in loop.rounds[1:]],
            "round_picked": loop.round_picked,
            "feedback_accuracy": accuracy_of(lvec, x, y),
            "validation_accuracy": accuracy_of(lvec, xv, yv),
        },
    }
    write_json_atomic(args.out, out)
    head = (
        f"ProAPO {proapo_figures['wall_s']:.1f} s wall ({proapo_figures['cpu_s']:.1f} s CPU), validation "
        f"{100 * proapo_figures['validation_accuracy']:.1f} %; "
        if proapo_figures is not None
        else ""
    )
    print(
        f"{args.classes} classes: {head}loop search {loop_wall:.1f} s wall ({loop_cpu:.1f} s CPU, "
        f"{out['loop_search']['rounds']} rounds), validation {100 * out['loop_search']['validation_accuracy']:.1f} %; "
        f"load {load[0]:.1f} -> {args.out}"
    )


if __name__ == "__main__":
    main()
