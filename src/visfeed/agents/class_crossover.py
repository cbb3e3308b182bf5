"""One class's crossover step: the searches of :mod:`visfeed.agents.search` run against a scoring session.

The crossover node calls :func:`crossover_class` once per class, in class order; each call applies its
choice to the session, so the next class is searched in the context of all earlier choices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from visfeed.agents.search import beam, count_unions, exhaustive, greedy, union
from visfeed.state.config import RunConfig
from visfeed.state.models import BankEntry, Candidate, ClassChange
from visfeed.tools.scoring.session import ScoringSession


def choose(session: ScoringSession, name: str, sets: list[list[str]], cfg: RunConfig) -> tuple[list[str], int]:
    """The best set for one class by the configured search (sets[0] is the current set)."""

    def evaluate(cands: list[list[str]]) -> Any:
        return session.evaluate_sets(name, cands)

    mode = cfg.search.crossover
    if mode == "llm":  # the LLM's recombinations are already among the sets: select among them
        scores = evaluate(sets)
        return sets[scores.best()], len(sets)
    if mode == "auto":
        mode = "exhaustive" if count_unions(len(sets)) <= cfg.search.exhaustive_limit else "beam"
    if mode == "exhaustive":
        return exhaustive(sets, evaluate, cfg.method.max_descriptions)
    pool = union(sets[1:])
    if mode == "greedy":
        return greedy(sets[0], pool, evaluate, steps=cfg.search.steps, max_size=cfg.method.max_descriptions)
    return beam(
        sets[0],
        pool,
        evaluate,
        steps=cfg.search.steps,
        width=cfg.search.beam_width,
        max_size=cfg.method.max_descriptions,
    )


def crossover_class(
    session: ScoringSession,
    name: str,
    candidates: Sequence[Candidate],
    recombined: Sequence[Candidate],
    cfg: RunConfig,
    iteration: int,
) -> tuple[ClassChange, int]:
    """Choose class ``name``'s new set and make it current in ``session``; returns (change, sets evaluated).

    The set the session holds for the class is candidate 0 of the search and wins ties, so the objective
    never decreases. ``recombined`` are the LLM's recombinations (``crossover: llm`` only). Each proposal
    is also scored as an *addition* to the current set; the new descriptions of an addition that lowers
    the objective come back as ``rejected`` entries (the negative memory bank). The change's per-class
    accuracies are left to the caller, which scores all classes once after the last class.
    """
    current = list(session.current[name])
    proposals = [c.descriptions for c in candidates]
    if cfg.search.crossover == "llm":  # full sets: current, current+each proposal, the LLM's recombination
        sets = [current, *[union([current, p]) for p in proposals], *[c.descriptions for c in recombined]]
    else:
        sets = [current, *proposals]
    n0, m0 = session.objective()
    adds = session.evaluate_sets(name, [current, *[union([current, p]) for p in proposals]])
    rejected = [
        BankEntry(
            text=d,
            action="proposed",
            iteration=iteration,
            delta_correct=int(adds.n_correct[i + 1]) - n0,
            delta_margin=float(adds.mean_margin[i + 1]) - m0,
        )
        for i, p in enumerate(proposals)
        if (int(adds.n_correct[i + 1]), float(adds.mean_margin[i + 1])) < (n0, m0)
        for d in p
        if d not in current
    ]
    chosen, n_eval = choose(session, name, sets, cfg)
    if chosen != current:
        session.set_descriptions({name: chosen})
    n1, m1 = session.objective()
    origins: dict[str, str] = {}
    for cand in [*candidates, *recombined]:
        for d in cand.descriptions:
            origins.setdefault(d, cand.origin)
    change = ClassChange(
        before=current,
        after=chosen,
        origins={d: origins.get(d, "mutate") for d in chosen if d not in current},
        delta_correct=n1 - n0,
        delta_margin=m1 - m0,
        rejected=rejected,
    )
    return change, n_eval + len(proposals) + 1
