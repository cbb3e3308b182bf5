"""ProAPO's search machinery: its fitness, scored for many candidates at once, its operators and elitism.

Why a module of its own: both of ProAPO's stages (:mod:`visfeed.tools.search.proapo`) search with it, over template
sets and over per-group item assignments alike, and it is tested against brute force on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from visfeed.tools.scoring.image_line import normalise_rows


@dataclass(frozen=True)
class Fitness:
    """ProAPO's fitness weights (its code's defaults; accuracies in percent)."""

    top1: float = 0.1
    top5: float = 0.1
    redundancy: float = 0.05
    ce: float = 10.0


@dataclass(frozen=True)
class Budget:
    """How long each stage searches (its code's defaults), and how many candidates each operator makes."""

    template_iterations: int = 8
    outer: int = 3
    inner: int = 4
    max_groups: int = 4
    elites: int = 4
    per_operator: int = 8
    fresh: int = 4
    crossovers: int = 16
    start_samples: int = 32


DEFAULT_FITNESS = Fitness()
DEFAULT_BUDGET = Budget()


def lse(a: np.ndarray, axis: int) -> np.ndarray:
    """Log-sum-exp along ``axis``, safe for rows of -inf."""
    top = a.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.squeeze(top, axis) + np.log(np.exp(a - top).sum(axis=axis))


def _redundancy(v: np.ndarray) -> float:
    sim = v @ v.T
    return float(np.sqrt((np.triu(sim, 1) ** 2).sum()))


class Scorer:
    """ProAPO's fitness of whole class-vector matrices, and of many changes to one group of columns at once."""

    def __init__(self, image_emb: np.ndarray, labels: np.ndarray, scale: float, weights: Fitness) -> None:
        self.x = normalise_rows(image_emb)
        self.y = np.asarray(labels, dtype=np.int64)
        self.scale = scale
        self.w = weights

    def _combine(self, top1: np.ndarray, top5: np.ndarray, red: np.ndarray, ce: np.ndarray) -> np.ndarray:
        w = self.w
        return w.top1 * 100 * top1 + w.top5 * 100 * top5 + w.redundancy * red - w.ce * ce

    def full(self, vectors: np.ndarray) -> float:
        """Fitness of one (C, D) matrix of class vectors."""
        logits = self.scale * self.x @ vectors.T
        true = logits[np.arange(len(self.y)), self.y]
        rank = (logits > true[:, None]).sum(axis=1)
        ce = float((lse(logits, 1) - true).mean())
        out = self._combine(np.mean(rank == 0), np.mean(rank < 5), np.asarray(_redundancy(vectors)), np.asarray(ce))
        return float(out)

    def per_class_ce(self, vectors: np.ndarray) -> np.ndarray:
        """Mean cross-entropy of each class's images (NaN for a class without one)."""
        logits = self.scale * self.x @ vectors.T
        ce = lse(logits, 1) - logits[np.arange(len(self.y)), self.y]
        n = vectors.shape[0]
        sums = np.bincount(self.y, weights=ce, minlength=n)
        counts = np.bincount(self.y, minlength=n)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def group(self, vectors: np.ndarray, group: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
        """A function scoring (K, g, D) replacements of the ``group`` columns, the others kept fixed."""
        g = np.asarray(group)
        fixed = np.setdiff1d(np.arange(vectors.shape[0]), g)
        logits = self.scale * self.x @ vectors[fixed].T  # (N, F)
        lse_fixed = lse(logits, 1) if fixed.size else np.full(len(self.y), -np.inf)
        pos = {int(c): i for i, c in enumerate(g)}
        in_g = np.array([int(c) in pos for c in self.y])
        gpos = np.array([pos.get(int(c), 0) for c in self.y])
        fcol = np.searchsorted(fixed, self.y)
        out_rows = np.flatnonzero(~in_g)
        true_out = logits[out_rows, fcol[out_rows]]
        rank_out = (logits[out_rows] > true_out[:, None]).sum(axis=1)
        in_rows = np.flatnonzero(in_g)
        fixed_in = logits[in_rows]  # (n_in, F)
        vf = vectors[fixed]
        sim_ff = vf @ vf.T
        red_fixed = float((np.triu(sim_ff, 1) ** 2).sum())
        n = len(self.y)

        def score(cands: np.ndarray) -> np.ndarray:
            lg = self.scale * np.einsum("nd,kgd->kng", self.x, cands)  # (K, N, g)
            true = np.empty((cands.shape[0], n))
            true[:, out_rows] = true_out
            true[:, in_rows] = lg[:, in_rows, gpos[in_rows]]
            rank = (lg > true[:, :, None]).sum(axis=2)
            rank[:, out_rows] += rank_out
            rank[:, in_rows] += (fixed_in[None] > true[:, in_rows, None]).sum(axis=2)
            ce = (np.logaddexp(lse_fixed[None], lse(lg, 2)) - true).mean(axis=1)
            cross = (np.einsum("kgd,fd->kgf", cands, vf) ** 2).sum(axis=(1, 2))
            inner = np.einsum("kgd,khd->kgh", cands, cands)
            within = (np.triu(inner, 1) ** 2).sum(axis=(1, 2))
            red = np.sqrt(red_fixed + cross + within)
            return self._combine((rank == 0).mean(axis=1), (rank < 5).mean(axis=1), red, ce)

        return score


Assignment = tuple[frozenset[int], ...]


@dataclass
class Operators:
    """ProAPO's edit operators over assignments (one item set per position), seeded."""

    sizes: Sequence[int]
    rng: np.random.Generator
    max_items: int = 16

    def add(self, a: Assignment) -> Assignment | None:
        """One more item for one position."""
        opts = [i for i, s in enumerate(a) if len(s) < min(self.sizes[i], self.max_items)]
        if not opts:
            return None
        i = int(self.rng.choice(opts))
        rest = sorted(set(range(self.sizes[i])) - a[i])
        return self._with(a, i, a[i] | {int(self.rng.choice(rest))})

    def remove(self, a: Assignment) -> Assignment | None:
        """One item fewer for one position (one stays)."""
        opts = [i for i, s in enumerate(a) if len(s) > 1]
        if not opts:
            return None
        i = int(self.rng.choice(opts))
        return self._with(a, i, a[i] - {int(self.rng.choice(sorted(a[i])))})

    def replace(self, a: Assignment) -> Assignment | None:
        """One item of one position swapped for an unused one."""
        opts = [i for i, s in enumerate(a) if len(s) < self.sizes[i]]
        if not opts:
            return None
        i = int(self.rng.choice(opts))
        rest = sorted(set(range(self.sizes[i])) - a[i])
        out = self._with(a, i, a[i] - {int(self.rng.choice(sorted(a[i])))})
        return self._with(out, i, out[i] | {int(self.rng.choice(rest))})

    def fresh(self, a: Assignment) -> Assignment:
        """A fresh random set for one position."""
        i = int(self.rng.integers(len(a)))
        k = int(self.rng.integers(1, min(self.sizes[i], 4) + 1))
        return self._with(a, i, frozenset(int(j) for j in self.rng.choice(self.sizes[i], size=k, replace=False)))

    def crossover(self, elites: Sequence[Assignment]) -> Assignment:
        """Items all elites share, plus each other elite item with the share of elites that hold it."""
        out = []
        for i in range(len(elites[0])):
            counts: dict[int, int] = {}
            for e in elites:
                for j in e[i]:
                    counts[j] = counts.get(j, 0) + 1
            kept = {j for j, n in counts.items() if n == len(elites) or self.rng.random() < n / len(elites)}
            out.append(frozenset(kept) if kept else frozenset([max(counts, key=lambda j: (counts[j], -j))]))
        return tuple(out)

    @staticmethod
    def _with(a: Assignment, i: int, s: frozenset[int]) -> Assignment:
        return (*a[:i], frozenset(s), *a[i + 1 :])

    def children(self, elites: Sequence[Assignment], budget: Budget) -> list[Assignment]:
        """Every operator's children of every elite, plus the crossovers of the elites."""
        out: list[Assignment] = []
        for e in elites:
            for op in (self.add, self.remove, self.replace):
                out += [c for c in (op(e) for _ in range(budget.per_operator)) if c is not None]
            out += [self.fresh(e) for _ in range(budget.fresh)]
        if len(elites) > 1:
            out += [self.crossover(elites) for _ in range(budget.crossovers)]
        return out


def evolve(
    start: Sequence[Assignment],
    fitness: Callable[[list[Assignment]], np.ndarray],
    ops: Operators,
    budget: Budget,
    iterations: int,
) -> tuple[list[Assignment], dict[Assignment, float]]:
    """Elitist search: each iteration scores the unseen children of the elites; returns (elites, all seen)."""
    seen: dict[Assignment, float] = {}

    def score(cands: Sequence[Assignment]) -> None:
        new = list(dict.fromkeys(c for c in cands if c not in seen))
        if new:
            seen.update(zip(new, map(float, fitness(new)), strict=True))

    def top() -> list[Assignment]:  # ties keep the earlier-seen candidate
        keys, vals = list(seen), list(seen.values())
        return [keys[k] for k in sorted(range(len(keys)), key=lambda k: -vals[k])[: budget.elites]]

    score(start)
    for _ in range(iterations):
        score(ops.children(top(), budget))
    return top(), seen
