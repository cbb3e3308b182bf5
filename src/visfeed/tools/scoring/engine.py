"""Incremental scoring: one split's image embeddings, one score column per class, cheap candidate sweeps.

Why a stateful engine on top of the pure functions in :mod:`visfeed.tools.scoring.measures`: the optimizer changes
one class at a time and evaluates thousands of candidate description sets for it. Recomputing every class
for every candidate (as the method's reference code does) wastes almost all of the work, so the engine
keeps the score matrix and updates only the column that changed, and evaluates a whole batch of candidate
sets for one class in one matrix product over precomputed per-description similarities.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from visfeed.errors import EmbeddingError
from visfeed.tools.embedding.device import pick_device
from visfeed.tools.scoring.measures import Feedback, centroid, check_embeddings, feedback_in_blocks

COLUMN_BLOCK = 256
"""Columns :meth:`ScoringEngine.set_classes` writes together (a block of N x 256 scores)."""


@dataclass(frozen=True)
class CandidateScores:
    """Objective of each candidate set: correct images (primary) and mean margin (tie-break)."""

    n_correct: np.ndarray
    mean_margin: np.ndarray
    n_images: int

    @property
    def accuracy(self) -> np.ndarray:
        """Fraction of correct images per candidate."""
        return self.n_correct / self.n_images

    def best(self) -> int:
        """Index of the best candidate: most correct images, then largest mean margin, then lowest index."""
        order = np.lexsort((np.arange(len(self.n_correct)), -self.mean_margin, -self.n_correct))
        return int(order[0])


def members_to_weights(
    members: Sequence[Sequence[int]], pool_size: int, device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Turn candidate sets (lists of pool indices) into a (B, P) matrix of averaging weights."""
    if not members:
        raise EmbeddingError("no candidate sets to evaluate")
    w = torch.zeros((len(members), pool_size), dtype=dtype, device=device)
    for b, idx in enumerate(members):
        uniq = sorted(set(idx))
        if not uniq:
            raise EmbeddingError(f"candidate set {b} is empty: every class needs at least one description")
        if uniq[0] < 0 or uniq[-1] >= pool_size:
            raise EmbeddingError(f"candidate set {b} refers to pool index outside 0..{pool_size - 1}")
        w[b, uniq] = 1.0 / len(uniq)
    return w


class ScoringEngine:
    """Score matrix of one split, updated one class column at a time.

    Holds the image embeddings (N, d), labels (N,) and the current class centroids (C, d); the score
    matrix S = X @ centroids.T is kept up to date so feedback and candidate sweeps never recompute
    unchanged classes. Runs on CUDA through torch when available (``device="auto"``).

    Per image it also keeps the true class's score and the two best other classes (value and index),
    read from S (so every number comes from the one column product that wrote it, whatever the order of
    changes: a resumed run scores exactly as an uninterrupted one). The objective and a candidate sweep
    need, per image, only the best score among the classes other than the true one and the one being
    changed, which the top two give in O(N); a column change updates them in O(N) too (rows whose top two
    held that column are rescanned). Full feedback (confusions) reads S a block of images at a time, so
    no (N, C) temporary and no dense (C, C) table above :data:`~visfeed.tools.scoring.measures.DENSE_CLASSES`.
    Without the top two, every objective and sweep cloned and scanned S: a crossover cost C x N x C.
    """

    def __init__(
        self,
        image_emb: np.ndarray | torch.Tensor,
        labels: Sequence[int] | np.ndarray,
        n_classes: int,
        *,
        device: str = "auto",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        check_embeddings("image embeddings", image_emb)
        self.device = pick_device(device)
        self.dtype = dtype
        self.x = torch.as_tensor(np.asarray(image_emb), dtype=dtype, device=self.device)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=self.device)
        if self.labels.numel() != self.x.shape[0]:
            raise EmbeddingError(f"{self.x.shape[0]} image embeddings but {self.labels.numel()} labels")
        if n_classes < 1:
            raise EmbeddingError("n_classes must be at least 1")
        if int(self.labels.min()) < 0 or int(self.labels.max()) >= n_classes:
            raise EmbeddingError(f"labels must lie in 0..{n_classes - 1}")
        self.n_classes = n_classes
        self.dim = int(self.x.shape[1])
        self.centroids = torch.zeros((n_classes, self.dim), dtype=dtype, device=self.device)
        self.scores = torch.zeros((self.x.shape[0], n_classes), dtype=dtype, device=self.device)
        self._is_set = torch.zeros(n_classes, dtype=torch.bool, device=self.device)
        self._rows = torch.arange(self.x.shape[0], device=self.device)
        self._rescan()

    @property
    def n_images(self) -> int:
        """Number of images in the split."""
        return int(self.x.shape[0])

    def _as_tensor(self, name: str, emb: np.ndarray | torch.Tensor) -> torch.Tensor:
        check_embeddings(name, emb, self.dim)
        return torch.as_tensor(np.asarray(emb) if not isinstance(emb, torch.Tensor) else emb).to(
            device=self.device, dtype=self.dtype
        )

    def _top2(self, scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per row of ``scores``: best and second-best other set class (value, index); -inf/-1 where none."""
        rest = scores.masked_fill(~self._is_set, float("-inf")).scatter_(1, labels[:, None], float("-inf"))
        k = min(2, self.n_classes)
        val, idx = rest.topk(k, dim=1)
        if k < 2:
            val = torch.cat([val, torch.full_like(val, float("-inf"))], dim=1)
            idx = torch.cat([idx, torch.full_like(idx, -1)], dim=1)
        idx = torch.where(torch.isneginf(val), torch.full_like(idx, -1), idx)
        return val[:, 0], idx[:, 0], val[:, 1], idx[:, 1]

    def _rescan(self, rows: torch.Tensor | None = None, block_elements: int = 1 << 24) -> None:
        """Reread the true score and the top two other classes of every row (or of ``rows``) from S, in blocks."""
        if rows is None:
            n = self.x.shape[0]
            self._true = torch.empty(n, dtype=self.dtype, device=self.device)
            self._v1, self._v2 = torch.empty_like(self._true), torch.empty_like(self._true)
            self._i1 = torch.empty(n, dtype=torch.long, device=self.device)
            self._i2 = torch.empty_like(self._i1)
            rows = self._rows
        step = max(1, block_elements // self.n_classes)
        for start in range(0, rows.numel(), step):
            r = rows[start : start + step]
            scores = self.scores[r]
            self._true[r] = scores.gather(1, self.labels[r][:, None]).squeeze(1)
            self._v1[r], self._i1[r], self._v2[r], self._i2[r] = self._top2(scores, self.labels[r])

    def set_column(self, c: int, cen: torch.Tensor, col: torch.Tensor | None = None) -> None:
        """Make ``cen`` class ``c``'s centroid and ``col`` (default X @ cen) its score column; keep the top two."""
        col = self.x @ cen if col is None else col
        self.centroids[c] = cen
        self.scores[:, c] = col
        self._is_set[c] = True
        own = self.labels == c
        self._true = torch.where(own, col, self._true)
        # Rows whose top two held c: rescore them. Others: c enters their top two if it beats the second.
        held = ~own & ((self._i1 == c) | (self._i2 == c))
        free = ~own & ~held
        first = free & (col > self._v1)
        second = free & ~first & (col > self._v2)
        self._v2 = torch.where(first, self._v1, torch.where(second, col, self._v2))
        self._i2 = torch.where(first, self._i1, torch.where(second, torch.full_like(self._i2, c), self._i2))
        self._v1 = torch.where(first, col, self._v1)
        self._i1 = torch.where(first, torch.full_like(self._i1, c), self._i1)
        self._rescan(self._rows[held])

    def set_class(self, c: int, desc_emb: np.ndarray | torch.Tensor) -> None:
        """Replace class ``c``'s descriptions: recompute its centroid and only its score column."""
        if not 0 <= c < self.n_classes:
            raise EmbeddingError(f"class index {c} outside 0..{self.n_classes - 1}")
        self.set_column(c, centroid(self._as_tensor(f"descriptions of class {c}", desc_emb)))

    def set_classes(self, desc_embs: Iterable[tuple[int, np.ndarray | torch.Tensor]]) -> None:
        """Replace the descriptions of many classes: their columns, then one blocked rescan of the top two.

        Why not :meth:`set_class` per class: its O(N) upkeep of the top two, repeated for every class, costs
        C x N when all classes change (a session's first set, the final evaluation's baselines: minutes
        at 21,000 classes), where one rescan reads S once. Each column is the same matrix-vector product
        as :meth:`set_class` writes, so the scores agree bit for bit whichever path wrote them.
        """
        idx: list[int] = []
        cols: list[torch.Tensor] = []
        for c, emb in desc_embs:  # consumed one class at a time: a caller may embed lazily
            if not 0 <= c < self.n_classes:
                raise EmbeddingError(f"class index {c} outside 0..{self.n_classes - 1}")
            if c in idx or len(idx) == COLUMN_BLOCK:
                self._write_columns(idx, cols)
                idx, cols = [], []
            cen = centroid(self._as_tensor(f"descriptions of class {c}", emb))
            self.centroids[c] = cen
            idx.append(c)
            cols.append(self.x @ cen)
            self._is_set[c] = True
        if idx:
            self._write_columns(idx, cols)
        self._rescan()

    def _write_columns(self, idx: list[int], cols: list[torch.Tensor]) -> None:
        # A block of columns goes in row by row: one column at a time writes N elements a row apart each
        # (a cache miss apiece), which dominated the final evaluation at 21,000 classes.
        self.scores[:, torch.as_tensor(idx, device=self.device)] = torch.stack(cols, dim=1)

    def best_other(self, exclude: int | None = None) -> torch.Tensor:
        """Per image: the best score among classes other than its true one (and ``exclude``); -inf if none."""
        if exclude is None:
            return self._v1
        return torch.where(self._i1 == exclude, self._v2, self._v1)

    def set_all(self, desc_embs: Sequence[np.ndarray | torch.Tensor]) -> None:
        """Set every class at once (one matrix product)."""
        if len(desc_embs) != self.n_classes:
            raise EmbeddingError(f"got descriptions for {len(desc_embs)} classes, expected {self.n_classes}")
        cens = [centroid(self._as_tensor(f"descriptions of class {c}", e)) for c, e in enumerate(desc_embs)]
        self.centroids = torch.stack(cens)
        self.scores = self.x @ self.centroids.T
        self._is_set[:] = True
        self._rescan()

    def _require_all_set(self) -> None:
        if not bool(self._is_set.all()):
            missing = torch.nonzero(~self._is_set).flatten().tolist()[:5]
            raise EmbeddingError(f"classes {missing} have no descriptions yet")

    def feedback(
        self, *, lam: float = 0.9, m: int = 5, logit_scale: float = 100.0, use_softmax: bool = True
    ) -> Feedback:
        """Full visual feedback on the current descriptions."""
        self._require_all_set()
        return feedback_in_blocks(
            self.scores, self.labels, lam=lam, m=m, logit_scale=logit_scale, use_softmax=use_softmax
        )

    def margins(self) -> torch.Tensor:
        """Per image: true-class score minus the best other class's score (positive = correct)."""
        self._require_all_set()
        return self._true - self._v1

    def objective(self) -> tuple[int, float]:
        """Correct images and mean margin of the current descriptions."""
        marg = self.margins()
        return int((marg > 0).sum()), float(marg.mean())

    def evaluate_candidates(
        self,
        c: int,
        pool_emb: np.ndarray | torch.Tensor,
        members: Sequence[Sequence[int]],
        *,
        chunk: int = 8192,
    ) -> CandidateScores:
        """Objective of the whole split for each candidate description set of class ``c``.

        ``pool_emb`` (P, d) holds every description that may appear in a candidate; ``members`` lists, per
        candidate, the pool indices it uses. A candidate's score column is a weighted sum of the
        precomputed pool similarities, so a batch costs one (n_relevant, P) @ (P, B) product. Images whose
        outcome cannot depend on class c's column are skipped exactly: for an image of another class, the
        candidate column can only matter if the mean of its top-k pool similarities (k = smallest set size)
        exceeds the image's best score among the remaining classes.
        """
        self._require_all_set()
        if not 0 <= c < self.n_classes:
            raise EmbeddingError(f"class index {c} outside 0..{self.n_classes - 1}")
        pool = self._as_tensor(f"candidate pool of class {c}", pool_emb)
        weights = members_to_weights(members, pool.shape[0], self.device, self.dtype)
        labels = self.labels
        true = self._true
        r = self.best_other(exclude=c)

        sims = self.x @ pool.T  # (N, P): the per-description similarities, computed once per sweep
        k_min = int((weights > 0).sum(dim=1).min())
        bound = sims.topk(min(k_min, sims.shape[1]), dim=1).values.mean(dim=1)
        own = labels == c
        relevant = own | (bound > r)
        # Images that cannot be affected: correct iff true > r, margin true - r.
        fixed = ~relevant
        fixed_correct = int((true[fixed] > r[fixed]).sum())
        fixed_margin = float((true[fixed] - r[fixed]).sum())

        q = sims[relevant]
        r_rel, true_rel, own_rel = r[relevant], true[relevant], own[relevant]
        n_correct = np.empty(len(members), dtype=np.int64)
        margin_sum = np.empty(len(members), dtype=np.float64)
        for start in range(0, len(members), chunk):
            v = q @ weights[start : start + chunk].T  # (n_rel, b): candidate column on relevant images
            m_own = v - r_rel[:, None]
            m_other = true_rel[:, None] - torch.maximum(r_rel[:, None], v)
            marg = torch.where(own_rel[:, None], m_own, m_other)
            n_correct[start : start + chunk] = (marg > 0).sum(dim=0).cpu().numpy() + fixed_correct
            margin_sum[start : start + chunk] = marg.sum(dim=0, dtype=torch.float64).cpu().numpy() + fixed_margin
        return CandidateScores(n_correct=n_correct, mean_margin=margin_sum / self.n_images, n_images=self.n_images)
