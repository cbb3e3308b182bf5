"""Mutation: K new description proposals per class, one LLM call per group of confused classes per sample.

Each of the K samples of a group gets a different *focus* line (colors, shape, texture, ...). That keeps
the K proposals diverse even for a small model at moderate temperature, and makes every call's messages
distinct, so the response cache keys them apart without relying on sampling randomness.
"""

from __future__ import annotations

import logging
from typing import Any

from langgraph.runtime import Runtime

from visfeed.agents.context import RunContext, traced
from visfeed.agents.mutation_agent import agent_mutate_group
from visfeed.agents.nodes.common import ask_descriptions, classes_to_mutate, gather_budgeted, group_by_confusion
from visfeed.agents.prompting import (
    FOCUSES,
    PROSE_ASPECTS,
    messages,
    prose_requests,
    quoted,
    render_banks,
)
from visfeed.agents.schemas import DescriptionBatch, batch_to_map
from visfeed.state.models import Candidate, GraphState
from visfeed.tools.feedback.render import compact_feedback, merged, read_signals
from visfeed.tools.feedback.signal import FeedbackView

log = logging.getLogger(__name__)


def use_agent(ctx: RunContext) -> bool:
    """Whether mutation runs as a tool-calling agent (configured, and the provider can call tools)."""
    mode = ctx.config.llm.mutation_mode
    return mode == "agent" or (mode == "auto" and ctx.supports_tools)


@traced
async def mutate(state: GraphState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Ask for K proposals per class needing work; proposals hold only new descriptions."""
    ctx = runtime.context
    cfg, session, it = ctx.config, ctx.session, state.iteration + 1
    fb = ctx.feedback_for(state)
    names = session.classnames
    targets = classes_to_mutate(fb, cfg.resolved_mutate_scope)
    groups = group_by_confusion(fb.lam_confusion, targets, cfg.group_size)
    ctx.notify("mutate", iteration=it, classes=len(targets), groups=len(groups))
    # Every feedback signal reads the classes to mutate once (traced per class: what the LLM is told).
    view = FeedbackView(names, fb, state.descriptions, it, state.vocabulary_extra)
    readings = read_signals(ctx.signals, view, targets, ctx.tracer.emit)
    candidates: dict[str, list[Candidate]] = {}
    for s in ctx.signals:  # no-LLM proposals (visual words: the control's descriptions against today's confusers)
        for name, reading in readings[s.name].items():
            descs = s.proposals(reading)
            if descs:
                candidates.setdefault(name, []).append(Candidate(origin=s.name, descriptions=descs))
                ctx.tracer.emit("proposal", iteration=it, class_name=name, origin=s.name, descriptions=descs)
    jobs: list[tuple[list[str], str]] = []
    coros: list[Any] = []
    asks_llm = cfg.search.crossover != "library" or cfg.search.library_llm_items  # withheld items need no call
    for gi, group in enumerate(groups if asks_llm else []):
        gnames = [names[c] for c in group]
        if use_agent(ctx):
            coros.append(agent_mutate_group(ctx, state, group, it, gi, view, readings))
            jobs.append((gnames, "agent"))
            continue
        text = compact_feedback(ctx.signals, view, group, readings)
        avoid = merged(ctx.signals, readings, gnames, lambda s, r: s.prose_avoid(r))
        banks = render_banks(state.banks, gnames, cfg.method.bank_shown, search=cfg.search.crossover == "library")
        for k in range(cfg.proposals_per_class):
            msgs = messages(
                "mutate", feedback=text, banks=banks, classes=quoted(gnames), n=cfg.method.n_new,
                focus=FOCUSES[k % len(FOCUSES)],
            )  # fmt: skip
            # Prose: the focus becomes the aspect, rotating over iterations too (the prompt holds no
            # feedback numbers that would change it), and the confusions one plain sentence.
            aspect = PROSE_ASPECTS[((it - 1) * cfg.proposals_per_class + k) % len(PROSE_ASPECTS)]
            offered = merged(ctx.signals, readings, gnames, lambda s, r, k=k: s.prose_words(r, k))
            coros.append(
                ask_descriptions(
                    ctx,
                    msgs,
                    task="mutate",
                    salt=f"mutate:it{it}:g{gi}:k{k}",
                    classes=gnames,
                    prose=prose_requests([aspect], avoid, words=offered),
                    offered=offered,
                )
            )
            jobs.append((gnames, f"mutate:k={k}"))
    results, budget_hit = await gather_budgeted(coros)
    for (gnames, origin), result in zip(jobs, results, strict=True):
        if result is None:
            continue
        if isinstance(result, DescriptionBatch):
            exclude = {
                n: [*state.descriptions.get(n, []), *_rejected(state, n), *(x.text for x in state.library.get(n, []))]
                for n in gnames
            }
            proposed = batch_to_map(result, gnames, limit=cfg.method.n_new, exclude=exclude)
        else:
            proposed = result
        for name, descs in proposed.items():
            if descs:
                candidates.setdefault(name, []).append(Candidate(origin=origin, descriptions=descs))
                ctx.tracer.emit("proposal", iteration=it, class_name=name, origin=origin, descriptions=descs)
    candidates = {n: candidates[n] for n in names if n in candidates}
    return {
        "candidates": candidates,
        "usage": ctx.usage(),
        "stop_reason": "budget" if budget_hit else state.stop_reason,
    }


def _rejected(state: GraphState, name: str) -> list[str]:
    bank = state.banks.get(name)
    return [e.text for e in bank.negative] if bank is not None else []
