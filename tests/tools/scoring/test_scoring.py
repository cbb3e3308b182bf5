import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from visfeed.errors import EmbeddingError
from visfeed.tools.scoring.engine import ScoringEngine
from visfeed.tools.scoring.measures import feedback, lambda_confusion, margins, top_confused

# Four images, three classes; scores chosen so every lambda-confusion case is hand-checkable with
# lambda = 0.9, logit scale 100: c' counts when s_c' - s_y >= ln(0.9) / 100 = -0.0010536.
S = torch.tensor(
    [
        [0.500, 0.4995, 0.10],  # y=0 correct, class 1 within lambda (near miss)
        [0.30, 0.10, 0.40],  # y=0 wrong (pred 2)
        [0.20, 0.60, 0.5992],  # y=1 correct, class 2 a near miss
        [0.70, 0.19, 0.20],  # y=2 wrong (pred 0); class 1 passes only the raw-score test (0.19 >= 0.18)
    ]
)
Y = torch.tensor([0, 0, 1, 2])


def test_feedback_matches_hand_computation() -> None:
    fb = feedback(S, Y, 3, lam=0.9, m=5)
    assert fb.accuracy == 0.5
    assert fb.n_correct == 2
    np.testing.assert_allclose(fb.per_class_accuracy, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(fb.per_class_count, [2, 1, 1])
    assert fb.mean_margin == pytest.approx((0.0005 - 0.1 + 0.0008 - 0.5) / 4, abs=1e-6)
    np.testing.assert_array_equal(fb.confusion, [[1, 0, 1], [0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(fb.lam_confusion, [[0, 1, 1], [0, 0, 1], [1, 0, 0]])
    assert fb.top_confused == [[1, 2], [2], [0]]


def test_lambda_confusion_equals_explicit_softmax_rule() -> None:
    counts = lambda_confusion(S, Y, 3, lam=0.9, logit_scale=100.0)
    p = torch.softmax(100.0 * S.double(), dim=1)
    expected = torch.zeros(3, 3)
    for i, y in enumerate(Y.tolist()):
        for c in range(3):
            if c != y and p[i, c] >= 0.9 * p[i, y]:
                expected[y, c] += 1
    assert torch.equal(counts, expected)


def test_raw_score_option_differs_where_expected() -> None:
    raw = lambda_confusion(S, Y, 3, lam=0.9, use_softmax=False)
    assert raw.tolist() == [[0, 1, 1], [0, 0, 1], [1, 1, 0]]


def test_lambda_one_counts_only_misses_and_ties() -> None:
    # S's misses (rows 1 and 3), plus exact ties: class 1 ties the true class 0, then all three classes tie
    scores = torch.cat([S, torch.tensor([[0.25, 0.25, 0.10], [0.30, 0.30, 0.30]])])
    labels = torch.cat([Y, torch.tensor([0, 2])])
    expected = [[0, 1, 1], [0, 0, 0], [2, 1, 0]]
    assert lambda_confusion(scores, labels, 3, lam=1.0).tolist() == expected
    assert lambda_confusion(scores, labels, 3, lam=1.0, use_softmax=False).tolist() == expected
    assert lambda_confusion(S, Y, 3, lam=1.0).tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]  # near misses do not
    with pytest.raises(ValueError, match="lambda"):
        lambda_confusion(S, Y, 3, lam=0.0)


def test_top_confused_keeps_positive_counts_only_and_caps_m() -> None:
    m = np.array([[0, 3, 1, 2], [0, 0, 0, 0], [5, 5, 0, 1], [0, 0, 0, 0]])
    assert top_confused(m, m=2) == [[1, 3], [], [0, 1], []]


def test_margins_and_ensembled_score_equal_mean_of_cosines() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    descs = [rng.normal(size=(n, 8)) for n in (3, 1, 2)]
    descs = [d / np.linalg.norm(d, axis=1, keepdims=True) for d in descs]
    labels = np.array([0, 1, 2, 0, 1])
    engine = ScoringEngine(x, labels, 3, device="cpu", dtype=torch.float64)
    engine.set_all(descs)
    mean_cos = np.stack([(x @ d.T).mean(axis=1) for d in descs], axis=1)  # the ensembled class score
    np.testing.assert_allclose(engine.scores.numpy(), mean_cos, atol=1e-12)
    engine.set_class(1, descs[2])  # one column through the incremental path
    mean_cos[:, 1] = (x @ descs[2].T).mean(axis=1)
    np.testing.assert_allclose(engine.scores.numpy(), mean_cos, atol=1e-12)
    true = mean_cos[np.arange(5), labels]
    other = np.where(np.eye(3, dtype=bool)[labels], -np.inf, mean_cos).max(axis=1)
    np.testing.assert_allclose(margins(engine.scores, torch.as_tensor(labels)).numpy(), true - other, atol=1e-12)
    assert margins(S, Y).tolist() == pytest.approx([0.0005, -0.1, 0.0008, -0.5], abs=1e-6)
    assert math.isclose(float(margins(S, Y)[0]), 0.0005, abs_tol=1e-6)


def test_check_embeddings_rejects_nan() -> None:
    from visfeed.tools.scoring.measures import check_embeddings

    with pytest.raises(EmbeddingError, match="NaN"):
        check_embeddings("x", np.array([[np.nan, 1.0]]))
    with pytest.raises(EmbeddingError, match="dimension 2, expected 3"):
        check_embeddings("x", np.ones((1, 2)), 3)
    with pytest.raises(EmbeddingError, match="empty"):
        check_embeddings("x", np.ones((0, 2)))


@pytest.mark.parametrize("dense_limit", [1000, 3])
def test_feedback_in_blocks_equals_feedback_with_dense_or_sparse_tables(monkeypatch, dense_limit: int) -> None:
    """Blocks of a few images and sparse tables (above DENSE_CLASSES) give the same feedback as one pass."""
    import visfeed.tools.scoring.measures as scoring

    monkeypatch.setattr(scoring, "DENSE_CLASSES", dense_limit)
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(7).repeat_interleave(5)
    scores = torch.rand((35, 7), generator=gen, dtype=torch.float64) * 0.05
    scores[3, [1, 2]] = scores[3, 0].item()  # exact ties: not a win, as in feedback()
    ref = feedback(scores, labels, 7, lam=0.9, m=3, logit_scale=100.0)
    got = scoring.feedback_in_blocks(scores, labels, lam=0.9, m=3, logit_scale=100.0, block_elements=20)
    assert got.n_correct == ref.n_correct and got.accuracy == ref.accuracy
    assert got.mean_margin == pytest.approx(ref.mean_margin)
    np.testing.assert_array_equal(got.per_class_accuracy, ref.per_class_accuracy)
    np.testing.assert_array_equal(scoring.dense(got.confusion), ref.confusion)
    np.testing.assert_array_equal(scoring.dense(got.lam_confusion), ref.lam_confusion)
    assert got.top_confused == ref.top_confused
    assert sp.issparse(got.lam_confusion) == (dense_limit < 7)
