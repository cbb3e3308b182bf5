"""The tree build's runner: a build folder with the same machinery as an optimization run.

The folder holds ``config.yaml`` (the run config: dataset, provider, seed, LLM transport),
``concepts.yaml`` (the :class:`~visfeed.state.concepts.ConceptSettings`, the domain and the classes),
``checkpoints.sqlite`` (LangGraph's SQLite checkpointer, one checkpoint per node), ``llm_cache.sqlite``
(the response cache), ``trace.jsonl`` (every LLM call with prompt and answer), ``tree.json`` (the tree,
editable by hand) and ``build.json`` (how much of the LLM's output was usable). An interrupted build resumes
from its last checkpoint; the calls of the interrupted node that had completed come from the cache.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiosqlite
import yaml
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from pydantic import BaseModel, Field

from visfeed.agents.concepts.context import ConceptContext
from visfeed.agents.concepts.graph import build_graph
from visfeed.agents.trace import Tracer
from visfeed.errors import ConfigError
from visfeed.fileio import write_json_atomic, write_text_atomic
from visfeed.state.concepts import ConceptSettings, ConceptState, ConceptTree
from visfeed.state.config import RunConfig
from visfeed.state.rundir import CHECKPOINTS, CONFIG_FILE
from visfeed.tools.concepts.grounding import ImageEvidence
from visfeed.tools.llm import Budget, LLMClient, ProviderHandle, ResponseCache

TREE_FILE = "tree.json"
SETTINGS_FILE = "concepts.yaml"
BUILD_FILE = "build.json"
THREAD = {"configurable": {"thread_id": "concepts"}}


class TreeBuild(BaseModel):
    """What a build made and what it cost: the tree plus counts of the LLM's usable and dropped answers."""

    tree_path: str
    clues: int
    parts: list[str] = Field(description="Leaf part paths in the tree.")
    values_accepted: int
    rejected: dict[str, int] = Field(description="Dropped answers per reason ('kind: reason' -> count).")
    rejected_examples: list[dict[str, str]] = Field(default_factory=list, description="The first dropped answers.")
    structure: str = Field(
        default="llm", description="Where parts and attributes came from: llm, user, or the vocabulary's facets."
    )
    structured_mode: str = Field(
        default="prompt", description="How answers were constrained: json_object_schema = grammar from the schema."
    )
    grounded: bool = Field(default=False, description="Whether values were chosen by the classes' images.")
    origins: dict[str, int] = Field(
        default_factory=dict, description="Grounded values per origin (images, both, llm_overruled)."
    )
    disagreements: list[str] = Field(
        default_factory=list, description="The first values the images overruled ('lemon skin color: LLM: ...')."
    )
    llm: dict[str, Any] = Field(default_factory=dict, description="Calls, cache hits and tokens of this process.")
    wall_s: float = 0.0


def _serde() -> JsonPlusSerializer:
    return JsonPlusSerializer(allowed_msgpack_modules=[("visfeed.state.concepts", "ConceptState")])


def build_tree(
    out_dir: Path,
    cfg: RunConfig,
    settings: ConceptSettings,
    classnames: list[str],
    domain: str,
    handle: ProviderHandle,
    *,
    evidence: ImageEvidence | None = None,
    resume: bool = False,
) -> TreeBuild:
    """Build (or, with ``resume``, continue building) the tree of ``classnames`` in ``out_dir``.

    With ``evidence`` (the classes' feedback images) and ``settings.ground``, values are chosen by the images.
    """
    out_dir = Path(out_dir)
    started = (out_dir / CHECKPOINTS).exists()
    if started and not resume:
        raise ConfigError(f"{out_dir} already holds a tree build; continue it with --resume or choose another --out")
    if resume and not started:
        raise ConfigError(f"{out_dir} holds no tree build to resume (no {CHECKPOINTS})")
    if resume:
        stored = yaml.safe_load((out_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
        settings = ConceptSettings.model_validate(stored["settings"])
        domain, classnames = stored["domain"], stored["classnames"]
    else:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out_dir / CONFIG_FILE, yaml.safe_dump(cfg.to_file_dict(), sort_keys=False))
            record = {"settings": settings.model_dump(mode="json"), "domain": domain, "classnames": classnames}
            write_text_atomic(out_dir / SETTINGS_FILE, yaml.safe_dump(record, sort_keys=False))
        except OSError as exc:
            raise ConfigError(f"build folder {out_dir} cannot be written ({exc.strerror or exc})") from exc
    t0 = time.perf_counter()
    tracer = Tracer(out_dir)
    budget = Budget(max_calls=cfg.budget.max_calls) if cfg.budget.max_calls is not None else None
    cache = ResponseCache(cfg.llm.cache_file or out_dir / "llm_cache.sqlite")
    client = LLMClient(handle, cfg.llm_settings, cache=cache, budget=budget, on_call=tracer.llm_call)
    ctx = ConceptContext(
        settings=settings, classnames=list(classnames), domain=domain, client=client, tracer=tracer, evidence=evidence
    )
    try:
        tracer.emit("resume" if resume else "run_start", kind="concepts", classes=len(classnames), domain=domain)
        state = asyncio.run(_arun(out_dir, ctx))
    finally:
        cache.close()
        client.close()
        tracer.close()
    if state.tree is None:
        raise ConfigError(f"the tree build in {out_dir} ended without a tree")
    tree = ConceptTree.model_validate(state.tree)
    tree.save(out_dir / TREE_FILE)
    reasons = Counter(f"{r['kind']}: {r['reason']}" for r in state.rejected)
    build = TreeBuild(
        tree_path=str(out_dir / TREE_FILE),
        clues=len(tree.values),
        parts=[p for p, _ in tree.leaf_parts()],
        values_accepted=len(state.answers),
        rejected=dict(reasons.most_common()),
        rejected_examples=state.rejected[:20],
        structure=state.structure,
        structured_mode=handle.structured_mode,
        grounded=bool(tree.sources),
        origins=dict(Counter(v.origin for v in tree.sources).most_common()),
        disagreements=[f"{v.class_name} {v.part} {v.attribute}: {v.note()}" for v in tree.sources if v.note()][:30],
        llm=client.totals.model_dump(),
        wall_s=time.perf_counter() - t0,
    )
    write_json_atomic(out_dir / BUILD_FILE, build.model_dump(mode="json"))
    return build


async def _arun(out_dir: Path, ctx: ConceptContext) -> ConceptState:
    async with aiosqlite.connect(str(out_dir / CHECKPOINTS)) as conn:
        graph = build_graph(checkpointer=AsyncSqliteSaver(conn, serde=_serde()))
        snap = await graph.aget_state(THREAD)
        start = None if snap.values else ConceptState()
        # Not snap.next: LangGraph leaves out of it a task whose writes were saved before the kill that
        # stopped its checkpoint; the build is not finished (as in agents/run.py).
        if start is not None or snap.tasks:
            await graph.ainvoke(start, THREAD, context=ctx, durability="sync")
        final = await graph.aget_state(THREAD)
        return ConceptState.model_validate(final.values)
