"""Helpers shared by nodes: the description request, gathering under a budget, class grouping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from langchain_core.messages import BaseMessage

from visfeed.agents.context import RunContext
from visfeed.agents.prose import ProseCalls, ask_prose
from visfeed.agents.schemas import ClassEntry, DescriptionBatch, OneClass, example_batch, example_one
from visfeed.errors import BudgetExceeded
from visfeed.state.models import Objective
from visfeed.tools.llm import StructuredOutputError
from visfeed.tools.scoring.measures import Feedback, Table
from visfeed.tools.scoring.session import ScoringSession

log = logging.getLogger(__name__)
T = TypeVar("T")


async def ask_descriptions(
    ctx: RunContext,
    msgs: list[BaseMessage],
    *,
    task: str,
    salt: str,
    classes: Sequence[str],
    prose: ProseCalls | None = None,
    offered: Mapping[str, Sequence[str]] | None = None,
) -> DescriptionBatch | None:
    """One description request; an answer that never validated is traced and skipped (None), not fatal.

    A single-class request uses the flat :class:`OneClass` schema (small models return empty nested
    lists far more often), converted to a :class:`DescriptionBatch` so callers see one shape. When the
    run answers in prose (``answer_format``) and the caller gave ``prose`` requests, those are sent
    instead of ``msgs`` (see :func:`visfeed.agents.prose.ask_prose`); requests without a prose form
    (the LLM crossover) stay structured; ``offered`` names the visual words the prose requests offer.
    """
    if prose is not None and ctx.config.resolved_answer_format == "prose":
        return await ask_prose(ctx.client, ctx.tracer, classes, prose, task=task, salt=salt, offered=offered)
    try:
        if len(classes) == 1:
            one = await ctx.client.astructured(msgs, OneClass, task=task, example=example_one(), cache_salt=salt)
            return DescriptionBatch(classes=[ClassEntry(class_name=classes[0], descriptions=one.descriptions)])
        return await ctx.client.astructured(msgs, DescriptionBatch, task=task, example=example_batch(), cache_salt=salt)
    except StructuredOutputError as exc:
        log.warning("task %s (%s): no valid answer: %s", task, salt, exc)
        ctx.tracer.emit("llm_invalid", task=task, salt=salt, error=str(exc))
        return None


async def gather_budgeted(coros: Sequence[Awaitable[Any]]) -> tuple[list[Any], bool]:
    """Run coroutines concurrently (the client's semaphore bounds them); BudgetExceeded -> None + flag.

    Any other error is re-raised after all calls finished, so completed answers still reach the cache and
    a resumed run does not pay for them again.
    """
    results = await asyncio.gather(*coros, return_exceptions=True)
    out: list[Any] = []
    budget_hit = False
    error: BaseException | None = None
    for r in results:
        if isinstance(r, BudgetExceeded):
            budget_hit = True
            out.append(None)
        elif isinstance(r, BaseException):
            error = error or r
            out.append(None)
        else:
            out.append(r)
    if error is not None:
        raise error
    return out, budget_hit


def objective_of(session: ScoringSession) -> Objective:
    """The session's current objective as a record."""
    n, margin = session.objective()
    return Objective(n_correct=n, mean_margin=margin, n_images=session.n_images)


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    """Consecutive groups of at most ``size`` items, balanced in length."""
    if not items:
        return []
    n_groups = -(-len(items) // size)
    per = -(-len(items) // n_groups)
    return [list(items[i : i + per]) for i in range(0, len(items), per)]


def classes_to_mutate(fb: Feedback, scope: str) -> list[int]:
    """Every class, or only those with errors or near misses (lambda-confusion), in class order."""
    n = len(fb.per_class_accuracy)
    if scope == "all":
        return list(range(n))
    return [
        c
        for c in range(n)
        if fb.top_confused[c] or (not np.isnan(fb.per_class_accuracy[c]) and fb.per_class_accuracy[c] < 1.0)
    ]


def group_by_confusion(lam_conf: Table, targets: Sequence[int], size: int) -> list[list[int]]:
    """Groups of about ``size`` classes that confuse each other (one LLM call per group, as in the paper).

    Greedy and deterministic: seed a group with the most confused remaining class, then add the remaining
    class most linked (symmetric lambda-confusion) to the group, until the group is full; ties go to the
    earlier class in seed order. The links are kept sparse and each group keeps a running link vector
    (one column added per member), so the work follows the confusions, not targets x targets pairs.
    """
    if not targets:
        return []
    ids = np.asarray(list(targets))
    sub = sp.csr_array(lam_conf, dtype=np.float32)[ids][:, ids]  # counts: exact in float32
    w = sp.csc_array(sub + sub.T)
    n_groups = -(-len(ids) // size)
    per = -(-len(ids) // n_groups)
    totals = np.asarray(w.sum(axis=0)).ravel()
    order = sorted(range(len(ids)), key=lambda i: (-float(totals[i]), int(ids[i])))
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    free = np.ones(len(ids), dtype=bool)
    links = np.zeros(len(ids), dtype=np.float32)
    nxt = 0  # position in seed order before which no class is free (classes only ever stop being free)

    def first_free() -> int | None:
        nonlocal nxt
        while nxt < len(order) and not free[order[nxt]]:
            nxt += 1
        return order[nxt] if nxt < len(order) else None

    groups: list[list[int]] = []
    while (seed := first_free()) is not None:
        group, touched = [seed], set()
        free[seed] = False
        while True:
            lo, hi = w.indptr[group[-1]], w.indptr[group[-1] + 1]
            links[w.indices[lo:hi]] += w.data[lo:hi]
            touched.update(w.indices[lo:hi].tolist())
            if len(group) >= per:
                break
            linked = [i for i in touched if free[i] and links[i] > 0]
            if linked:
                best = min(linked, key=lambda i: (-float(links[i]), int(rank[i])))
            else:  # nothing linked: every free class has link 0, so the earliest in seed order
                best = first_free()
                if best is None:
                    break
            free[best] = False
            group.append(best)
        links[list(touched)] = 0.0
        groups.append(sorted(int(ids[i]) for i in group))
    return groups
