"""Scale: a whole optimization run over many classes on synthetic embeddings, with a scripted LLM.

Nothing but the far side of the network is fake: the real graph, LLM client (cache, accounting,
concurrency), SQLite checkpointer, trace and final evaluation run; the text encoder is a bag of fixed
random word vectors and the LLM a deterministic scripted chat model answering from the prompt.

Prints and writes as JSON:
- peak_rss_mb: peak resident memory of the process (resource.getrusage), imports included, and
  rss_before_run_mb, the peak before the run started (imports of torch, open_clip, faiss, langgraph);
- wall_s and llm_calls of the run;
- per iteration (taken when feedback starts, i.e. at each iteration boundary): elapsed seconds, size of
  checkpoints.sqlite (with its -wal) and of the rows it holds (checkpoints and pending writes), size of
  the largest checkpoint row written in that iteration, size
  of the serialized GraphState (JSON) and the number of lineage entries; growth per iteration is the
  difference of consecutive rows.

Usage: python benchmarks/scale.py --classes 1000 --iterations 3 --out benchmarks/results/scale.json
"""

from __future__ import annotations

import argparse
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
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from visfeed.agents.resources import EmbeddedSplit, RunResources
from visfeed.agents.run import checkpoint_serde, optimize
from visfeed.state.config import RunConfig
from visfeed.state.models import GraphState
from visfeed.state.rundir import CHECKPOINTS
from visfeed.tools.llm import ProviderHandle

DIM = 64
VOCAB = [f"w{i}" for i in range(400)]  # attribute words; each class has 3
NOISE = ["shiny", "fresh", "bright", "smooth", "plain", "common"]
JSON_NAME = r'"((?:[^"\\]|\\.)*)"'


def word_vec(word: str) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(word.encode())).standard_normal(DIM).astype(np.float32)


class SyntheticEncoder:
    """Text -> normalized sum of fixed random word vectors (memoized per word)."""

    def __init__(self) -> None:
        self._words: dict[str, np.ndarray] = {}

    def _vec(self, word: str) -> np.ndarray:
        v = self._words.get(word)
        if v is None:
            v = self._words[word] = word_vec(word)
        return v

    def embed_texts(self, texts: Any) -> np.ndarray:
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for i, t in enumerate(texts):
            v = sum((self._vec(w) for w in re.findall(r"[a-z0-9]+", t.lower())), np.zeros(DIM, np.float32))
            out[i] = v / (np.linalg.norm(v) or 1.0)
        return out


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


def checkpoint_rows(run_dir: Path) -> list[tuple[int, int, int]]:
    """(iteration, checkpoint row bytes, GraphState JSON bytes) of every checkpoint, in order."""
    serde = checkpoint_serde()
    con = sqlite3.connect(run_dir / CHECKPOINTS)
    try:
        rows = con.execute("SELECT type, checkpoint FROM checkpoints ORDER BY checkpoint_id").fetchall()
    finally:
        con.close()
    out = []
    for type_, blob in rows:
        values = serde.loads_typed((type_, blob)).get("channel_values", {})
        state = GraphState.model_validate({k: v for k, v in values.items() if k in GraphState.model_fields})
        out.append((state.iteration, len(blob), len(state.model_dump_json())))
    return out


def run(n_classes: int, iterations: int, k_shot: int, per_call: int, out_dir: Path, seed: int = 0) -> dict[str, Any]:
    res = make_resources(n_classes, k_shot, n_test=4, seed=seed)
    run_dir = out_dir / f"scale-{n_classes}"
    cfg = RunConfig(
        provider="scripted", run_dir=run_dir, llm_cache=run_dir / "llm_cache.sqlite", device="cpu", seed=seed,
        classes_per_call=per_call, max_iterations=iterations, patience=iterations + 1, n_init=6, n_new=3,
        n_mutations=2, max_concurrency=4, mutate_scope="confused",
    )  # fmt: skip
    marks: list[dict[str, Any]] = []
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()

    def progress(what: str, info: dict[str, Any]) -> None:
        if what == "node_start" and info.get("node") == "feedback":
            rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            marks.append({"iteration": info["iteration"], "t_s": round(time.perf_counter() - t0, 2),
                          "checkpoint_db_bytes": db_bytes(run_dir), "checkpoint_data_bytes": data_bytes(run_dir),
                          "peak_rss_mb": round(rss_kb / 1024, 1)})  # fmt: skip

    result = optimize(cfg, progress=progress, resources=res)
    wall = time.perf_counter() - t0
    rows = checkpoint_rows(run_dir)
    for m in marks:
        mine = [r for r in rows if r[0] == m["iteration"]]
        m["max_checkpoint_bytes"] = max((r[1] for r in mine), default=0)
        m["state_json_bytes"] = max((r[2] for r in mine), default=0)
    final_state = rows[-1][2] if rows else 0
    return {
        "classes": n_classes,
        "iterations_asked": iterations,
        "iterations_done": result.iterations,
        "status": result.status,
        "classes_per_call": per_call,
        "k_shot": k_shot,
        "wall_s": round(wall, 2),
        "llm_calls": result.llm.get("calls"),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_run_mb": round(rss_before, 1),
        "checkpoint_db_bytes_final": db_bytes(run_dir),
        "checkpoint_data_bytes_final": data_bytes(run_dir),
        "checkpoints": len(rows),
        "state_json_bytes_final": final_state,
        "trace_bytes": (run_dir / "trace.jsonl").stat().st_size,
        "per_iteration": marks,
        "feedback_accuracy": [h.feedback.accuracy for h in result.history],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--k-shot", type=int, default=4)
    ap.add_argument("--classes-per-call", type=int, default=10)
    ap.add_argument("--workdir", type=Path, default=None, help="Where the run directory goes (default: a temp dir).")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        figures = run(args.classes, args.iterations, args.k_shot, args.classes_per_call, work)
    figures["machine"] = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
