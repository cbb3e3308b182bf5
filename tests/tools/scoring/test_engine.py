import numpy as np
import pytest
import torch

from visfeed.errors import EmbeddingError
from visfeed.tools.scoring.engine import ScoringEngine
from visfeed.tools.scoring.measures import feedback


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _world(seed: int, n_classes: int = 6, per_class: int = 10, n_desc: int = 5, dim: int = 16):
    rng = np.random.default_rng(seed)
    protos = _unit(rng.normal(size=(n_classes, dim)))
    labels = np.repeat(np.arange(n_classes), per_class)
    x = _unit(protos[labels] + 0.9 * rng.normal(size=(len(labels), dim)))
    descs = [_unit(protos[c] + 1.2 * rng.normal(size=(n_desc, dim))) for c in range(n_classes)]
    return rng, protos, labels, x, descs


def _full_objective(x, labels, descs) -> tuple[int, float]:
    s = torch.as_tensor(x) @ torch.stack([torch.as_tensor(d).mean(0) for d in descs]).T
    fb = feedback(s, torch.as_tensor(labels), len(descs))
    return fb.n_correct, fb.mean_margin


def test_set_class_updates_only_that_column_and_matches_full_recompute() -> None:
    rng, protos, labels, x, descs = _world(0)
    eng = ScoringEngine(x, labels, len(descs), device="cpu", dtype=torch.float64)
    eng.set_all(descs)
    before = eng.scores.clone()
    new = _unit(protos[2] + rng.normal(size=(7, 16)))
    eng.set_class(2, new)
    changed = (eng.scores != before).any(dim=0)
    assert changed.tolist() == [False, False, True, False, False, False]
    descs[2] = new
    full = ScoringEngine(x, labels, len(descs), device="cpu", dtype=torch.float64)
    full.set_all(descs)
    assert torch.allclose(eng.scores, full.scores)
    assert eng.objective()[0] == _full_objective(x, labels, descs)[0]
    assert eng.objective()[1] == pytest.approx(_full_objective(x, labels, descs)[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_candidate_sweep_equals_naive_recomputation(seed: int) -> None:
    rng, protos, labels, x, descs = _world(seed)
    eng = ScoringEngine(x, labels, len(descs), device="cpu", dtype=torch.float64)
    eng.set_all(descs)
    c = int(rng.integers(len(descs)))
    pool = _unit(protos[c] + 1.5 * rng.normal(size=(20, 16)))
    pool[:3] = _unit(protos[(c + 1) % len(descs)] + 0.3 * rng.normal(size=(3, 16)))  # some harmful ones
    members = [sorted(rng.choice(20, size=int(rng.integers(3, 9)), replace=False).tolist()) for _ in range(64)]
    got = eng.evaluate_candidates(c, pool, members, chunk=16)
    for b, idx in enumerate(members):
        trial = list(descs)
        trial[c] = pool[idx]
        n_correct, margin = _full_objective(x, labels, trial)
        assert got.n_correct[b] == n_correct
        assert got.mean_margin[b] == pytest.approx(margin, abs=1e-12)
    # the engine itself is untouched by a sweep
    assert eng.objective() == _full_objective(x, labels, descs)
    best = got.best()
    assert got.n_correct[best] == got.n_correct.max()


def test_errors_name_the_problem() -> None:
    _, _, labels, x, descs = _world(0)
    eng = ScoringEngine(x, labels, len(descs), device="cpu")
    with pytest.raises(EmbeddingError, match="no descriptions yet"):
        eng.feedback()
    with pytest.raises(EmbeddingError, match="descriptions of class 0: no embeddings"):
        eng.set_class(0, np.zeros((0, 16)))
    with pytest.raises(EmbeddingError, match="dimension 8, expected 16"):
        eng.set_class(0, np.ones((2, 8)))
    eng.set_all(descs)
    with pytest.raises(EmbeddingError, match="candidate set 1 is empty"):
        eng.evaluate_candidates(0, descs[0], [[0], []])
    with pytest.raises(EmbeddingError, match="labels"):
        ScoringEngine(x, labels[:-1], len(descs))
    nan = x.copy()
    nan[0, 0] = np.nan
    with pytest.raises(EmbeddingError, match="NaN"):
        ScoringEngine(nan, labels, len(descs))


@pytest.mark.parametrize("n_classes", [1, 2, 3, 7])
def test_kept_top_two_match_a_full_scan_after_any_sequence_of_changes(n_classes: int) -> None:
    """The per-image best other class (the objective's and the sweeps' only use of the matrix) stays exact."""
    rng, _, labels, x, descs = _world(3, n_classes=n_classes, per_class=6)
    eng = ScoringEngine(x, labels, n_classes, device="cpu", dtype=torch.float64)
    eng.set_all(descs)
    lab = torch.as_tensor(labels)
    for step in range(40):
        c = int(rng.integers(n_classes))
        # ties on purpose: every few steps a class copies another's descriptions
        new = descs[int(rng.integers(n_classes))] if step % 5 == 0 else _unit(rng.normal(size=(3, 16)))
        eng.set_class(c, new)
        for exclude in [None, *range(n_classes)]:
            rest = eng.scores.scatter(1, lab[:, None], float("-inf"))
            if exclude is not None:
                rest[:, exclude] = float("-inf")
            assert torch.equal(eng.best_other(exclude), rest.amax(dim=1)), (step, exclude)
        full = feedback(eng.scores, lab, n_classes)
        assert eng.objective() == (full.n_correct, pytest.approx(full.mean_margin))


def test_set_classes_writes_the_same_scores_and_top_two_as_set_class_per_class() -> None:
    rng, protos, labels, x, descs = _world(3, n_classes=9)
    one, many = (ScoringEngine(x, labels, len(descs), device="cpu") for _ in range(2))
    for c, d in enumerate(descs):
        one.set_class(c, d)
    many.set_classes(enumerate(descs))
    assert torch.equal(one.scores, many.scores)  # the same product per column: equal bit for bit
    assert torch.equal(one.margins(), many.margins())
    for c in range(len(descs)):
        assert torch.equal(one.best_other(exclude=c), many.best_other(exclude=c))
    new = {c: _unit(protos[c] + rng.normal(size=(4, 16))) for c in (1, 5, 6)}
    for c, d in new.items():
        one.set_class(c, d)
    many.set_classes(new.items())
    assert torch.equal(one.scores, many.scores) and torch.equal(one.margins(), many.margins())
    with pytest.raises(EmbeddingError, match="outside"):
        many.set_classes([(9, descs[0])])
