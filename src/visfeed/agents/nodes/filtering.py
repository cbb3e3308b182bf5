"""The similarity filter: drop new descriptions that also describe a class this class is confused with.

For each class, every proposed description is compared (FAISS, cosine on raw description embeddings)
with the current descriptions of the class's top-m lambda-confused classes; at or above
``similarity_threshold`` it is dropped, as is any description naming another class. Dropped descriptions
are regenerated once (one LLM call per group of affected classes, told what was rejected and why);
replacements pass the same filter, and a proposal left empty falls away (the class keeps its set).
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from visfeed.agents.context import RunContext, traced
from visfeed.agents.nodes.common import ask_descriptions, chunks, gather_budgeted
from visfeed.agents.prompting import PROSE_ASPECTS, messages, prose_requests, quoted
from visfeed.agents.schemas import NameMatcher, batch_to_map
from visfeed.state.models import Candidate, GraphState
from visfeed.tools.feedback.text import quote
from visfeed.tools.scoring.session import ScoringSession


def drop_reasons(
    session: ScoringSession,
    name: str,
    texts: list[str],
    confused: list[str],
    threshold: float,
    names: NameMatcher | None,
) -> dict[str, str]:
    """Text -> why it must go, for the texts of class ``name`` that fail the filter (``names``: check names)."""
    reasons: dict[str, str] = {}
    if names is not None:
        for t in texts:
            other = names.other_class(t, name)
            if other is not None:
                reasons[t] = f"names another class ({quote(other)})"
    rest = [t for t in texts if t not in reasons]
    if rest and confused:
        for t, hits in zip(rest, session.nearest(rest, confused, k=1), strict=True):
            if hits and hits[0].similarity >= threshold:
                h = hits[0]
                reasons[t] = (
                    f"too close ({h.similarity:.3f}) to '{h.text}' of confused class {quote(session.classnames[h.class_index])}"
                )
    return reasons


@traced
async def filter_similar(state: GraphState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Filter the proposals; regenerate dropped descriptions once; drop proposals left empty."""
    ctx = runtime.context
    cfg, session, it = ctx.config, ctx.session, state.iteration + 1
    fb = ctx.feedback_for(state)
    confused = {n: [session.classnames[o] for o in fb.top_confused[session.class_index(n)]] for n in state.candidates}
    names = NameMatcher(session.classnames) if cfg.method.drop_other_class_names else None

    def apply(cands: dict[str, list[Candidate]]) -> tuple[dict[str, list[Candidate]], dict[str, dict[str, str]]]:
        kept: dict[str, list[Candidate]] = {}
        dropped: dict[str, dict[str, str]] = {}
        for name, sets in cands.items():
            texts = list(dict.fromkeys(d for s in sets for d in s.descriptions))
            reasons = drop_reasons(session, name, texts, confused.get(name, []), cfg.method.similarity_threshold, names)
            if reasons:
                dropped[name] = reasons
                for t, why in reasons.items():
                    ctx.tracer.emit("filter_drop", iteration=it, class_name=name, text=t, reason=why)
            for s in sets:
                left = [d for d in s.descriptions if d not in reasons]
                if left:
                    kept.setdefault(name, []).append(Candidate(origin=s.origin, descriptions=left))
        return kept, dropped

    kept, dropped = apply(state.candidates)
    n_dropped = sum(len(v) for v in dropped.values())
    stop_reason = state.stop_reason
    if dropped and cfg.method.filter_regenerate and stop_reason is None:
        affected = [n for n in session.classnames if n in dropped]
        groups = chunks(affected, cfg.group_size)
        # Prose: the aspect after this iteration's mutation aspects, with the same confusion sentence.
        aspect = PROSE_ASPECTS[(it * cfg.proposals_per_class) % len(PROSE_ASPECTS)]
        coros = []
        for gi, g in enumerate(groups):
            rejected = "\n".join(
                f"{quote(n)}: " + "; ".join(f"{t} ({why})" for t, why in dropped[n].items()) for n in g
            )
            msgs = messages("regenerate", rejected=rejected, classes=quoted(g), n=cfg.method.n_new)
            coros.append(
                ask_descriptions(
                    ctx,
                    msgs,
                    task="regenerate",
                    salt=f"regenerate:it{it}:g{gi}",
                    classes=g,
                    prose=prose_requests([aspect], confused),
                )
            )
        results, budget_hit = await gather_budgeted(coros)
        if budget_hit:
            stop_reason = "budget"
        fresh: dict[str, list[Candidate]] = {}
        for g, batch in zip(groups, results, strict=True):
            if batch is None:
                continue
            exclude = {n: [*state.descriptions.get(n, []), *dropped.get(n, {})] for n in g}
            for name, descs in batch_to_map(batch, g, limit=cfg.method.n_new, exclude=exclude).items():
                fresh[name] = [Candidate(origin="regenerate", descriptions=descs)]
        fresh_kept, fresh_dropped = apply(fresh)
        n_dropped += sum(len(v) for v in fresh_dropped.values())
        for name, sets in fresh_kept.items():
            kept.setdefault(name, []).extend(sets)
    kept = {n: kept[n] for n in session.classnames if n in kept}
    return {
        "candidates": kept,
        "filter_dropped": state.filter_dropped + n_dropped,
        "usage": ctx.usage(),
        "stop_reason": stop_reason,
    }
