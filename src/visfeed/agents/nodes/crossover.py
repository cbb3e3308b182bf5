"""Crossover: per class, search combinations of the current set and the proposals; keep the best.

Classes are processed in order and each choice is applied to the session before the next class is
searched, so every step is evaluated in the context of all earlier choices and the objective on the
feedback split never decreases (the current set is always candidate 0, ties keep it). Each proposal is
also scored as an *addition* to the current set; additions that lower the objective are remembered as
rejected (they feed the negative memory bank).
"""

from __future__ import annotations

import logging
from typing import Any

from langgraph.runtime import Runtime

from visfeed.agents.context import RunContext, traced
from visfeed.agents.nodes.common import ask_descriptions, chunks, gather_budgeted
from visfeed.agents.prompting import messages, quoted
from visfeed.agents.schemas import batch_to_map
from visfeed.agents.search import beam, count_unions, exhaustive, greedy, union
from visfeed.state.config import RunConfig
from visfeed.state.models import BankEntry, Candidate, ClassChange, GraphState
from visfeed.tools.feedback_text import quote
from visfeed.tools.session import ScoringSession

log = logging.getLogger(__name__)


def choose(session: ScoringSession, name: str, sets: list[list[str]], cfg: RunConfig) -> tuple[list[str], int]:
    """The best set for one class by the configured search (sets[0] is the current set)."""

    def evaluate(cands: list[list[str]]) -> Any:
        return session.evaluate_sets(name, cands)

    mode = cfg.crossover
    if mode == "llm":  # the LLM's recombinations are already among the sets: select among them
        scores = evaluate(sets)
        return sets[scores.best()], len(sets)
    if mode == "auto":
        mode = "exhaustive" if count_unions(len(sets)) <= cfg.exhaustive_limit else "beam"
    if mode == "exhaustive":
        return exhaustive(sets, evaluate, cfg.max_descriptions)
    pool = union(sets[1:])
    if mode == "greedy":
        return greedy(sets[0], pool, evaluate, steps=cfg.search_steps, max_size=cfg.max_descriptions)
    return beam(sets[0], pool, evaluate, steps=cfg.search_steps, width=cfg.beam_width, max_size=cfg.max_descriptions)


async def llm_recombinations(ctx: RunContext, state: GraphState, it: int) -> tuple[dict[str, list[Candidate]], bool]:
    """The reference code's variant: the LLM recombines existing descriptions (new text is discarded)."""
    cfg = ctx.config
    names = [n for n in ctx.session.classnames if n in state.candidates]
    groups = chunks(names, cfg.group_size)
    coros = []
    for gi, g in enumerate(groups):
        pools = "\n".join(
            f"{quote(n)}:\n  current: "
            + "; ".join(state.descriptions[n])
            + "\n  proposed: "
            + "; ".join(union([c.descriptions for c in state.candidates[n]]))
            for n in g
        )
        msgs = messages("crossover", pools=pools, classes=quoted(g), max=cfg.max_descriptions)
        coros.append(ask_descriptions(ctx, msgs, task="crossover", salt=f"crossover:it{it}:g{gi}", classes=g))
    results, budget_hit = await gather_budgeted(coros)
    out: dict[str, list[Candidate]] = {}
    for g, batch in zip(groups, results, strict=True):
        if batch is None:
            continue
        for name, descs in batch_to_map(batch, g, limit=cfg.max_descriptions).items():
            allowed = set(state.descriptions[name]) | {d for c in state.candidates[name] for d in c.descriptions}
            kept = [d for d in descs if d in allowed]
            if kept:
                out[name] = [Candidate(origin="llm-crossover", descriptions=kept)]
    return out, budget_hit


@traced
async def crossover(state: GraphState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Choose each class's new set; record the per-class change for the memory update."""
    ctx = runtime.context
    cfg = ctx.config
    session = ctx.session
    it = state.iteration + 1
    session.set_descriptions(state.descriptions)
    before_fb = session.feedback()
    recombined: dict[str, list[Candidate]] = {}
    stop_reason = state.stop_reason
    if cfg.crossover == "llm" and state.candidates and stop_reason is None:
        recombined, budget_hit = await llm_recombinations(ctx, state, it)
        stop_reason = "budget" if budget_hit else stop_reason
    changes: dict[str, ClassChange] = {}
    descriptions = {n: list(v) for n, v in state.descriptions.items()}
    n_evaluated = 0
    for name in session.classnames:
        cands = state.candidates.get(name)
        if not cands:
            continue
        current = descriptions[name]
        proposals = [c.descriptions for c in cands]
        if cfg.crossover == "llm":  # full sets: current, current+each proposal, the LLM's recombination
            sets = [
                current,
                *[union([current, p]) for p in proposals],
                *[c.descriptions for c in recombined.get(name, [])],
            ]
        else:
            sets = [current, *proposals]
        n0, m0 = session.objective()
        adds = session.evaluate_sets(name, [current, *[union([current, p]) for p in proposals]])
        rejected = [
            BankEntry(
                text=d,
                action="proposed",
                iteration=it,
                delta_correct=int(adds.n_correct[i + 1]) - n0,
                delta_margin=float(adds.mean_margin[i + 1]) - m0,
            )
            for i, p in enumerate(proposals)
            if (int(adds.n_correct[i + 1]), float(adds.mean_margin[i + 1])) < (n0, m0)
            for d in p
            if d not in current
        ]
        chosen, n_eval = choose(session, name, sets, cfg)
        n_evaluated += n_eval + len(proposals) + 1
        if chosen != current:
            session.set_descriptions({name: chosen})
        n1, m1 = session.objective()
        origins: dict[str, str] = {}
        for cand in [*cands, *recombined.get(name, [])]:
            for d in cand.descriptions:
                origins.setdefault(d, cand.origin)
        changes[name] = ClassChange(
            before=current,
            after=chosen,
            origins={d: origins.get(d, "mutate") for d in chosen if d not in current},
            delta_correct=n1 - n0,
            delta_margin=m1 - m0,
            rejected=rejected,
        )
        descriptions[name] = chosen
    after_fb = session.feedback()
    for name, ch in changes.items():
        c = session.class_index(name)
        changes[name] = ch.model_copy(
            update={
                "class_acc_before": float(before_fb.per_class_accuracy[c]),
                "class_acc_after": float(after_fb.per_class_accuracy[c]),
            }
        )
    ctx.tracer.emit(
        "crossover",
        iteration=it,
        classes=len(changes),
        candidates_evaluated=n_evaluated,
        changed=sum(ch.before != ch.after for ch in changes.values()),
        accuracy_after=after_fb.accuracy,
    )
    return {
        "descriptions": descriptions,
        "candidates": {},
        "changes": changes,
        "usage": ctx.usage(),
        "stop_reason": stop_reason,
    }
