"""Scale: a whole optimization run over many classes on synthetic embeddings, with a scripted LLM.

Nothing but the far side of the network is fake: the real graph, LLM client (cache, accounting,
concurrency), SQLite checkpointer, trace and final evaluation run; the text encoder is a bag of fixed
random word vectors and the LLM a deterministic scripted chat model answering from the prompt.

Prints and writes as JSON:
- peak_rss_mb: peak resident memory of the process (resource.getrusage) when the run has returned
  (final evaluation included), imports included; rss_before_run_mb, the peak before the run started
  (imports of torch, open_clip, faiss, langgraph); peak_rss_with_checks_mb, the peak after this script
  rebuilt the state of every iteration from the checkpoints for the figures below;
- wall_s and llm_calls of the run;
- per iteration (taken when feedback starts, i.e. at each iteration boundary): elapsed seconds, size of
  checkpoints.sqlite (with its -wal) and of the rows it holds (checkpoints and pending writes), the most
  bytes one graph step of that iteration added (its checkpoint row plus the writes of the node that
  produced it), the size of the GraphState (JSON) rebuilt from the checkpoints at the iteration's end,
  and the iteration's seconds split into LLM time (union of the calls in flight) and the rest (non-LLM),
  and the process's CPU seconds in the iteration (a fairer figure than wall time on a shared machine; it
  includes the scripted LLM's own few milliseconds per call); the last row runs from its feedback to the
  end of the run, so it includes the final evaluation on the test split;
  growth per iteration is the difference of consecutive rows.
- the machine's load averages (1, 5, 15 min) at the start and the end: timings on a shared machine
  mean little without them;
- with --profile PATH: a cProfile of the run (PATH.prof, and PATH.txt with the top functions).

Usage: python benchmarks/scale.py --classes 1000 --iterations 10 --threads 1 \
    --out benchmarks/results/scale_library_1000x10.json  (the default loop; --crossover auto: the paper's)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import json
import os
import platform
import re
import resource
import sqlite3
import sys
import tempfile
import time
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
import numpy as np
import torch
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from threadpoolctl import threadpool_info, threadpool_limits

from profiling import write_profile
from visfeed.agents.graph import build_graph
from visfeed.agents.resources import EmbeddedSplit, RunResources
from visfeed.agents.run import checkpoint_serde, optimize
from visfeed.state.config import RunConfig
from visfeed.state.models import GraphState
from visfeed.state.rundir import CHECKPOINTS, read_trace
from visfeed.tools.llm import ProviderHandle

DIM = 64
VOCAB = [f"w{i}" for i in range(400)]  # attribute words; each class has 3
NOISE = ["shiny", "fresh", "bright", "smooth", "plain", "common"]
JSON_NAME = r'"((?:[^"\\]|\\.)*)"'
WORD = re.compile(r"[a-z0-9]+")


def word_vec(word: str) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(word.encode())).standard_normal(DIM).astype(np.float32)


class SyntheticEncoder:
    """Text -> normalized sum of fixed random word vectors (one table row per word seen).

    Vectorized over a batch (one gather and one segmented sum): a per-text Python loop made this stand-in
    for a real encoder 11 % of a 1,000-class run's profile, time no real (cached) encoder spends.
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._table = np.empty((1024, DIM), dtype=np.float32)

    def _id(self, word: str) -> int:
        i = self._ids.get(word)
        if i is None:
            i = self._ids[word] = len(self._ids)
            if i == len(self._table):
                self._table = np.concatenate([self._table, np.empty_like(self._table)])
            self._table[i] = word_vec(word)
        return i

    def embed_texts(self, texts: Any) -> np.ndarray:
        known, starts, ids = self._ids, [], []
        for t in texts:
            starts.append(len(ids))
            ids.extend([known[w] if w in known else self._id(w) for w in WORD.findall(t.lower())])
        # Per text, the sum of its rows (a zero row closes the array, so a wordless text's slice is valid).
        rows = np.concatenate([self._table[np.asarray(ids, dtype=np.int64)], np.zeros((1, DIM), np.float32)])
        out = np.add.reduceat(rows, np.asarray(starts, dtype=np.int64), axis=0) if len(starts) else rows[:0]
        out[np.diff(np.append(starts, len(ids))) == 0] = 0.0
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norm > 0, norm, 1.0)


class ScriptedChat(BaseChatModel):
    """Descriptions from a hash of the prompt: right attribute words at ``good_rate``, else noise."""

    attrs: dict[str, list[str]]
    good_rate: float = 0.5

    @property
    def _llm_type(self) -> str:
        return "scale-scripted"

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        prompt = "\n".join(str(m.content) for m in messages)
        rng = np.random.default_rng(int(hashlib.sha256(prompt.encode()).hexdigest()[:12], 16))
        n = int(m.group(1)) if (m := re.search(r"(?:Give|Write|write) (\d+)", prompt)) else 3
        entries, seen = [], set()
        for line in re.finditer(r"(?:Class|Classes to improve): ((?:" + JSON_NAME + r"(?:, )?)+)", prompt):
            for raw in re.findall(JSON_NAME, line.group(1)):
                c = json.loads(f'"{raw}"')
                if c in seen or c not in self.attrs:
                    continue
                seen.add(c)
                descs = []
                for _ in range(n):
                    pool = self.attrs[c] if rng.random() < self.good_rate else VOCAB
                    descs.append(f"a {rng.choice(pool)} {rng.choice(NOISE)} look")
                entries.append({"class_name": c, "descriptions": descs})
        body: dict[str, Any] = {"classes": entries}
        if '"title":"OneClass"' in prompt.replace(" ", ""):
            body = {"descriptions": entries[0]["descriptions"] if entries else []}
        return AIMessage(content=json.dumps(body), usage_metadata={"input_tokens": len(prompt) // 4,
                                                                   "output_tokens": 40, "total_tokens": len(prompt) // 4 + 40})  # fmt: skip

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages))])

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages))])


def make_resources(n_classes: int, k_shot: int, n_test: int, seed: int) -> RunResources:
    rng = np.random.default_rng(seed)
    names = [f"item{i:04d}" for i in range(n_classes)]
    attrs = {c: [str(w) for w in rng.choice(VOCAB, size=3, replace=False)] for c in names}

    def split(per_class: int, split_seed: int) -> EmbeddedSplit:
        r = np.random.default_rng(split_seed)
        base = np.stack([sum(word_vec(w) for w in attrs[c]) for c in names])
        labels = np.repeat(np.arange(n_classes), per_class)
        x = base[labels] + r.standard_normal((len(labels), DIM)).astype(np.float32) * 2.5
        return EmbeddedSplit((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels)

    handle = ProviderHandle(provider="scripted", model="scale-1", chat_model=ScriptedChat(attrs=attrs))
    test = split(n_test, seed + 2)
    return RunResources(
        dataset=f"synthetic-{n_classes}", classnames=names, encoder=SyntheticEncoder(),
        feedback=split(k_shot, seed + 1), test_loader=lambda: test, handle=handle, backbone="synthetic",
    )  # fmt: skip


def db_bytes(run_dir: Path) -> int:
    return sum(p.stat().st_size for p in run_dir.glob(f"{CHECKPOINTS}*") if p.is_file())


def data_bytes(run_dir: Path) -> int:
    """Bytes of checkpoint and pending-write rows stored so far (what the files hold, WAL slack excluded)."""
    con = sqlite3.connect(f"file:{run_dir / CHECKPOINTS}?mode=ro", uri=True)
    try:
        a = con.execute("SELECT coalesce(sum(length(checkpoint) + length(metadata)), 0) FROM checkpoints").fetchone()
        b = con.execute("SELECT coalesce(sum(length(value)), 0) FROM writes").fetchone()
    finally:
        con.close()
    return int(a[0]) + int(b[0])


def checkpoint_rows(run_dir: Path) -> list[tuple[str, int, int]]:
    """(checkpoint id, iteration, bytes of the step) of every checkpoint, oldest first.

    A step's bytes: its checkpoint row plus the writes of the node that produced it (stored under the
    parent's id), i.e. what one graph step added to the database.
    """
    serde = checkpoint_serde()
    con = sqlite3.connect(run_dir / CHECKPOINTS)
    try:
        rows = con.execute(
            "SELECT checkpoint_id, parent_checkpoint_id, type, checkpoint, length(checkpoint) + length(metadata)"
            " FROM checkpoints ORDER BY checkpoint_id"
        ).fetchall()
        writes = dict(con.execute("SELECT checkpoint_id, sum(length(value)) FROM writes GROUP BY checkpoint_id"))
    finally:
        con.close()
    out = []
    for cid, parent, type_, blob, size in rows:
        iteration = serde.loads_typed((type_, blob)).get("channel_values", {}).get("iteration", 0)
        out.append((cid, int(iteration), int(size) + int(writes.get(parent, 0) if parent else 0)))
    return out


async def state_sizes(run_dir: Path, checkpoint_ids: list[str]) -> list[int]:
    """Bytes of the GraphState (JSON) at each of these checkpoints, rebuilt the way a resume rebuilds it."""
    out = []
    async with aiosqlite.connect(str(run_dir / CHECKPOINTS)) as conn:
        graph = build_graph(checkpointer=AsyncSqliteSaver(conn, serde=checkpoint_serde()))
        for cid in checkpoint_ids:
            snap = await graph.aget_state({"configurable": {"thread_id": "run", "checkpoint_id": cid}})
            out.append(len(GraphState.model_validate(snap.values).model_dump_json()))
    return out


def llm_seconds(run_dir: Path, t_from: float, t_to: float) -> float:
    """Seconds in [t_from, t_to) (epoch) during which at least one LLM request was in flight."""
    spans = []
    for e in read_trace(run_dir, events={"llm_call"}):
        s = datetime.fromisoformat(e["started_at"]).timestamp()
        if t_from <= s < t_to and not e.get("cache_hit"):
            spans.append((s, min(s + float(e["latency_s"]), t_to)))
    total, end = 0.0, float("-inf")
    for s, e in sorted(spans):
        if e > end:
            total += e - max(s, end)
            end = e
    return total


def run(
    n_classes: int, iterations: int, k_shot: int, per_call: int, out_dir: Path, seed: int = 0, *,
    profile: Path | None = None, n_test: int = 4, crossover: str = "library", library_rounds: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    res = make_resources(n_classes, k_shot, n_test=n_test, seed=seed)
    run_dir = out_dir / f"scale-{n_classes}"
    search: dict[str, Any] = {"crossover": crossover}
    if library_rounds is not None:
        search["library_rounds"] = library_rounds
    cfg = RunConfig(
        seed=seed, run_dir=run_dir, backbone={"device": "cpu"}, search=search,
        llm={"provider": "scripted", "cache_file": run_dir / "llm_cache.sqlite", "max_concurrency": 4},
        method={"classes_per_call": per_call, "max_iterations": iterations, "patience": iterations + 1, "n_init": 6,
                "n_new": 3, "n_mutations": 2, "mutate_scope": "confused"},
    )  # fmt: skip
    marks: list[dict[str, Any]] = []
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()

    def progress(what: str, info: dict[str, Any]) -> None:
        if what == "node_start" and info.get("node") == "feedback":
            rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            marks.append({"iteration": info["iteration"], "t_s": round(time.perf_counter() - t0, 2),
                          "epoch": time.time(), "cpu": time.process_time(),
                          "checkpoint_db_bytes": db_bytes(run_dir), "checkpoint_data_bytes": data_bytes(run_dir),
                          "peak_rss_mb": round(rss_kb / 1024, 1)})  # fmt: skip

    prof = cProfile.Profile() if profile is not None else None
    if prof is not None:
        prof.enable()
    result = optimize(cfg, progress=progress, resources=res)
    rss_run = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before this script's own checks
    if prof is not None and profile is not None:
        prof.disable()
        write_profile(prof, profile)
    wall = time.perf_counter() - t0
    t_end, cpu_end = time.time(), time.process_time()
    rows = checkpoint_rows(run_dir)
    last_of = {it: cid for cid, it, _ in rows}  # the last checkpoint of each iteration
    sizes = dict(zip(last_of, asyncio.run(state_sizes(run_dir, list(last_of.values()))), strict=True))
    for i, m in enumerate(marks):
        m["max_checkpoint_bytes"] = max((r[2] for r in rows if r[1] == m["iteration"]), default=0)
        m["state_json_bytes"] = sizes.get(m["iteration"], 0)
        # The iteration that starts here runs until the next feedback starts (or the run ends).
        t_next = marks[i + 1]["epoch"] if i + 1 < len(marks) else t_end
        cpu_next = marks[i + 1]["cpu"] if i + 1 < len(marks) else cpu_end
        m["iteration_s"] = round(t_next - m["epoch"], 2)
        m["iteration_cpu_s"] = round(cpu_next - m["cpu"], 2)
        m["llm_s"] = round(llm_seconds(run_dir, m["epoch"], t_next), 2)
        m["non_llm_s"] = round(m["iteration_s"] - m["llm_s"], 2)
        del m["epoch"], m["cpu"]
    return {
        "classes": n_classes,
        "iterations_asked": iterations,
        "iterations_done": result.iterations,
        "status": result.status,
        "classes_per_call": per_call,
        "k_shot": k_shot,
        "test_per_class": n_test,
        "wall_s": round(wall, 2),
        "llm_calls": result.llm.get("calls"),
        "peak_rss_mb": round(rss_run, 1),
        "peak_rss_with_checks_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_run_mb": round(rss_before, 1),
        "checkpoint_db_bytes_final": db_bytes(run_dir),
        "checkpoint_data_bytes_final": data_bytes(run_dir),
        "checkpoints": len(rows),
        "state_json_bytes_final": sizes[rows[-1][1]] if rows else 0,
        "trace_bytes": (run_dir / "trace.jsonl").stat().st_size,
        "per_iteration": marks,
        "feedback_accuracy": [h.feedback.accuracy for h in result.history],
        "test_accuracy": result.optimized.test_accuracy if result.optimized is not None else None,
        "library_rounds": cfg.search.library_rounds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--k-shot", type=int, default=4)
    ap.add_argument("--test-per-class", type=int, default=4, help="Test images per class (the final evaluation).")
    ap.add_argument("--classes-per-call", type=int, default=10)
    ap.add_argument("--workdir", type=Path, default=None, help="Where the run directory goes (default: a temp dir).")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch and BLAS threads (default: theirs; 1 on an oversubscribed machine).",
    )
    ap.add_argument("--profile", type=Path, default=None, help="cProfile the run: PATH.prof and a summary PATH.txt.")
    ap.add_argument(
        "--crossover", default="library", help="the run's crossover (default: the loop's default, the library search; "
        "'auto' for the paper's, as the scale_1000x10 and scale_21000x2 figures were measured)",
    )  # fmt: skip
    ap.add_argument("--library-rounds", type=int, default=None, help="search.library_rounds (default: the config's)")
    args = ap.parse_args()
    if args.threads is not None:  # torch's and numpy's BLAS pools alike (the item search is numpy)
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        figures = run(
            args.classes,
            args.iterations,
            args.k_shot,
            args.classes_per_call,
            work,
            profile=args.profile,
            n_test=args.test_per_class,
            crossover=args.crossover,
            library_rounds=args.library_rounds,
        )
    figures["crossover"] = args.crossover
    figures["torch_threads"] = torch.get_num_threads()
    figures["blas_threads"] = [p["num_threads"] for p in threadpool_info()]
    figures["load_avg_1_5_15"] = {
        "start": [round(x, 2) for x in load_start],
        "end": [round(x, 2) for x in os.getloadavg()],
    }
    figures["machine"] = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
