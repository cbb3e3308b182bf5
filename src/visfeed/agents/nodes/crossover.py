"""Crossover: per class, search combinations of the current set and the proposals; keep the best.

Classes are processed in order and each choice is applied to the session before the next class is
searched, so every step is evaluated in the context of all earlier choices and the objective on the
feedback split never decreases (the current set is always candidate 0, ties keep it). Each proposal is
also scored as an *addition* to the current set; additions that lower the objective are remembered as
rejected (they feed the negative memory bank). The per-class step is
:func:`visfeed.agents.class_crossover.crossover_class`.
"""

from __future__ import annotations

import logging
from typing import Any

from langgraph.runtime import Runtime

from visfeed.agents.class_crossover import crossover_class
from visfeed.agents.context import RunContext, traced
from visfeed.agents.library import library_crossover
from visfeed.agents.nodes.common import ask_descriptions, chunks, gather_budgeted
from visfeed.agents.prompting import messages, quoted
from visfeed.agents.schemas import batch_to_map
from visfeed.agents.search import union
from visfeed.state.models import Candidate, ClassChange, GraphState, LibraryItem
from visfeed.tools.feedback.text import quote

log = logging.getLogger(__name__)


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
        msgs = messages("crossover", pools=pools, classes=quoted(g), max=cfg.method.max_descriptions)
        coros.append(ask_descriptions(ctx, msgs, task="crossover", salt=f"crossover:it{it}:g{gi}", classes=g))
    results, budget_hit = await gather_budgeted(coros)
    out: dict[str, list[Candidate]] = {}
    for g, batch in zip(groups, results, strict=True):
        if batch is None:
            continue
        for name, descs in batch_to_map(batch, g, limit=cfg.method.max_descriptions).items():
            allowed = set(state.descriptions[name]) | {d for c in state.candidates[name] for d in c.descriptions}
            kept = [d for d in descs if d in allowed]
            if kept:
                out[name] = [Candidate(origin="llm-crossover", descriptions=kept)]
    return out, budget_hit


@traced
async def crossover(state: GraphState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Choose each class's new set; record the per-class change for the memory update."""
    ctx = runtime.context
    cfg, session, it = ctx.config, ctx.session, state.iteration + 1
    before_fb = ctx.feedback_for(state)
    recombined: dict[str, list[Candidate]] = {}
    stop_reason = state.stop_reason
    if cfg.search.crossover == "llm" and state.candidates and stop_reason is None:
        recombined, budget_hit = await llm_recombinations(ctx, state, it)
        stop_reason = "budget" if budget_hit else stop_reason
    changes: dict[str, ClassChange] = {}
    descriptions = {n: list(v) for n, v in state.descriptions.items()}
    n_evaluated = 0
    grown: dict[str, list[LibraryItem]] = {}
    if cfg.search.crossover == "library":
        descriptions, changes, grown = library_crossover(ctx, state, it)
    for name in session.classnames if cfg.search.crossover != "library" else ():
        cands = state.candidates.get(name)
        if not cands:
            continue
        change, n_eval = crossover_class(session, name, cands, recombined.get(name, []), cfg, it)
        changes[name] = change
        descriptions[name] = change.after
        n_evaluated += n_eval
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
        "library": grown,
        "candidates": {},
        "changes": changes,
        "usage": ctx.usage(),
        "stop_reason": stop_reason,
    }
