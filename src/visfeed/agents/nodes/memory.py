"""Memory-bank update and description lineage, from crossover's per-class changes.

Per class, descriptions are unchanged, added or deleted between iterations. An accepted edit (additions
and deletions together) that raised the objective goes to the positive bank, one that lowered it to the
negative bank; proposals that lowered the objective when added are negative too. Banks keep the last
``bank_size`` entries, as the reference code keeps the last 10.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from visfeed.agents.context import RunContext, traced
from visfeed.state.models import BankEntry, ClassChange, GraphState, LineageEntry, MemoryBank


def update_banks(
    banks: dict[str, MemoryBank], changes: dict[str, ClassChange], it: int, cap: int
) -> dict[str, MemoryBank]:
    """The new banks of the classes one iteration's changes touched (inputs are not modified).

    Only those classes are returned: the ``banks`` field merges them in, so a checkpoint stores what
    changed rather than every class's bank.
    """
    out: dict[str, MemoryBank] = {}
    for name, ch in changes.items():
        old = banks.get(name)
        bank = old.model_copy() if old is not None else MemoryBank()
        added = [d for d in ch.after if d not in ch.before]
        deleted = [d for d in ch.before if d not in ch.after]
        entries = [
            BankEntry(
                text=d, action="added", iteration=it, delta_correct=ch.delta_correct, delta_margin=ch.delta_margin
            )
            for d in added
        ] + [
            BankEntry(
                text=d, action="deleted", iteration=it, delta_correct=ch.delta_correct, delta_margin=ch.delta_margin
            )
            for d in deleted
        ]
        gain = (ch.delta_correct, ch.delta_margin)
        if entries and gain > (0, 0.0):
            bank.positive = [*bank.positive, *entries][-cap:]
        elif entries and gain < (0, 0.0):
            bank.negative = [*bank.negative, *entries][-cap:]
        known = {e.text for e in bank.negative}
        fresh = [e for e in ch.rejected if e.text not in known]
        if fresh:
            bank.negative = [*bank.negative, *fresh][-cap:]
        if old is None or bank.positive is not old.positive or bank.negative is not old.negative:
            out[name] = bank
    return out


@traced
async def update_memory(state: GraphState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Update banks and lineage; close the iteration (only changed banks and lineage entries are written)."""
    ctx = runtime.context
    it = state.iteration + 1
    banks = update_banks(state.banks, state.changes, it, ctx.config.method.bank_size)
    live = {
        (e.class_name, e.text): e
        for e in state.lineage
        if e.deleted_iteration is None and e.class_name in state.changes
    }
    lineage: list[LineageEntry] = []  # new entries and the closed versions of ended ones
    for name, ch in state.changes.items():
        for d in ch.after:
            if d in ch.before or (name, d) in live:
                continue
            entry = LineageEntry(
                class_name=name, text=d, introduced_iteration=it, origin=ch.origins.get(d, "mutate"),
                delta_correct=ch.delta_correct, delta_margin=ch.delta_margin,
            )  # fmt: skip
            live[(name, d)] = entry
            lineage.append(entry)
            ctx.tracer.emit("lineage_add", **entry.model_dump())
        for d in ch.before:
            if d in ch.after or (name, d) not in live:
                continue
            reason = (
                f"crossover in iteration {it} chose a set without it "
                f"({ch.delta_correct:+d} correct, {ch.delta_margin:+.4f} mean margin for the class's new set)"
            )
            closed = live.pop((name, d)).model_copy(update={"deleted_iteration": it, "deleted_reason": reason})
            lineage.append(closed)
            ctx.tracer.emit("lineage_delete", **closed.model_dump())
    return {"banks": banks, "lineage": lineage, "changes": {}, "iteration": it, "usage": ctx.usage()}
