"""Nodes of the concept graph: propose parts (level by level), attributes per leaf part, values per class.

Every request goes through the run's :class:`~visfeed.tools.llm.LLMClient` (response cache, budget,
retries, the structured-output repair loop); every answer passes :func:`~visfeed.agents.concepts.schemas.screen`
(the optimizer's junk filter plus length and worked-example checks). What is dropped is kept in the state with
its reason, so a build's report says how much of the LLM's output was usable. A node that is interrupted is
rerun on resume, and its completed calls come from the cache.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Literal, TypeVar

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel

from visfeed.agents.concepts.context import ConceptContext
from visfeed.agents.concepts.schemas import AttributeList, PartList, ValueAnswer, name_reason, screen
from visfeed.agents.nodes.common import gather_budgeted
from visfeed.agents.prompting import load_prompt, with_article
from visfeed.errors import ProviderError
from visfeed.state.concepts import (
    PART_SEPARATOR,
    ConceptPart,
    ConceptState,
    ConceptTree,
    ValueSource,
    merge_values,
    normalize_value,
)
from visfeed.tools.concepts.grounding import FALLBACK_ATTRIBUTES
from visfeed.tools.llm import StructuredOutputError

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)
PROMPTS = "concepts/prompts"
MAX_NAME_WORDS = 3


class ConceptBuildError(ProviderError):
    """The LLM's answers left nothing to build a tree from (every answer invalid or dropped)."""


def concept_messages(name: str, **fields: object) -> list[BaseMessage]:
    """The concept system prompt plus the named request filled with ``fields``."""
    return [
        SystemMessage(content=load_prompt("system", PROMPTS).substitute()),
        HumanMessage(content=load_prompt(name, PROMPTS).substitute({k: str(v) for k, v in fields.items()})),
    ]


async def _ask(ctx: ConceptContext, msgs: list[BaseMessage], schema: type[T], task: str) -> T | None:
    """One request; an answer that never validated is traced and skipped (None), not fatal."""
    try:
        return await ctx.client.astructured(msgs, schema, task=task)
    except StructuredOutputError as exc:
        log.warning("task %s: no valid answer: %s", task, exc)
        ctx.tracer.emit("llm_invalid", task=task, error=str(exc))
        return None


async def _ask_all(
    ctx: ConceptContext, requests: Sequence[tuple[list[BaseMessage], str]], schema: type[T], task: str
) -> list[T | None]:
    """The requests concurrently (the client bounds them); a spent budget ends the build with what came."""
    coros: list[Awaitable[T | None]] = [_ask(ctx, m, schema, f"{task}:{what}") for m, what in requests]
    results, budget_hit = await gather_budgeted(coros)
    if budget_hit:
        log.warning("the LLM budget ran out during %s; the tree keeps what came before", task)
    return results


def _names(texts: Sequence[str], *, prompt: str, limit: int, what: str, rejected: list[dict[str, str]]) -> list[str]:
    """Screened, de-duplicated names (parts or attributes), at most ``limit``; drops recorded in ``rejected``."""
    kept: list[str] = []
    for raw in texts:
        t, why = screen(raw, own="", prompt=prompt, max_words=MAX_NAME_WORDS)
        why = why or name_reason(t)
        if why is None and PART_SEPARATOR in t:
            why = f"contains {PART_SEPARATOR!r}"
        if why is None and t in kept:
            why = "duplicate"
        if why is not None:
            rejected.append({"kind": what, "text": str(raw), "reason": why})
        elif len(kept) < limit:
            kept.append(t)
    return kept


async def propose_parts(state: ConceptState, runtime: Runtime[ConceptContext]) -> dict[str, Any]:
    """The next level of parts: the first level from the LLM (or the user), then sub-parts of each part."""
    ctx = runtime.context
    s = ctx.settings
    frontier = state.frontier()
    rejected: list[dict[str, str]] = []
    parts = dict(state.parts)
    if state.level == 0 and s.parts is not None:
        parts[""] = list(dict.fromkeys(normalize_value(p) for p in s.parts if normalize_value(p)))
    else:
        limit = s.max_parts if state.level == 0 else s.max_subparts
        requests = []
        for path in frontier:
            if state.level == 0:
                msgs = concept_messages("parts", domain=ctx.domain, n=limit)
            else:
                msgs = concept_messages("subparts", domain=ctx.domain, part=path.replace(PART_SEPARATOR, " "), n=limit)
            requests.append((msgs, path or "root"))
        answers = await _ask_all(ctx, requests, PartList, "parts")
        for path, (msgs, _), ans in zip(frontier, requests, answers, strict=True):
            prompt = str(msgs[-1].content)
            above = set(path.split(PART_SEPARATOR))  # a sub-part named like its parent says nothing new
            names = _names(ans.parts if ans else [], prompt=prompt, limit=limit, what="part", rejected=rejected)
            parts[path] = [n for n in names if n not in above]
    ctx.tracer.emit("concept_parts", level=state.level + 1, parts=parts, rejected=rejected)
    return {"parts": parts, "level": state.level + 1, "rejected": [*state.rejected, *rejected]}


def route_after_parts(
    state: ConceptState, runtime: Runtime[ConceptContext]
) -> Literal["propose_parts", "propose_attributes"]:
    """Another level while the depth allows it and the last level found parts."""
    if state.level < runtime.context.settings.depth and state.frontier():
        return "propose_parts"
    return "propose_attributes"


async def propose_attributes(state: ConceptState, runtime: Runtime[ConceptContext]) -> dict[str, Any]:
    """Attributes of each leaf part (the user's list for every part when given)."""
    ctx = runtime.context
    s = ctx.settings
    leaves = state.leaf_paths()
    rejected: list[dict[str, str]] = []
    if s.attributes is not None:
        given = list(dict.fromkeys(normalize_value(a) for a in s.attributes if normalize_value(a)))
        attributes = {p: given for p in leaves}
    else:
        requests = [
            (concept_messages("attributes", domain=ctx.domain, part=_spoken(p), n=s.max_attributes), p) for p in leaves
        ]
        answers = await _ask_all(ctx, requests, AttributeList, "attributes")
        attributes = {}
        for path, (msgs, _), ans in zip(leaves, requests, answers, strict=True):
            attributes[path] = _names(
                ans.attributes if ans else [], prompt=str(msgs[-1].content), limit=s.max_attributes,
                what="attribute", rejected=rejected,
            )  # fmt: skip
    structure = "user" if s.parts is not None and s.attributes is not None else "llm"
    if ctx.evidence is not None and s.ground:
        parts, attributes, structure = _facet_fallback(state.parts, attributes, ctx.domain, structure)
    else:
        parts = state.parts
    ctx.tracer.emit("concept_attributes", attributes=attributes, rejected=rejected, structure=structure)
    return {"parts": parts, "attributes": attributes, "structure": structure, "rejected": [*state.rejected, *rejected]}


def _facet_fallback(
    parts: dict[str, list[str]], attributes: dict[str, list[str]], domain: str, structure: str
) -> tuple[dict[str, list[str]], dict[str, list[str]], str]:
    """Parts and attributes where the LLM gave none usable: the visual vocabulary's facets.

    A leaf part without attributes gets the facet attributes (colour, shape, pattern, size); with no part at
    all the tree gets one part named after the domain ("the color of the fruit is red").
    """
    attributes = {p: a for p, a in attributes.items() if p}
    if not attributes:
        name = normalize_value(domain) if 0 < len(domain.split()) <= MAX_NAME_WORDS else ""
        name = name if name and PART_SEPARATOR not in name else "object"
        return {"": [name]}, {name: list(FALLBACK_ATTRIBUTES)}, "facets"
    bare = [p for p, a in attributes.items() if not a]
    if not bare:
        return parts, attributes, structure
    filled = {p: (a or list(FALLBACK_ATTRIBUTES)) for p, a in attributes.items()}
    return parts, filled, f"{structure}+facets"


def _spoken(path: str) -> str:
    """A part path as words: 'top/leaf' -> 'leaf of the top'."""
    names = path.split(PART_SEPARATOR)
    return " of the ".join(reversed(names))


async def propose_values(state: ConceptState, runtime: Runtime[ConceptContext]) -> dict[str, Any]:
    """The value of every (leaf part, attribute) for every class: one short request each (as Hi-CoDe)."""
    ctx = runtime.context
    s = ctx.settings
    keys = [(p, a, c) for p, attrs in state.attributes.items() for a in attrs for c in ctx.classnames]
    requests = [
        (
            concept_messages(
                "value", thing=with_article(c), domain=ctx.domain, attribute=a, part=_spoken(p), words=s.max_value_words
            ),
            f"{p}|{a}|{c}",
        )
        for p, a, c in keys
    ]
    answers = await _ask_all(ctx, requests, ValueAnswer, "value")
    accepted: list[tuple[str, str, str, str]] = []
    rejected: list[dict[str, str]] = []
    for (p, a, c), (msgs, what), ans in zip(keys, requests, answers, strict=True):
        if ans is None:
            rejected.append({"kind": "value", "key": what, "text": "", "reason": "no valid answer"})
            continue
        t, why = screen(ans.value, own=c, prompt=str(msgs[-1].content), max_words=s.max_value_words)
        if why is None:
            accepted.append((p, a, c, t))
        else:
            rejected.append({"kind": "value", "key": what, "text": ans.value, "reason": why})
    ctx.tracer.emit("concept_values", accepted=len(accepted), rejected=len(rejected))
    return {"answers": accepted, "rejected": [*state.rejected, *rejected]}


async def ground_values(state: ConceptState, runtime: Runtime[ConceptContext]) -> dict[str, Any]:
    """Each (class, part, attribute) value chosen by the class's feedback images (LLM answers as candidates).

    Skipped (every value kept as the LLM gave it) when the build is LLM-only or has no images.
    """
    ctx = runtime.context
    if ctx.evidence is None or not ctx.settings.ground:
        return {"sources": []}
    sources = ctx.evidence.ground(state.attributes, state.answers, ctx.classnames, ctx.settings.template)
    counts: dict[str, int] = {}
    for v in sources:
        counts[v.origin] = counts.get(v.origin, 0) + 1
    ctx.tracer.emit("concept_grounding", origins=counts, overruled=[v.note() for v in sources if v.note()][:20])
    return {"sources": [v.model_dump(mode="json") for v in sources]}


async def assemble_tree(state: ConceptState, runtime: Runtime[ConceptContext]) -> dict[str, Any]:
    """The validated tree: values merged across classes; leaf parts without any value are pruned."""
    ctx = runtime.context
    sources = [ValueSource.model_validate(v) for v in state.sources]
    if sources:
        values = merge_values([(v.part, v.attribute, v.class_name, v.value) for v in sources], ctx.classnames)
    else:
        values = merge_values(state.answers, ctx.classnames)
    used = {(v.part, v.attribute) for v in values}
    pruned = state.model_copy(
        update={"attributes": {p: [a for a in attrs if (p, a) in used] for p, attrs in state.attributes.items()}}
    )
    parts = _prune(pruned.part_models())
    if not values or not parts:
        raise ConceptBuildError(
            f"the LLM gave no usable concept value ({len(state.rejected)} answers dropped; see `visfeed trace` "
            "on the build folder); give parts and attributes yourself (--parts, --attributes) or use a stronger model"
        )
    tree = ConceptTree(
        domain=ctx.domain, classnames=ctx.classnames, template=ctx.settings.template, parts=parts, values=values,
        sources=sources,
    )  # fmt: skip
    return {"tree": tree.model_dump(mode="json")}


def _prune(parts: list[ConceptPart]) -> list[ConceptPart]:
    """The parts that have attributes, or sub-parts that do (recursively); the rest carry no clue."""
    out = []
    for p in parts:
        kids = _prune(p.parts)
        if p.attributes or kids:
            out.append(p.model_copy(update={"parts": kids}))
    return out
