"""The loop's core with ``crossover: library``: every class keeps an item library, a search assembles its set.

Why: a search over a class's own visual-word sentences, with no LLM, beat the LLM loop's crossover by 5-8
points (issue 25): choosing *which* sentences a class averages, with a cross-entropy-regularised fitness
on the few shots and the round picked on validation, is worth more than accepting whole proposals. So the
loop is that search plus what the LLM adds:

- before the loop, each class's library holds name templates, the one-shot LLM descriptions and sentences
  of its best visual words; the search's pick is iteration 0 (so the loop starts where the searched-words
  line ends, with the one-shot descriptions among the items);
- each iteration the LLM's proposals (and the no-LLM visual-words proposal against today's confusers) join
  the libraries; the search runs again from the current sets over every item; the feedback node's
  validation split picks the iteration and stops the loop;
- the memory banks learn which new items the search kept (positive) and which it dropped (negative), and
  the next prompts show them.

The state holds item *texts* (``descriptions``, what people and the LLM read) and the library (texts,
sources, prompts); sessions score the chosen items' prompts with the nameless template, so the search's
vectors and the sessions' centroids are the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool

from visfeed.agents.agent_tools import SCORE
from visfeed.agents.context import RunContext
from visfeed.state.models import BankEntry, ClassChange, Descriptions, GraphState, LibraryItem
from visfeed.tools.feedback.text import quote
from visfeed.tools.scoring.session import ScoringSession
from visfeed.tools.search.items import (
    NAME_TEMPLATES,
    ItemLibrary,
    SearchResult,
    accuracy_of,
    build_library,
    canonical,
    search_items,
    single,
    unique_items,
)
from visfeed.tools.search.proapo import description_item

TEMPLATES = ["{}"]
"""The template set of description items: the class name once, joined by the run's template."""


def _library(items: Mapping[str, Sequence[LibraryItem]], session: ScoringSession) -> ItemLibrary:
    names = session.classnames
    return build_library(names, [list(items[n]) for n in names], session.encoder.embed_texts, mean_of_cosines=True)


def _search(
    ctx: RunContext, library: ItemLibrary, init: list[list[int]], classes: Sequence[int] | None = None
) -> SearchResult:
    """The item search on the feedback split, its round picked on validation (never the test split)."""
    fb, val = ctx.session.engine, ctx.val_session.engine if ctx.val_session is not None else None
    return search_items(
        library, fb.x.cpu().numpy(), fb.labels.cpu().numpy(), init=init, rounds=ctx.config.search.library_rounds,
        val_emb=val.x.cpu().numpy() if val is not None else None,
        val_labels=val.labels.cpu().numpy() if val is not None else None, seed=ctx.config.seed, classes=classes,
    )  # fmt: skip


def _traced_search(ctx: RunContext, library: ItemLibrary, init: list[list[int]]) -> list[list[int]]:
    found = _search(ctx, library, init)
    ctx.tracer.emit("library_search", round_picked=found.round_picked, picked_on=found.picked_on, rounds=found.rounds)
    return found.chosen


def library_trial(ctx: RunContext, state: GraphState, name: str, descriptions: Sequence[str]) -> dict[str, Any]:
    """The agent's view of the search: which of ``descriptions`` would it keep for class ``name``.

    They join a copy of the class's library (nothing is kept) and the class's set is searched again, the
    others fixed; returns the kept and dropped texts and the class's feedback accuracy after and its change.
    """
    cfg, names = ctx.config, ctx.session.classnames
    c = names.index(name)
    new = unique_items(
        (description_item(name, d, state.templates, cfg.resolved_template, "agent-trial") for d in descriptions),
        have=(x.text for x in state.library[name]),
    )
    items = {n: [*state.library[n], *new] if n == name else state.library[n] for n in names}
    library = _library(items, ctx.session)
    init = [library.index(k, state.descriptions[n]) for k, n in enumerate(names)]
    found = _search(ctx, library, init, classes=[c])
    fb = ctx.session.engine
    x, y = fb.x.cpu().numpy(), fb.labels.cpu().numpy()
    own = y == c
    before = accuracy_of(library.vectors(init), x[own], y[own])
    after = accuracy_of(library.vectors(found.chosen), x[own], y[own])
    kept = [library.texts[c][i] for i in found.chosen[c]]
    return {
        "class_name": name,
        "kept": [d for d in (x.text for x in new) if d in kept],
        "dropped": [d for d in (x.text for x in new) if d not in kept],
        "class_accuracy": after,
        "class_accuracy_change": after - before,
    }


def initial_library(ctx: RunContext, state: GraphState, initial: Descriptions) -> dict[str, Any]:
    """Iteration 0 of library mode: the libraries and the search's pick among them (a state update)."""
    cfg, names = ctx.config, ctx.session.classnames
    items: dict[str, list[LibraryItem]] = {}
    for c, name in enumerate(names):
        # the name in the shown text is quoted like every class name a prompt carries; the prompt has it raw
        own = [LibraryItem(text=t.format(quote(name)), source="name", prompts=[canonical(t.format(name))])
               for t in NAME_TEMPLATES]  # fmt: skip
        if cfg.search.library_llm_items:
            own += [description_item(name, d, TEMPLATES, cfg.resolved_template, "oneshot") for d in initial[name]]
        for s in ctx.signals:  # the signals' item sources (visual words: sentences of the class's best words)
            own += [single(t, s.item_source or s.name) for t in s.library_items(c, state.vocabulary_extra)]
        items[name] = unique_items(own)
    library = _library(items, ctx.session)
    chosen = _traced_search(ctx, library, [list(range(len(NAME_TEMPLATES)))] * len(names))
    descriptions = {n: [library.texts[c][i] for i in chosen[c]] for c, n in enumerate(names)}
    return {"library": items, "templates": TEMPLATES, "descriptions": descriptions}


def library_crossover(
    ctx: RunContext, state: GraphState, it: int
) -> tuple[dict[str, list[str]], dict[str, ClassChange], dict[str, list[LibraryItem]]]:
    """Add the iteration's proposals to the libraries and search every class's set again.

    Returns the new descriptions, the per-class changes (kept proposals are additions; dropped ones come
    back as ``rejected``, the negative bank) and the libraries of the classes that gained items.
    """
    cfg, session, names = ctx.config, ctx.session, ctx.session.classnames
    grown: dict[str, list[LibraryItem]] = {}
    proposed: dict[str, list[str]] = {}
    for name, cands in state.candidates.items():
        new = unique_items(
            (
                description_item(name, d, state.templates, cfg.resolved_template, c.origin, it)
                for c in cands
                if cfg.search.library_llm_items or ctx.signal(c.origin) is not None  # a signal's proposals need no LLM
                for d in c.descriptions
            ),
            have=(x.text for x in state.library[name]),
        )
        if new:
            grown[name] = [*state.library[name], *new]
            proposed[name] = [x.text for x in new]
    items = {n: grown.get(n, state.library[n]) for n in names}
    library = _library(items, session)
    before_obj = session.objective()
    init = [library.index(c, state.descriptions[n]) for c, n in enumerate(names)]
    chosen = _traced_search(ctx, library, init)
    descriptions = {n: [library.texts[c][i] for i in chosen[c]] for c, n in enumerate(names)}
    session.set_descriptions(state.model_copy(update={"library": items}).prompts_of(descriptions))
    n1, m1 = session.objective()
    origins = {x.text: x.source for n in names for x in items[n]}
    changes: dict[str, ClassChange] = {}
    for name in names:
        before, after = state.descriptions[name], descriptions[name]
        dropped = [t for t in proposed.get(name, []) if t not in after]
        if before == after and not dropped:
            continue
        changes[name] = ClassChange(
            before=before, after=after, origins={t: origins[t] for t in after if t not in before},
            delta_correct=n1 - before_obj[0], delta_margin=m1 - before_obj[1],
            rejected=[
                BankEntry(text=t, action="proposed", iteration=it, delta_correct=0, delta_margin=0.0)
                for t in dropped
            ],
        )  # fmt: skip
    return descriptions, changes, grown


TRIAL_HELP = (
    "Try candidate descriptions for one class: the library search runs with them added and returns which it "
    "would keep in the class's set and the class accuracy it would reach, without changing anything."
)


def library_trial_tool(ctx: RunContext, state: GraphState) -> BaseTool:
    """:func:`library_trial` as the agent's ``score_descriptions`` tool (text for the model, result as artifact)."""

    def score_descriptions(class_name: str, descriptions: list[str]) -> tuple[str, dict[str, Any]]:
        r = library_trial(ctx, state, class_name, descriptions)
        text = (
            f"The search would keep {'; '.join(r['kept']) or 'none of them'} and drop "
            f"{'; '.join(r['dropped']) or 'none'}; {class_name} accuracy {r['class_accuracy']:.0%} "
            f"({r['class_accuracy_change']:+.0%})."
        )
        return text, r

    return StructuredTool.from_function(
        score_descriptions, name=SCORE, description=TRIAL_HELP, response_format="content_and_artifact"
    )
