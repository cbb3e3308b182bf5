"""Visual feedback: score the current descriptions, record the iteration, keep the best-so-far set."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from visfeed.agents.context import RunContext, traced
from visfeed.agents.nodes.common import objective_of
from visfeed.state.models import GraphState, IterationRecord


@traced
async def feedback(state: GraphState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Objective on the feedback split (and validation if configured); elitism on the selection split."""
    ctx = runtime.context
    cfg, session = ctx.config, ctx.session
    fb = ctx.feedback_for(state)
    obj = objective_of(session)
    val = None
    if cfg.method.use_validation and ctx.val_session is not None:
        ctx.val_session.set_descriptions(state.prompts_of(state.descriptions))
        val = objective_of(ctx.val_session)
    selection = val if val is not None else obj
    improved = selection.better_than(state.best_objective)
    usage = ctx.usage()
    record = IterationRecord(
        iteration=state.iteration,
        feedback=obj,
        validation=val,
        n_descriptions=sum(len(v) for v in state.descriptions.values()),
        llm_calls=usage.calls,
        per_class_accuracy={c: float(fb.per_class_accuracy[i]) for i, c in enumerate(session.classnames)},
        improved=improved,
    )
    ctx.tracer.emit(
        "iteration",
        iteration=state.iteration,
        feedback_accuracy=obj.accuracy,
        feedback_correct=obj.n_correct,
        mean_margin=obj.mean_margin,
        validation_accuracy=val.accuracy if val is not None else None,
        improved=improved,
        llm_calls=usage.calls,
    )
    ctx.notify(
        "iteration",
        iteration=state.iteration,
        max_iterations=ctx.config.method.max_iterations,
        accuracy=obj.accuracy,
        improved=improved,
        llm_calls=usage.calls,
        cache_hits=usage.cache_hits,
        tokens=usage.prompt_tokens + usage.completion_tokens,
    )
    update: dict[str, Any] = {"history": [record], "usage": usage}
    if improved:
        update |= {
            "best": state.descriptions,
            "best_objective": selection,
            "best_iteration": state.iteration,
            "stale": 0,
        }
    else:
        update["stale"] = state.stale + 1
    return update
