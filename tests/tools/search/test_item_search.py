"""The item search: its incremental fitness is the brute-force one, its picks are those the full-pass search
made (recorded), it climbs on feedback, and it picks the round on validation only."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from visfeed.tools.search.fitness import LogitStats, item_bounds
from visfeed.tools.search.items import ItemLibrary, _fitness_terms, accuracy_of, search_items

PICKS = Path(__file__).resolve().parents[2] / "fixtures" / "item_search_picks.json"
"""Picks of the search before it kept running statistics (commit 0e6c6bd: every class, every round, every
image against every class), on the worlds :func:`_recorded_world` makes."""


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


def _recorded_world(case: dict[str, Any]) -> tuple[ItemLibrary, Any, Any]:
    """The fixture worlds of :data:`PICKS`: with ``counts``, items of 1-3 prompts scored as mean of cosines."""
    rng = np.random.default_rng(case["seed"])
    n, items = case["n_classes"], case["items"]
    centres = rng.standard_normal((n, case["dim"]))
    emb = [centres[c] + case["spread"] * rng.standard_normal((items, case["dim"])) for c in range(n)]
    counts = [rng.integers(1, 4, size=items).astype(float) for _ in range(n)] if case["counts"] else []
    if case["counts"]:
        emb = [e / np.linalg.norm(e, axis=1, keepdims=True) * k[:, None] for e, k in zip(emb, counts, strict=True)]
    lib = ItemLibrary(
        classnames=[f"c{c}" for c in range(n)], texts=[[f"c{c} item {i}" for i in range(items)] for c in range(n)],
        sources=[["words"] * items for _ in range(n)], emb=emb, counts=counts, mean_of_cosines=case["counts"],
    )  # fmt: skip

    def images(k: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(n), k)
        return centres[y] + 2.5 * rng.standard_normal((len(y), case["dim"])), y

    return lib, images(case["shots"]), images(case["val"])


@pytest.mark.parametrize("recorded", json.loads(PICKS.read_text()), ids=lambda r: f"seed{r['case']['seed']}")
def test_the_picks_are_those_of_the_full_pass_search(recorded: dict[str, Any]) -> None:
    """Relevant rows, running sums and skipped classes change no pick (22 worlds, 3-80 classes, both
    class-vector modes, sampled candidates, a class subset); the test fails with a margin of 5 logits."""
    case = recorded["case"]
    lib, (x, y), (xv, yv) = _recorded_world(case)
    found = search_items(
        lib, x, y, init=[[c % case["items"]] for c in range(case["n_classes"])], rounds=6,
        val_emb=xv if case["val"] else None, val_labels=yv if case["val"] else None,
        max_candidates=case["max_candidates"], seed=case["seed"], logit_scale=case["scale"],
        classes=list(range(0, case["n_classes"], 2)) if case["subset"] else None,
    )  # fmt: skip
    assert found.chosen == recorded["chosen"] and found.round_picked == recorded["round_picked"]
    assert np.allclose([r["fitness"] for r in found.rounds], recorded["history_fitness"], rtol=0, atol=1e-9)


def _brute(lib: ItemLibrary, xn: np.ndarray, y: np.ndarray, chosen: list[list[int]]) -> float:
    acc, ce = _fitness_terms(100.0 * xn @ lib.vectors(chosen).T, y)
    return acc - 0.1 * ce


@pytest.mark.parametrize("bounded", [False, True])
def test_incremental_fitness_equals_recomputing_the_whole_matrix(bounded: bool) -> None:
    """Every image (no bound): the whole-matrix fitness; relevant images only: the same differences."""
    case = {"seed": 4, "n_classes": 12, "items": 6, "dim": 48, "spread": 0.6, "counts": True, "shots": 3, "val": 0}
    lib, (x, y), _ = _recorded_world(case)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    chosen = [[c % 6, (c + 2) % 6] for c in range(12)]
    bounds = item_bounds(xn, y, lib.emb, lib.counts, 100.0) if bounded else None
    stats = LogitStats(100.0 * xn @ lib.vectors(chosen).T, y, bounds)
    cands = [[1], [0, 5], [2, 3, 4], [0, 1, 2, 3, 4, 5]]
    skipped = 0
    for c in range(12):
        rows = stats.relevant(c)
        skipped += len(y) - len(rows)
        fast = stats.fitness(c, rows, 100.0 * xn[rows] @ lib.columns(c, cands).T, 0.1)
        full = [_brute(lib, xn, y, [s if j == c else chosen[j] for j in range(12)]) for s in cands]
        if bounded:
            assert np.allclose(fast - fast[0], np.subtract(full, full[0]), rtol=0, atol=1e-12), c
        else:
            assert np.allclose(fast, full, rtol=0, atol=1e-12), c
    assert skipped > 0 if bounded else skipped == 0, "no image left out: the bounded case tests nothing"


def test_the_bounds_hold_every_set_of_a_class() -> None:
    case = {"seed": 2, "n_classes": 4, "items": 5, "dim": 16, "spread": 1.0, "counts": True, "shots": 4, "val": 0}
    lib, (x, y), _ = _recorded_world(case)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    high, low = item_bounds(xn, y, lib.emb, lib.counts, 100.0)
    for c in range(4):
        for k in range(1, 6):
            for s in itertools.combinations(range(5), k):
                v = 100.0 * xn @ lib.columns(c, [list(s)])[0]
                assert np.all(v <= high[:, c] + 1e-9)
                assert np.all(v[y == c] >= low[y == c] - 1e-9)


def test_running_statistics_stay_those_of_the_matrix() -> None:
    """After 200 column changes (raises, drops, a class taking the lead), the running figures are a refresh's."""
    rng = np.random.default_rng(0)
    n, c = 60, 9
    y = rng.integers(0, c, size=n)
    stats = LogitStats(rng.normal(0, 10, size=(n, c)), y, None)
    for _ in range(200):
        k = int(rng.integers(c))
        stats.set_column(k, stats.logits[:, k] + rng.normal(0, 15, size=n), np.zeros(c, dtype=bool))
        for j in range(c):
            rows = np.arange(n)
            others = np.delete(stats.logits, j, axis=1)
            top = others.max(axis=1)
            assert np.allclose(stats.others_lse(j, rows), top + np.log(np.exp(others - top[:, None]).sum(1)))
            wrong = stats.logits.copy()
            wrong[rows, y] = -np.inf
            wrong[:, j] = -np.inf
            assert np.array_equal(stats.rival(j, rows), wrong.max(axis=1))


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
