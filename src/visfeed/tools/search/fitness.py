"""Running per-image statistics of the item search's logit matrix, and one class's candidate fitness from them.

Why: the search changes one class's column at a time and scores that class's candidates with the other
columns fixed. Recomputing every image's log-sum-exp and strongest rival over all classes for each class
visited made a round cost N x C x C (about 250 s CPU for 8 rounds at 1,000 classes). Here each image keeps
its true logit, its two strongest wrong classes and its sum of exponentials, updated when a column changes,
so a class's candidates cost (its relevant images) x (its candidates):

- a class's *relevant* images are its own and those where its best item could come within ``MARGIN``
  logits of the image's true logit (with ``mean_of_cosines`` a set's cosine is a mean of its items' mean
  cosines, so at most their max; normalised sums have no such bound: every image is relevant). Elsewhere
  no candidate can change an image's correctness and its cross-entropy moves by less than exp(-MARGIN)
  (1e-13), below the search's acceptance threshold (1e-12);
- a class needs another visit only when a change touched one of its relevant images materially (the
  image's true logit, its strongest rival, or a logit within ``MARGIN`` of them); :meth:`LogitStats.set_column`
  says which classes that is.
"""

from __future__ import annotations

import numpy as np

MARGIN = 30.0
"""Logits below an image's reference (true logit, or strongest rival on its own class) that cannot matter."""


class LogitStats:
    """An (N, C) logit matrix with, per image, its true logit, two strongest wrong classes and sum of exps."""

    def __init__(self, logits: np.ndarray, labels: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Statistics of ``logits`` (kept, changed in place); ``bounds`` from :func:`item_bounds` or None.

        ``bounds``: (N, C) upper bounds of any candidate logit of each class on each image and (N,) lower
        bounds of the true class's on its own images (None: no bounds, every image relevant to every class).
        """
        self.logits = logits
        self.y = labels
        self.n, self.c = logits.shape
        self.bound: np.ndarray | None = bounds[0] if bounds is not None else None
        self.low_own: np.ndarray = bounds[1] if bounds is not None else np.full(self.n, -np.inf)
        if self.bound is not None:  # the highest bound of a wrong class, per image
            wrong = self.bound.copy()
            wrong[np.arange(self.n), labels] = -np.inf
            self.bound_max = wrong.max(axis=1)
        self.t = np.empty(self.n)
        self.a1 = np.empty(self.n, dtype=np.int64)
        self.r1 = np.empty(self.n)
        self.a2 = np.empty(self.n, dtype=np.int64)
        self.r2 = np.empty(self.n)
        self.m = np.empty(self.n)
        self.s = np.empty(self.n)
        self.refresh(np.arange(self.n))

    def refresh(self, rows: np.ndarray) -> None:
        """Recompute the statistics of ``rows`` from the matrix (every row: once a round, against drift)."""
        if not len(rows):
            return
        sub = self.logits[rows].copy()
        at = np.arange(len(rows))
        yr = self.y[rows]
        self.t[rows] = sub[at, yr]
        sub[at, yr] = -np.inf
        a1 = sub.argmax(axis=1)
        r1 = sub[at, a1]
        sub[at, a1] = -np.inf
        a2 = sub.argmax(axis=1)
        self.a1[rows], self.r1[rows], self.a2[rows], self.r2[rows] = a1, r1, a2, sub[at, a2]
        m = np.maximum(self.t[rows], r1)
        self.m[rows] = m
        self.s[rows] = np.exp(self.logits[rows] - m[:, None]).sum(axis=1)

    def relevant(self, c: int) -> np.ndarray:
        """Rows where class ``c``'s candidates can matter: its own images and those its bound reaches."""
        if self.bound is None:
            return np.arange(self.n)
        return np.flatnonzero((self.y == c) | (self.bound[:, c] >= self.t - MARGIN))

    def rival(self, c: int, rows: np.ndarray) -> np.ndarray:
        """Per row, the strongest class that is neither ``c`` nor the row's true class."""
        return np.where(self.a1[rows] == c, self.r2[rows], self.r1[rows])

    def others_lse(self, c: int, rows: np.ndarray) -> np.ndarray:
        """Per row, log-sum-exp over every class but ``c``.

        From the running sum where another class is at least as high as ``c`` (then exp(c) is at most half
        the sum: no cancellation); recomputed from the row where ``c`` leads.
        """
        yr = self.y[rows]
        top_other = np.where(yr == c, self.r1[rows], np.maximum(self.t[rows], self.rival(c, rows)))
        own = self.logits[rows, c]
        m = self.m[rows]
        with np.errstate(divide="ignore"):
            out = m + np.log(self.s[rows] - np.exp(own - m))
        leads = np.flatnonzero(own > top_other)
        if len(leads):
            sub = self.logits[rows[leads]].copy()
            sub[:, c] = -np.inf
            top = top_other[leads]
            out[leads] = top + np.log(np.exp(sub - top[:, None]).sum(axis=1))
        return out

    def fitness(self, c: int, rows: np.ndarray, cand: np.ndarray, ce_weight: float) -> np.ndarray:
        """Fitness of each candidate column of class ``c`` (``cand``: (len(rows), K) logits), the others fixed.

        Sums over ``rows`` only, divided by every image's count: images outside them add the same to
        every candidate (up to exp(-MARGIN)), so the differences between candidates are those of the
        whole-matrix fitness (accuracy − ``ce_weight`` × mean cross-entropy).
        """
        own = self.y[rows] == c
        t, rival = self.t[rows], self.rival(c, rows)
        ce = np.logaddexp(self.others_lse(c, rows)[:, None], cand).sum(axis=0) - cand[own].sum(axis=0) - t[~own].sum()
        # c's own images: right where the candidate beats every rival; the others: where the true class beats
        # its strongest fixed rival and the candidate (the only (rows, K) work besides the log-sum-exp)
        correct = (cand[own] > rival[own, None]).sum(axis=0) + (cand < t[:, None])[~own & (t > rival)].sum(axis=0)
        return np.asarray((correct - ce_weight * ce) / self.n)

    def set_column(self, c: int, new: np.ndarray, dirty: np.ndarray) -> None:
        """Replace class ``c``'s column; marks in ``dirty`` the classes whose relevant images it touched."""
        old = self.logits[:, c].copy()
        t_before, r1_before = self.t.copy(), self.r1.copy()
        self.logits[:, c] = new
        structural = (
            (self.y == c) | (self.a1 == c) | (self.a2 == c) | (new > self.r2) | (new >= self.m) | (old >= self.m)
        )
        rows = np.flatnonzero(structural)
        rest = np.flatnonzero(~structural)
        m = self.m[rest]
        self.s[rest] += np.exp(new[rest] - m) - np.exp(old[rest] - m)
        self.refresh(rows)
        self._touch(c, np.maximum(old, new), np.minimum(t_before, self.t), np.minimum(r1_before, self.r1), dirty)

    def _touch(self, c: int, high: np.ndarray, t_low: np.ndarray, r1_low: np.ndarray, dirty: np.ndarray) -> None:
        """Classes a change of column ``c`` (``high``: its higher value per image) may have moved.

        Images of ``c`` (their true logit moved): every class they are relevant to. Other images: their own
        class where ``high`` came within ``MARGIN`` of the higher of their strongest rival and the class's
        lowest possible logit (below both, the rival stays and the cross-entropy of every candidate moves by
        under exp(-MARGIN)); a class they are relevant to where ``high`` + its bound came within ``MARGIN``
        of twice the true logit (the change of the log-sum-exp times the candidates' share of it).
        """
        dirty[c] = True
        if self.bound is None:
            dirty[:] = True
            return
        mine = self.y == c
        own_side = ~mine & (high >= np.maximum(r1_low, self.low_own) - MARGIN)
        dirty[self.y[own_side]] = True
        clean = np.flatnonzero(~dirty)  # only these can change: the mask is (rows, clean classes)
        rows = np.flatnonzero(mine | (high + self.bound_max >= 2 * t_low - MARGIN))
        for start in range(0, len(rows) if len(clean) else 0, 256):
            r = rows[start : start + 256]
            b, t = self.bound[np.ix_(r, clean)], t_low[r][:, None]
            hit = (b >= t - MARGIN) & (mine[r][:, None] | (high[r][:, None] + b >= 2 * t - MARGIN))
            dirty[clean[hit.any(axis=0)]] = True


def item_bounds(
    x: np.ndarray, labels: np.ndarray, emb: list[np.ndarray], counts: list[np.ndarray], scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """``scale`` × the best item cosine of each class on each image (N, C), and the true class's worst (N,).

    Under mean-of-cosines a set scores a count-weighted mean of its items' mean cosines, so no set of a
    class's items scores outside them. Computed in blocks of classes.
    """
    out = np.empty((len(x), len(emb)))
    low = np.empty(len(x))
    budget = max(1, 8_000_000 // max(1, len(x)))  # items per block: an (N, items) product of about 64 MB
    start = 0
    while start < len(emb):
        stop, width = start, 0
        while stop < len(emb) and (width == 0 or width + len(emb[stop]) <= budget):
            width += len(emb[stop])
            stop += 1
        means = np.concatenate([e / k[:, None] for e, k in zip(emb[start:stop], counts[start:stop], strict=True)])
        cos = x @ means.T
        edges = np.cumsum([0, *(len(e) for e in emb[start : stop - 1])])
        out[:, start:stop] = np.maximum.reduceat(cos, edges, axis=1)
        mine = np.flatnonzero((labels >= start) & (labels < stop))
        mins = np.minimum.reduceat(cos[mine], edges, axis=1)
        low[mine] = mins[np.arange(len(mine)), labels[mine] - start]
        start = stop
    return scale * out, scale * low
