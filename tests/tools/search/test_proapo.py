"""ProAPO's search: the group scorer is the whole-matrix fitness, the search is elitist on feedback, and its
snapshots and template elites are picked on validation only."""

from __future__ import annotations

import itertools

import numpy as np

from visfeed.state.templates import DEFAULT_TEMPLATE, NAMELESS_TEMPLATE
from visfeed.tools.search.items import ItemLibrary, accuracy_of
from visfeed.tools.search.proapo import description_item, item_search, name_item, proapo, template_search
from visfeed.tools.search.proapo_search import Budget, Fitness, Operators, Scorer, evolve


def _world(seed: int, n_classes: int = 7, items: int = 6, dim: int = 20, shots: int = 5, val: int = 25):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim))
    lib = ItemLibrary(
        classnames=[f"c{c}" for c in range(n_classes)],
        texts=[[f"c{c} item {i}" for i in range(items)] for c in range(n_classes)],
        sources=[["words"] * items for _ in range(n_classes)],
        emb=[centres[c] + 1.6 * rng.standard_normal((items, dim)) for c in range(n_classes)],
    )

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(n_classes), n)
        return centres[y] + 2.5 * rng.standard_normal((len(y), dim)), y

    return lib, images(shots), images(val)


def test_group_scores_equal_the_whole_matrix_fitness() -> None:
    lib, (x, y), _ = _world(0)
    scorer = Scorer(x, y, 20.0, Fitness())
    chosen = [[0, 1], [2], [3, 4], [0], [5], [1, 2, 3], [4]]
    vec = lib.vectors(chosen)
    group = [5, 1, 3]
    rng = np.random.default_rng(1)
    cands = [[sorted(rng.choice(6, size=int(rng.integers(1, 4)), replace=False)) for _ in group] for _ in range(5)]
    cols = np.stack([np.concatenate([lib.columns(c, [a[i]]) for i, c in enumerate(group)]) for a in cands])
    fast = scorer.group(vec, group)(cols)
    for k, a in enumerate(cands):
        trial = [a[group.index(c)] if c in group else chosen[c] for c in range(len(chosen))]
        assert np.isclose(fast[k], scorer.full(lib.vectors(trial))), k


def test_operators_keep_every_set_valid_and_evolve_is_elitist() -> None:
    rng = np.random.default_rng(3)
    ops = Operators([5, 1, 7], rng)
    start = (frozenset([0]), frozenset([0]), frozenset([1, 2]))
    kids = ops.children([start, (frozenset([1, 2]), frozenset([0]), frozenset([6]))], Budget())
    assert kids and all(all(s and max(s) < n for s, n in zip(a, [5, 1, 7], strict=True)) for a in kids)
    target = np.array([1.0, 0.0, 0.0, 1.0, 0.0])

    def fit(cands: list[tuple[frozenset[int], ...]]) -> np.ndarray:  # best: {0, 3} in position 0
        return np.array([-np.abs(np.isin(np.arange(5), sorted(a[0])) - target).sum() for a in cands])

    elites, seen = evolve([start], fit, ops, Budget(), iterations=6)
    assert seen[elites[0]] == max(seen.values()) >= seen[start]
    assert elites[0][0] == frozenset([0, 3])


def test_item_search_climbs_on_feedback_and_picks_its_snapshot_on_validation() -> None:
    differs = 0
    for seed in range(10):
        lib, (x, y), (xv, yv) = _world(seed)
        found = item_search(lib, x, y, init=[[0]] * 7, scale=20.0, seed=seed, val_emb=xv, val_labels=yv)
        fitness = [r["fitness"] for r in found.rounds]
        assert all(b >= a - 1e-9 for a, b in itertools.pairwise(fitness)), fitness
        val = [r["validation_accuracy"] for r in found.rounds]
        assert found.round_picked == int(np.argmax(val)) and found.picked_on == "validation"
        assert np.isclose(accuracy_of(lib.vectors(found.chosen), xv, yv), max(val))
        differs += found.round_picked != int(np.argmax(fitness))
    assert differs, "no fixture where validation and feedback disagree: the test could not catch a feedback pick"


def test_template_search_returns_a_validation_picked_elite() -> None:
    _, (x, y), (xv, yv) = _world(4, n_classes=3)
    words = {"alpha": 0, "beta": 1, "gamma": 2}
    rng = np.random.default_rng(0)
    table = {w: rng.standard_normal(20) for w in ["alpha", "beta", "gamma", "photo", "sketch", "of", "a", "the"]}
    centres = {w: x[y == c].mean(0) for w, c in words.items()}

    def embed(texts: list[str]) -> np.ndarray:
        return np.stack([sum(centres.get(t, table.get(t, 0)) for t in s.replace(".", "").split()) for s in texts])

    templates = ["a photo of {}.", "a sketch of the {}.", "{}"]
    found = template_search(list(words), templates, embed, x, y, scale=20.0, seed=0, val_emb=xv, val_labels=yv)
    assert found.templates and set(found.templates) <= set(templates)
    assert found.validation_accuracy is not None and 0.0 <= found.validation_accuracy <= 1.0


def test_items_join_descriptions_to_each_templated_name() -> None:
    assert name_item("lemon", ["a photo of a {}.", "itap of a {}."]).prompts == [
        "a photo of a lemon",
        "itap of a lemon",
    ]
    named = description_item("lemon", "yellow skin", ["a photo of a {}."], DEFAULT_TEMPLATE, "oneshot")
    assert named.prompts == ["a photo of a lemon, which has yellow skin"]
    alone = description_item("lemon", "yellow skin.", ["a photo of a {}.", "itap of a {}."], NAMELESS_TEMPLATE, "x")
    assert alone.prompts == ["yellow skin"]


def test_proapo_end_to_end_chooses_among_its_own_library() -> None:
    lib, (x, y), (xv, yv) = _world(5, n_classes=4)
    names = lib.classnames
    rng = np.random.default_rng(2)
    vocab: dict[str, np.ndarray] = {}

    def embed(texts: list[str]) -> np.ndarray:
        rows = []
        for t in texts:
            v = np.zeros(20)
            for w in t.lower().replace(",", " ").split():
                if w in names:
                    v += x[y == names.index(w)].mean(0)
                else:
                    v += vocab.setdefault(w, rng.standard_normal(20))
            rows.append(v)
        return np.stack(rows)

    descs = [[f"trait{c} one", f"trait{c} two"] for c in range(4)]
    words = [[f"a shade{c} thing"] for c in range(4)]
    out = proapo(
        names, descs, words, run_template=DEFAULT_TEMPLATE, embed=embed, image_emb=x, labels=y, scale=20.0, seed=0,
        budget=Budget(template_iterations=2, outer=2, inner=2), val_emb=xv, val_labels=yv,
    )  # fmt: skip
    texts = out.found.texts(out.library)
    for c, n in enumerate(names):
        assert texts[n] and set(texts[n]) <= {n, *descs[c], *words[c]}
    assert all(p for per in out.items for x in per for p in x.prompts)
    assert out.found.picked_on == "validation"
