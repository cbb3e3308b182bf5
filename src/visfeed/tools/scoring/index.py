"""FAISS inner-product indexes: nearest descriptions of chosen classes, and top-k classes per image.

The mutation filter asks "which descriptions of the classes this class is confused with are closest to
this new text?"; with normalized embeddings inner product is cosine similarity. The index is rebuilt
cheaply per iteration (flat, exact) and moved to the GPU when faiss sees one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from visfeed.errors import EmbeddingError
from visfeed.tools.scoring.measures import check_embeddings

log = logging.getLogger(__name__)


def _maybe_gpu(index: faiss.Index) -> faiss.Index:
    """Move an index to all GPUs when this faiss build has any; keep it on CPU otherwise."""
    if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:
        return faiss.index_cpu_to_all_gpus(index)
    return index


def _as_f32(name: str, emb: np.ndarray, dim: int | None = None) -> np.ndarray:
    arr = np.ascontiguousarray(emb, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    check_embeddings(name, arr, dim)
    return arr


EXACT_ROWS = 4096
"""Searches over at most this many descriptions run in numpy (exact, no FAISS call overhead)."""


@dataclass(frozen=True)
class Neighbour:
    """One description found near a query text."""

    class_index: int
    text: str
    similarity: float


class DescriptionIndex:
    """Every description of every class, searchable by similarity within a chosen set of classes.

    A search over at most :data:`EXACT_ROWS` descriptions (the filter asks about a class's top-m confused
    classes, once per class) is an exact inner product in numpy: a FAISS search of a few dozen rows cost
    7 ms of CPU per call (35 ms of wall time on the shared 2 cores, its threads waiting for cores), which
    made the filter of a 1,000-class iteration take minutes. Larger searches use the FAISS flat index
    (moved to the GPU when faiss sees one), built on the first of them.
    """

    def __init__(self, texts: Sequence[str], owners: Sequence[int], embeddings: np.ndarray) -> None:
        if len(texts) != len(owners):
            raise EmbeddingError(f"{len(texts)} descriptions but {len(owners)} owner classes")
        emb = _as_f32("description embeddings", embeddings)
        if emb.shape[0] != len(texts):
            raise EmbeddingError(f"{len(texts)} descriptions but {emb.shape[0]} embeddings")
        self.texts = list(texts)
        self.owners = np.asarray(owners, dtype=np.int64)
        self.dim = emb.shape[1]
        self._emb = emb
        self._index: faiss.Index | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def nearest(self, queries: np.ndarray, classes: Sequence[int] | None = None, k: int = 5) -> list[list[Neighbour]]:
        """For each query embedding, the ``k`` most similar descriptions owned by ``classes`` (None: all)."""
        q = _as_f32("query embeddings", queries, self.dim)
        if classes is None:
            allowed = np.arange(len(self.texts), dtype=np.int64)
        else:
            allowed = np.flatnonzero(np.isin(self.owners, np.asarray(list(classes), dtype=np.int64)))
        k = min(k, len(allowed))
        if k == 0:
            return [[] for _ in range(q.shape[0])]
        if len(allowed) == len(self.texts) and len(allowed) > EXACT_ROWS:
            if self._index is None:
                cpu = faiss.IndexFlatIP(self.dim)
                cpu.add(self._emb)
                self._index = _maybe_gpu(cpu)
            sims, ids = self._index.search(q, k)
        else:
            all_sims = q @ self._emb[allowed].T  # exact, as a flat index; ties: the earlier description
            order = np.argsort(-all_sims, axis=1, kind="stable")[:, :k]
            sims, ids = np.take_along_axis(all_sims, order, axis=1), allowed[order]
        return [
            [Neighbour(int(self.owners[i]), self.texts[i], float(s)) for s, i in zip(srow, irow, strict=True) if i >= 0]
            for srow, irow in zip(sims, ids, strict=True)
        ]


def top_classes(image_emb: np.ndarray, centroids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k classes per image by ensembled score (inner product with class centroids), for large label sets.

    Returns (scores, class indices), each (N, k), best first.
    """
    cen = _as_f32("class centroids", centroids)
    x = _as_f32("image embeddings", image_emb, cen.shape[1])
    index = faiss.IndexFlatIP(cen.shape[1])
    index.add(cen)
    scores, ids = _maybe_gpu(index).search(x, min(k, cen.shape[0]))
    return scores, ids
