"""The runner the CLI calls: ``optimize(config)`` starts a run, ``resume(run_dir)`` continues one.

A run directory holds ``config.yaml``, ``checkpoints.sqlite`` (LangGraph's SQLite checkpointer, one
checkpoint per node), ``llm_cache.sqlite`` (the response cache, unless configured elsewhere),
``trace.jsonl``, ``descriptions.json`` (best set, CuPL format), ``descriptions_raw.json`` (best set,
raw descriptions, usable as ``init_file``) and ``result.json``. A resumed run reruns at most the node
that was interrupted; its LLM calls that had completed come from the cache, so the result equals that of
an uninterrupted run. Ctrl-C writes ``status: interrupted`` and leaves everything resumable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import yaml
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from visfeed.agents.checkpoints import THREAD, checkpoint_serde
from visfeed.agents.context import ProgressFn, RunContext
from visfeed.agents.finalize import score_methods
from visfeed.agents.graph import build_graph
from visfeed.agents.resources import EmbeddedSplit, RunResources, build_resources
from visfeed.agents.trace import Tracer
from visfeed.errors import ConfigError, VisfeedError
from visfeed.fileio import write_json_atomic, write_text_atomic
from visfeed.state.config import RunConfig
from visfeed.state.models import GraphState, Usage
from visfeed.state.rundir import (
    CHECKPOINTS,
    CONFIG_FILE,
    EVALUATION_FILE,
    LIBRARY_FILE,
    RESULT_FILE,
    RunResult,
    default_run_dir,
    load_result,
    read_trace,
    usage_from_trace,
)
from visfeed.tools.feedback.baselines import description_prompts
from visfeed.tools.feedback.registry import start_signals
from visfeed.tools.llm import Budget, LLMClient, ResponseCache
from visfeed.tools.scoring.session import ScoringSession, resolve_logit_scale

log = logging.getLogger(__name__)


@dataclass
class _Opened:
    """What a run has opened so far: the error path reports the client's usage and closes the resources."""

    res: RunResources | None = None
    client: LLMClient | None = None


def optimize(
    config: RunConfig, *, progress: ProgressFn | None = None, resources: RunResources | None = None
) -> RunResult:
    """Start a new run in ``config.run_dir`` (or a fresh default folder) and run it to the end."""
    run_dir = Path(config.run_dir) if config.run_dir is not None else default_run_dir(config)
    if (run_dir / CHECKPOINTS).exists():
        raise ConfigError(
            f"run_dir {run_dir} already holds a run; continue it with `visfeed resume {run_dir}` or choose another run_dir"
        )
    own = resources is None
    # Data, backbone and provider problems are usage errors: they surface before anything is written.
    res = resources if resources is not None else build_resources(config)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        config = config.with_updates(run_dir=run_dir)
        write_text_atomic(run_dir / CONFIG_FILE, yaml.safe_dump(config.to_file_dict(), sort_keys=False))
    except BaseException as exc:
        if own:
            res.close()
        if isinstance(exc, OSError):  # e.g. a read-only file system, where permission bits do not tell
            raise ConfigError(
                f"run directory {run_dir} cannot be written ({exc.strerror or exc}); choose another --run-dir"
            ) from exc
        raise
    return _execute(config, run_dir, resuming=False, progress=progress, resources=res, own=own)


def resume(
    run_dir: str | Path, *, progress: ProgressFn | None = None, resources: RunResources | None = None
) -> RunResult:
    """Continue an interrupted or failed run; a finished run's result is returned as it is."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no {CONFIG_FILE}); start one with `visfeed optimize`")
    config = RunConfig.load(run_dir / CONFIG_FILE)
    done = load_result(run_dir)
    if done is not None and (done.status == "completed" or done.status.startswith("stopped")):
        return done
    return _execute(config, run_dir, resuming=True, progress=progress, resources=resources, own=resources is None)


def _execute(
    cfg: RunConfig,
    run_dir: Path,
    *,
    resuming: bool,
    progress: ProgressFn | None,
    resources: RunResources | None,
    own: bool,
) -> RunResult:
    """Run the graph; ``own``: this call built the resources and must close them (stop the LLM server)."""
    t0 = time.perf_counter()
    tracer = Tracer(run_dir)
    opened = _Opened()
    result = RunResult(status="running", run_dir=str(run_dir), config=cfg.to_file_dict())
    write_json_atomic(run_dir / RESULT_FILE, result.model_dump(mode="json"))
    try:
        res = resources if resources is not None else build_resources(cfg)
        opened.res = res
        scale, scale_source = resolve_logit_scale(cfg.method.logit_scale, res.logit_scale)
        result = result.model_copy(update={"logit_scale": scale, "logit_scale_source": scale_source})
        tracer.emit(
            "resume" if resuming else "run_start",
            config=cfg.to_file_dict(),
            dataset=res.dataset,
            classes=len(res.classnames),
            backbone=res.backbone,
            data=res.extras.get("load_report"),
            logit_scale=scale,
            logit_scale_source=scale_source,
        )
        projected = cfg.projected_llm_calls(len(res.classnames))
        log.info("projected LLM calls for this configuration: at most %d (plus regenerations)", projected)
        tracer.emit("projection", llm_calls=projected, classes=len(res.classnames))
        if progress is not None:
            progress("projection", {"projected_llm_calls": projected})
        state, client = asyncio.run(_arun(cfg, run_dir, res, tracer, resuming, progress, opened, scale))
        result = _final_result(cfg, run_dir, res, state, tracer, client, t0).model_copy(
            update={"logit_scale": scale, "logit_scale_source": scale_source}
        )
    except KeyboardInterrupt:
        log.warning("interrupted; continue with `visfeed resume %s`", run_dir)
        result = _partial(result, opened, t0, "interrupted", None)
    except (VisfeedError, OSError, RuntimeError, ValueError) as exc:
        log.exception("run %s failed", run_dir)
        result = _partial(result, opened, t0, f"failed: {type(exc).__name__}: {exc}", str(exc))
    finally:
        if own and opened.res is not None:
            opened.res.close()
    tracer.emit("run_end", status=result.status, wall_s=time.perf_counter() - t0)
    tracer.close()
    write_json_atomic(run_dir / RESULT_FILE, result.model_dump(mode="json"))
    return result


def _partial(result: RunResult, opened: _Opened, t0: float, status: str, error: str | None) -> RunResult:
    llm = opened.client.totals.model_dump() if opened.client is not None else {}
    return result.model_copy(
        update={
            "status": status,
            "error": error,
            "llm": llm,
            "timings": {"wall_s": time.perf_counter() - t0},
            "finished_at": datetime.now(UTC).isoformat(),
        }
    )


async def _arun(
    cfg: RunConfig,
    run_dir: Path,
    res: RunResources,
    tracer: Tracer,
    resuming: bool,
    progress: ProgressFn | None,
    opened: _Opened,
    logit_scale: float,
) -> tuple[GraphState, LLMClient]:
    """Run the graph to its end (or continue it); returns the final state and the run's LLM client."""

    def make_session(split: EmbeddedSplit) -> ScoringSession:
        return ScoringSession(
            res.encoder,
            res.classnames,
            split.image_emb,
            split.labels,
            template=cfg.session_template,
            device=cfg.backbone.device,
            lam=cfg.method.lam,
            m=cfg.method.top_m,
            logit_scale=logit_scale,
        )

    session = make_session(res.feedback)
    val_session = make_session(res.validation) if res.validation is not None else None
    budget = None
    if any(v is not None for v in (cfg.budget.max_calls, cfg.budget.max_total_tokens, cfg.budget.max_cost_usd)):
        budget = Budget(
            max_calls=cfg.budget.max_calls, max_tokens=cfg.budget.max_total_tokens, max_cost_usd=cfg.budget.max_cost_usd
        )
    settings = cfg.llm_settings
    cache = ResponseCache(cfg.llm.cache_file or run_dir / "llm_cache.sqlite")
    client = LLMClient(res.handle, settings, cache=cache, budget=budget, on_call=tracer.llm_call)
    opened.client = client
    try:
        async with aiosqlite.connect(str(run_dir / CHECKPOINTS)) as conn:
            graph = build_graph(checkpointer=AsyncSqliteSaver(conn, serde=checkpoint_serde()))
            run_cfg: Any = {**THREAD, "recursion_limit": 20 + 6 * (cfg.method.max_iterations + 2)}
            snap = await graph.aget_state(run_cfg)
            usage = Usage()
            start: GraphState | None = GraphState()
            if resuming and snap.values:
                usage = Usage(**usage_from_trace(run_dir))
                start = None  # continue from the last checkpoint
                if budget is not None:
                    budget.restore(
                        calls=usage.calls, tokens=usage.prompt_tokens + usage.completion_tokens, cost_usd=usage.cost_usd
                    )
            ctx = RunContext(
                config=cfg,
                session=session,
                client=client,
                tracer=tracer,
                val_session=val_session,
                usage_base=usage,
                progress=progress,
                supports_tools=res.handle.supports_tools,
                signals=start_signals(cfg, res),
            )
            # Not snap.next: LangGraph leaves out of it a task whose writes were saved before the kill
            # that stopped its checkpoint (crash point checkpoint:crossover:0); the run is not finished.
            if start is not None or snap.tasks:
                # The graph's own final values: reading them back with aget_state would replay every
                # stored write of the class-sized fields (2 s and +300 MB at 1,000 classes x 10 iterations).
                values = await graph.ainvoke(start, run_cfg, context=ctx, durability="sync")
            else:
                values = snap.values
            return GraphState.model_validate(values), client
    finally:
        cache.close()
        client.close()


def _llm_wall(client: LLMClient) -> float:
    """Seconds during which at least one LLM request was in flight (union of call intervals)."""
    spans = sorted(
        (r.started_at.timestamp(), r.started_at.timestamp() + r.latency_s) for r in client.records if not r.cache_hit
    )
    total, end = 0.0, float("-inf")
    for s, e in spans:
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


def _final_result(
    cfg: RunConfig,
    run_dir: Path,
    res: RunResources,
    state: GraphState,
    tracer: Tracer,
    client: LLMClient,
    t0: float,
) -> RunResult:
    graph_s = time.perf_counter() - t0
    t_eval = time.perf_counter()
    scores, details = score_methods(res, cfg, state)
    search_s = details.pop("search_s", {})  # timings: not part of the evaluation a resumed run must repeat
    write_json_atomic(run_dir / EVALUATION_FILE, details)
    tracer.emit("evaluation", split="test", methods={k: v.model_dump() for k, v in scores.items()})
    eval_s = time.perf_counter() - t_eval
    best = state.best or state.descriptions
    write_json_atomic(run_dir / "descriptions.json", description_prompts(state.prompts_of(best), cfg.session_template))
    write_json_atomic(run_dir / "descriptions_raw.json", best)
    if state.library:  # every item the search could choose, and which it chose
        write_json_atomic(run_dir / LIBRARY_FILE, {
            n: [{**x.model_dump(), "chosen": x.text in best[n]} for x in items] for n, items in state.library.items()
        })  # fmt: skip
    wall = time.perf_counter() - t0
    llm_wall = _llm_wall(client)
    nodes: dict[str, float] = {}
    for e in read_trace(run_dir, events={"node_end"}):
        nodes[e["node"]] = nodes.get(e["node"], 0.0) + float(e.get("duration_s", 0.0))
    status = "stopped: budget" if state.stop_reason == "budget" else "completed"
    stop = state.stop_reason or ("max_iterations" if state.iteration >= cfg.method.max_iterations else "patience")
    u = state.usage
    return RunResult(
        status=status,
        run_dir=str(run_dir),
        dataset=res.dataset,
        n_classes=len(res.classnames),
        iterations=state.iteration,
        best_iteration=state.best_iteration,
        stop_reason=stop,
        optimized=scores.get("optimized"),
        baselines={k: v for k, v in scores.items() if k != "optimized"},
        history=state.history,
        llm={**u.model_dump(), "this_process": client.totals.model_dump()},
        timings={
            "wall_s": wall,
            "graph_s": graph_s,
            "final_eval_s": eval_s,
            "llm_wall_s": llm_wall,
            "non_llm_s": wall - llm_wall,
            "non_llm_fraction": (wall - llm_wall) / wall if wall > 0 else 0.0,
            "nodes_s": nodes,
            "search_s": search_s,
        },
        filter_dropped=state.filter_dropped,
        image_side=details.get("image_side"),
        config=cfg.to_file_dict(),
        finished_at=datetime.now(UTC).isoformat(),
    )


__all__ = ["checkpoint_serde", "optimize", "resume"]
