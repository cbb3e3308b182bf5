import numpy as np
import pytest

from visfeed.errors import EmbeddingError
from visfeed.tools.scoring.index import DescriptionIndex, top_classes


def _unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("exact_rows", [4096, 0])  # numpy for small searches; FAISS above the limit
def test_nearest_is_restricted_to_the_named_classes_and_exact(monkeypatch, exact_rows: int) -> None:
    import visfeed.tools.scoring.index as index_module

    monkeypatch.setattr(index_module, "EXACT_ROWS", exact_rows)
    rng = np.random.default_rng(0)
    emb = _unit(rng.normal(size=(30, 16)))
    owners = np.repeat(np.arange(6), 5)
    index = DescriptionIndex([f"d{i}" for i in range(30)], owners.tolist(), emb)
    query = _unit(rng.normal(size=(2, 16)))
    got = index.nearest(query, classes=[1, 4], k=3)
    allowed = np.flatnonzero(np.isin(owners, [1, 4]))
    for q, hits in zip(query, got, strict=True):
        sims = emb[allowed] @ q
        expected = allowed[np.argsort(-sims)[:3]]
        assert [h.text for h in hits] == [f"d{i}" for i in expected]
        assert all(h.class_index in (1, 4) for h in hits)
        assert hits[0].similarity == pytest.approx(float(sims.max()), abs=1e-5)
    everything = index.nearest(emb[7], k=1)[0]
    assert everything[0].text == "d7" and everything[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert index.nearest(query, classes=[], k=3) == [[], []]


def test_top_classes_matches_dense_scores() -> None:
    rng = np.random.default_rng(1)
    cen = rng.normal(size=(50, 8)).astype(np.float32) * 0.3
    x = _unit(rng.normal(size=(20, 8)))
    scores, ids = top_classes(x, cen, k=4)
    dense = x @ cen.T
    np.testing.assert_array_equal(ids, np.argsort(-dense, axis=1)[:, :4])
    np.testing.assert_allclose(scores, np.sort(dense, axis=1)[:, ::-1][:, :4], rtol=1e-5, atol=1e-6)


def test_index_input_errors() -> None:
    with pytest.raises(EmbeddingError, match="2 descriptions but 1 owner"):
        DescriptionIndex(["a", "b"], [0], np.ones((2, 4)))
    index = DescriptionIndex(["a"], [0], _unit(np.ones((1, 4))))
    with pytest.raises(EmbeddingError, match="dimension 3, expected 4"):
        index.nearest(np.ones((1, 3)))
