"""The item search: its incremental fitness is the brute-force one, it climbs on feedback, and it picks the
round on validation only."""

from __future__ import annotations

import itertools

import numpy as np

from visfeed.tools.search.items import (
    ItemLibrary,
    _class_candidates_fitness,
    _fitness_terms,
    accuracy_of,
    search_items,
)


def _world(seed: int, n_classes: int = 5, items: int = 8, dim: int = 24, shots: int = 6, val: int = 30):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim))
    emb = [centres[c] + 1.5 * rng.standard_normal((items, dim)) for c in range(n_classes)]
    lib = ItemLibrary(
        classnames=[f"c{c}" for c in range(n_classes)],
        texts=[[f"c{c} item {i}" for i in range(items)] for c in range(n_classes)],
        sources=[["words"] * items for _ in range(n_classes)],
        emb=emb,
    )

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(n_classes), n)
        return centres[y] + 2.5 * rng.standard_normal((len(y), dim)), y

    return lib, images(shots), images(val)


def test_incremental_fitness_equals_recomputing_the_whole_matrix() -> None:
    lib, (x, y), _ = _world(0)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    chosen = [[0, 1], [2], [3, 4, 5], [0], [7]]
    logits = 30.0 * xn @ lib.vectors(chosen).T
    cands = [[1], [0, 6], [2, 3, 7]]
    for c in range(5):
        cols = np.stack([30.0 * xn @ lib.vectors([s if k == c else chosen[k] for k in range(5)])[c] for s in cands], 1)
        fast = _class_candidates_fitness(logits, y, c, cols, 0.1)
        for k, s in enumerate(cands):
            trial = [s if j == c else chosen[j] for j in range(5)]
            acc, ce = _fitness_terms(30.0 * xn @ lib.vectors(trial).T, y)
            assert np.isclose(fast[k], acc - 0.1 * ce), (c, s)


def test_the_search_climbs_on_feedback_and_picks_its_round_on_validation() -> None:
    differs = 0
    for seed in range(12):
        lib, (x, y), (xv, yv) = _world(seed)
        found = search_items(lib, x, y, init=[[0]] * 5, rounds=6, val_emb=xv, val_labels=yv)
        fitness = [r["fitness"] for r in found.rounds]
        assert all(b >= a - 1e-12 for a, b in itertools.pairwise(fitness)), fitness
        val = [r["validation_accuracy"] for r in found.rounds]
        assert found.picked_on == "validation" and found.round_picked == int(np.argmax(val))
        assert np.isclose(accuracy_of(lib.vectors(found.chosen), xv, yv), max(val))
        differs += int(np.argmax(val) != int(np.argmax(fitness)))
    assert differs, "no fixture where validation and feedback disagree: this test could not catch feedback picking"


def test_without_validation_the_last_round_is_kept() -> None:
    lib, (x, y), _ = _world(3)
    found = search_items(lib, x, y, init=[[0]] * 5, rounds=3)
    assert found.round_picked == len(found.rounds) - 1 and "no validation" in found.picked_on


def test_one_class_keeps_its_start() -> None:
    lib, (x, y), (xv, yv) = _world(0, n_classes=1)
    found = search_items(lib, x, y, init=[[2, 3]], val_emb=xv, val_labels=yv)
    assert found.chosen == [[2, 3]] and found.round_picked == 0
