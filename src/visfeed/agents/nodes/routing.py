"""Routers: the convergence decision and the budget exit, as ``Literal`` node names."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime

from visfeed.agents.context import RunContext
from visfeed.state.models import GraphState


def stop_reason(state: GraphState, ctx: RunContext) -> str | None:
    """Why the loop must stop now (None: go on)."""
    cfg = ctx.config
    if state.stop_reason:
        return state.stop_reason
    if state.iteration >= cfg.method.max_iterations:
        return "max_iterations"
    if state.stale >= cfg.method.patience:
        return "patience"
    return None


def route_after_feedback(state: GraphState, runtime: Runtime[RunContext]) -> Literal["mutate", "__end__"]:
    """Mutate again, or stop (patience on the objective, max_iterations, budget)."""
    return "__end__" if stop_reason(state, runtime.context) else "mutate"


def route_after_mutate(state: GraphState, runtime: Runtime[RunContext]) -> Literal["filter_similar", "__end__"]:
    """End at once when the budget ran out before any proposal arrived; otherwise filter them."""
    if state.stop_reason and not state.candidates:
        return "__end__"
    return "filter_similar"
