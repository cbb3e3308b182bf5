"""The run context every node reads through ``Runtime[RunContext]``: sessions, LLM client, tracer, config.

Why a context and not state: the scoring sessions hold image embeddings and score matrices, the client
holds connections; none of that belongs in a checkpoint. A resumed run rebuilds the context from the run
directory and the checkpointed state (texts and counters) is enough to continue exactly.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from langgraph.runtime import Runtime

from visfeed.agents.trace import Tracer
from visfeed.state.config import RunConfig
from visfeed.state.models import GraphState, Usage
from visfeed.tools.feedback.confusion import LambdaConfusion
from visfeed.tools.feedback.signal import FeedbackSignal
from visfeed.tools.llm import LLMClient
from visfeed.tools.scoring.measures import Feedback
from visfeed.tools.scoring.session import ScoringSession

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, dict[str, Any]], None]

_NODE_IDS = {"initialize": 1, "feedback": 2, "mutate": 3, "filter_similar": 4, "crossover": 5, "update_memory": 6}


@dataclass
class RunContext:
    """What nodes need besides the state; rebuilt (never checkpointed) when a run resumes."""

    config: RunConfig
    session: ScoringSession
    client: LLMClient
    tracer: Tracer
    val_session: ScoringSession | None = None
    usage_base: Usage = field(default_factory=Usage)
    progress: ProgressFn | None = None
    supports_tools: bool = False
    # The run's feedback signals in registry order (the runner starts them from the config); by default the
    # paper's alone, so a context built by hand still writes the confusions into every prompt.
    signals: list[FeedbackSignal] = field(default_factory=lambda: [LambdaConfusion()])

    def rng(self, node: str, iteration: int) -> np.random.Generator:
        """The seeded generator of one node in one iteration: the same on resume as in the first run."""
        return np.random.default_rng([self.config.seed, iteration, _NODE_IDS.get(node, 99)])

    def signal(self, name: str) -> FeedbackSignal | None:
        """The run's signal of that name, if it is on."""
        return next((s for s in self.signals if s.name == name), None)

    def feedback_for(self, state: GraphState) -> Feedback:
        """Make the state's descriptions current in the feedback session and return its visual feedback.

        The session is shared by the nodes and rebuilt empty on resume, so a node that reads feedback
        starts here: it scores the sets of the state it was given, never those another node left behind.
        """
        self.session.set_descriptions(state.prompts_of(state.descriptions))
        return self.session.feedback()

    def usage(self) -> Usage:
        """Usage so far: what earlier processes spent (from the checkpoint) plus this process's calls."""
        t = self.client.totals
        b = self.usage_base
        return Usage(
            calls=b.calls + t.calls,
            cache_hits=b.cache_hits + t.cache_hits,
            prompt_tokens=b.prompt_tokens + t.prompt_tokens,
            completion_tokens=b.completion_tokens + t.completion_tokens,
            cost_usd=b.cost_usd + t.cost_usd,
        )

    def notify(self, what: str, **info: Any) -> None:
        """Tell the caller's progress callback (the CLI's live view); its errors never stop the run."""
        if self.progress is None:
            return
        try:
            self.progress(what, info)
        except Exception:
            log.exception("the progress callback failed on %s", what)


S = TypeVar("S", bound=GraphState)
NodeFn = Callable[[GraphState, Runtime[RunContext]], Awaitable[dict[str, Any]]]


def traced(fn: NodeFn) -> NodeFn:
    """Record node start, end and duration in the trace; keep the function's name (the node's name)."""

    @functools.wraps(fn)
    async def wrapper(state: GraphState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = runtime.context
        name = fn.__name__
        ctx.tracer.emit("node_start", node=name, iteration=state.iteration)
        ctx.notify("node_start", node=name, iteration=state.iteration)
        t0 = time.perf_counter()
        try:
            update = await fn(state, runtime)
        except BaseException as exc:
            ctx.tracer.emit(
                "node_end",
                node=name,
                iteration=state.iteration,
                duration_s=time.perf_counter() - t0,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise
        ctx.tracer.emit("node_end", node=name, iteration=state.iteration, duration_s=time.perf_counter() - t0)
        return update

    return wrapper
