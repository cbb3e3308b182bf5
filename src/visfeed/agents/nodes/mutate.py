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
from visfeed.tools.feedback_text import compact_feedback
from visfeed.tools.scoring import Feedback
from visfeed.tools.visual_words import ClassWords, words_descriptions

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
    seen = offered_words(ctx, state, fb, targets, it)
    candidates: dict[str, list[Candidate]] = {}
    for name, cw in seen.items():  # the no-LLM proposal: the control's descriptions against today's confusers
        descs = words_descriptions(cw.own)
        if descs:
            candidates[name] = [Candidate(origin="visual_words", descriptions=descs)]
            ctx.tracer.emit("proposal", iteration=it, class_name=name, origin="visual_words", descriptions=descs)
    jobs: list[tuple[list[str], str]] = []
    coros: list[Any] = []
    asks_llm = cfg.search.crossover != "library" or cfg.search.library_llm_items  # withheld items need no call
    for gi, group in enumerate(groups if asks_llm else []):
        gnames = [names[c] for c in group]
        if use_agent(ctx):
            coros.append(agent_mutate_group(ctx, state, group, it, gi, words=seen))
            jobs.append((gnames, "agent"))
            continue
        text = compact_feedback(group, names, state.descriptions, fb, words=seen)
        confused = {names[c]: [names[o] for o in fb.top_confused[c]] for c in group}
        banks = render_banks(state.banks, gnames, cfg.method.bank_shown, search=cfg.search.crossover == "library")
        for k in range(cfg.proposals_per_class):
            msgs = messages(
                "mutate", feedback=text, banks=banks, classes=quoted(gnames), n=cfg.method.n_new,
                focus=FOCUSES[k % len(FOCUSES)],
            )  # fmt: skip
            # Prose: the focus becomes the aspect, rotating over iterations too (the prompt holds no
            # feedback numbers that would change it), and the confusions one plain sentence.
            aspect = PROSE_ASPECTS[((it - 1) * cfg.proposals_per_class + k) % len(PROSE_ASPECTS)]
            # Each sample lists the words from another starting point, so the K answers lead with other words.
            offered = {n: _rotated(seen[n].own, 2 * k) for n in gnames if n in seen and seen[n].own}
            coros.append(
                ask_descriptions(
                    ctx,
                    msgs,
                    task="mutate",
                    salt=f"mutate:it{it}:g{gi}:k{k}",
                    classes=gnames,
                    prose=prose_requests([aspect], confused, words=offered),
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


def offered_words(
    ctx: RunContext, state: GraphState, fb: Feedback, targets: list[int], it: int
) -> dict[str, ClassWords]:
    """Visual words of each class to mutate against its top-m confused classes (empty when the feature is off).

    Traced per class and iteration (``visual_words`` events), so ``visfeed trace --class`` and the report
    show what the LLM was told.
    """
    if ctx.words is None:
        return {}
    probe = ctx.words.probe(state.vocabulary_extra)
    out: dict[str, ClassWords] = {}
    for c in targets:
        cw = probe.words(c, fb.top_confused[c], k=ctx.config.signals.visual_words.count)
        out[cw.class_name] = cw
        ctx.tracer.emit("visual_words", iteration=it, class_name=cw.class_name, own=cw.own, against=cw.against)
    return out


def _rotated(words: list[str], by: int) -> list[str]:
    by %= max(1, len(words))
    return words[by:] + words[:by]


def _rejected(state: GraphState, name: str) -> list[str]:
    bank = state.banks.get(name)
    return [e.text for e in bank.negative] if bank is not None else []
