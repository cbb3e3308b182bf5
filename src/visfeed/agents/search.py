"""Evaluation-driven crossover search over description sets of one class.

Pure functions of an ``evaluate(list_of_sets) -> CandidateScores`` callable (in the run:
``ScoringSession.evaluate_sets`` for one class, one vectorized sweep per call), so they are tested against
brute force. Every search includes the current set as candidate 0 and breaks ties towards the lowest
index, so the objective can never go down (elitism) and equal-scoring changes are not taken.

- exhaustive: every non-empty union of the given sets (current + K proposals: 2^(K+1)-1 candidates).
- greedy: description-level hill climbing from the best union of one set: add or remove one description
  per round, best move first, until no move helps.
- beam: the same moves, keeping the ``width`` best sets per round.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from visfeed.tools.scoring.engine import CandidateScores

Evaluate = Callable[[list[list[str]]], CandidateScores]


def union(sets: Sequence[Sequence[str]]) -> list[str]:
    """Ordered union of description lists (first occurrence wins)."""
    return list(dict.fromkeys(d for s in sets for d in s))


def all_unions(sets: Sequence[Sequence[str]], max_size: int | None = None) -> list[list[str]]:
    """Every non-empty union of ``sets``, smallest subsets first, the first set alone first; deduplicated."""
    out: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for r in range(1, len(sets) + 1):
        for combo in itertools.combinations(range(len(sets)), r):
            u = union([sets[i] for i in combo])
            key = frozenset(u)
            if key in seen or (max_size is not None and len(u) > max_size):
                continue
            seen.add(key)
            out.append(u)
    return out


def count_unions(n_sets: int) -> int:
    """How many unions :func:`all_unions` may produce for ``n_sets`` sets."""
    return 2**n_sets - 1


def exhaustive(sets: Sequence[Sequence[str]], evaluate: Evaluate, max_size: int | None = None) -> tuple[list[str], int]:
    """Best union of the sets (``sets[0]`` = current); returns (set, candidates evaluated)."""
    cands = all_unions(sets, max_size)
    scores = evaluate(cands)
    return cands[scores.best()], len(cands)


def _moves(current: list[str], pool: Sequence[str], max_size: int) -> list[list[str]]:
    out = []
    if len(current) < max_size:
        out += [[*current, d] for d in pool if d not in current]
    if len(current) > 1:
        out += [[x for x in current if x != d] for d in current]
    return out


def greedy(
    start: list[str], pool: Sequence[str], evaluate: Evaluate, *, steps: int, max_size: int
) -> tuple[list[str], int]:
    """Hill climbing by single additions/removals from ``start``; returns (set, candidates evaluated)."""
    current, n_eval = list(start), 0
    for _ in range(steps):
        cands = [current, *_moves(current, pool, max_size)]
        if len(cands) == 1:
            break
        scores = evaluate(cands)
        n_eval += len(cands)
        best = scores.best()
        if best == 0:
            break
        current = cands[best]
    return current, n_eval


def beam(
    start: list[str], pool: Sequence[str], evaluate: Evaluate, *, steps: int, width: int, max_size: int
) -> tuple[list[str], int]:
    """Beam search over single additions/removals; the best set ever seen wins; returns (set, evaluated)."""
    frontier = [list(start)]
    first = evaluate(frontier)
    best_set, best_key, n_eval = list(start), (int(first.n_correct[0]), float(first.mean_margin[0])), 1
    seen = {frozenset(start)}
    for _ in range(steps):
        cands: list[list[str]] = []
        for s in frontier:
            for m in _moves(s, pool, max_size):
                key = frozenset(m)
                if key not in seen:
                    seen.add(key)
                    cands.append(m)
        if not cands:
            break
        scores = evaluate(cands)
        n_eval += len(cands)
        order = sorted(range(len(cands)), key=lambda i: (-scores.n_correct[i], -scores.mean_margin[i], i))
        frontier = [cands[i] for i in order[:width]]
        top = order[0]
        top_key = (int(scores.n_correct[top]), float(scores.mean_margin[top]))
        if top_key > best_key:
            best_set, best_key = cands[top], top_key
        else:
            break
    return best_set, n_eval
