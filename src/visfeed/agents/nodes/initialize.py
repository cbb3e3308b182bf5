"""Initialization: one-shot LLM descriptions (CuPL/DCLIP style) per group of classes, or a CuPL JSON file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from visfeed.agents.context import RunContext, traced
from visfeed.agents.library import initial_library
from visfeed.agents.nodes.common import ask_descriptions, chunks, gather_budgeted
from visfeed.agents.nodes.vocabulary import extend_vocabulary
from visfeed.agents.prompting import PROSE_ASPECTS, messages, prose_requests, quoted
from visfeed.agents.schemas import NameMatcher, batch_to_map, clean_description
from visfeed.errors import BudgetExceeded, ConfigError
from visfeed.state.models import Descriptions, GraphState, LineageEntry
from visfeed.state.templates import parse_source
from visfeed.tools.feedback.description_files import read_description_file

log = logging.getLogger(__name__)

FALLBACK_DESCRIPTION = "its typical appearance"


def load_description_file(path: Path, classnames: list[str]) -> Descriptions:
    """Initial descriptions from a description file in any format ``visfeed eval -D`` reads.

    CuPL JSON, ``class: text`` lines, DCLIP descriptors or an IVF list (a ``dclip:``-style prefix names the
    format); their texts become descriptions as they are, joined to the class by the run's template. Every
    class must be present and the file must hold no other class.
    """
    texts = read_description_file(*parse_source(str(path))).for_classes(classnames, descriptors=True)
    out: Descriptions = {c: list(dict.fromkeys(d for d in map(clean_description, ts) if d)) for c, ts in texts.items()}
    missing = [c for c, descs in out.items() if not descs]
    if missing:
        raise ConfigError(f"init_file {path}: no descriptions for classes {missing[:10]}; add them to the file")
    return out


@traced
async def initialize(state: GraphState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Write the initial descriptions D0 (skipped when the state already has them)."""
    ctx = runtime.context
    cfg = ctx.config
    names = ctx.session.classnames
    if state.descriptions:
        return {}
    budget_hit = False
    extra: list[str] = []
    if ctx.signal("visual_words") is not None and cfg.signals.visual_words.extend:  # the words signal's one LLM step
        try:
            extra = await extend_vocabulary(ctx, names)
        except BudgetExceeded:
            budget_hit = True
    if cfg.method.init_file is not None:
        descs = load_description_file(cfg.method.init_file, names)
        origin = "init-file"
    else:
        origin = "init"
        descs = {}
        todo = list(names)
        n_prose = min(cfg.prose_init_calls, len(PROSE_ASPECTS))
        for attempt in range(2):  # one retry for classes the model skipped
            groups = chunks(todo, cfg.group_size)
            # Prose: one call per aspect; a retry asks about the next aspects (equal prompts, equal answers).
            aspects = [PROSE_ASPECTS[(attempt * n_prose + j) % len(PROSE_ASPECTS)] for j in range(n_prose)]
            coros = [
                ask_descriptions(
                    ctx,
                    messages("init", n=cfg.method.n_init, classes=quoted(g)),
                    task="init",
                    salt=f"init:a{attempt}:g{i}",
                    classes=g,
                    prose=prose_requests(aspects),
                )
                for i, g in enumerate(groups)
            ]
            results, hit = await gather_budgeted(coros)
            budget_hit |= hit
            for g, batch in zip(groups, results, strict=True):
                if batch is not None:
                    descs.update(batch_to_map(batch, g, limit=cfg.method.n_init))
            todo = [c for c in names if c not in descs]
            if not todo or budget_hit:
                break
        if cfg.method.drop_other_class_names:
            matcher = NameMatcher(names)
            for name, ds in descs.items():
                kept = [d for d in ds if matcher.other_class(d, name) is None]
                descs[name] = kept
        for name in names:
            if not descs.get(name):
                log.warning("no initial descriptions for %r from the LLM; using a neutral fallback", name)
                ctx.tracer.emit("init_fallback", class_name=name)
                descs[name] = [FALLBACK_DESCRIPTION]
        descs = {n: descs[n] for n in names}
    update: dict[str, Any] = {"descriptions": descs}
    origins = {(n, d): origin for n in names for d in descs[n]}
    if cfg.search.crossover == "library":  # iteration 0 is the search's pick from each class's library
        update = initial_library(ctx, state.model_copy(update={"vocabulary_extra": extra}), descs)
        origins = {(n, x.text): x.source for n in names for x in update["library"][n]}
    lineage = [
        LineageEntry(class_name=n, text=d, introduced_iteration=0, origin=origins[(n, d)])
        for n in names
        for d in update["descriptions"][n]
    ]
    for e in lineage:
        ctx.tracer.emit("lineage_add", **e.model_dump())
    ctx.notify("initialized", classes=len(names), descriptions=sum(len(v) for v in update["descriptions"].values()))
    return {
        **update,
        "initial": descs,
        "lineage": lineage,
        "usage": ctx.usage(),
        "stop_reason": "budget" if budget_hit else None,
        "vocabulary_extra": extra,
    }
