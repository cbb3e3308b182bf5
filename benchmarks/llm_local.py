"""Throughput of the embedded local LLM and latency of the response-cache hit path.

Why: the optimizer's wall time on a laptop is dominated by local LLM calls, and a resumed run must be
near-free; these are the figures the README quotes.

    python benchmarks/llm_local.py --out runs/bench/llm_local.json [--calls 6]

Measures, with SmolLM2-135M behind llama_cpp.server, a structured call (system prompt + worked example +
JSON schema, grammar-constrained JSON) per class name:

- ``calls_per_min_c1``: one server, one call at a time.
- ``calls_per_min_c2``: concurrency 2 over two server replicas (``local_replicas=2``). llama-cpp-python's
  server has no parallel slots (``--n_parallel`` is a llama.cpp C++ server option; the Python server
  serializes requests behind one lock), so parallelism comes from replicas, each with cores/2 threads.
- ``calls_per_min_c2_single_server``: concurrency 2 against one server, to show that it does not help.
- ``cache_hit_ms``: median latency of a cached ``astructured`` call (key hashing, SQLite lookup, pydantic
  validation), goal < 5 ms; ``cache_hit_p95_ms`` as well.

Figures depend on what else runs on the machine: the load average is recorded with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from visfeed.state.llm import LLMSettings
from visfeed.tools.llm import LLMClient, ResponseCache, resolve_provider

CLASSES = ["banana", "zebra", "fire truck", "strawberry", "penguin", "lighthouse", "violin", "cactus"]


class Descriptions(BaseModel):
    """What the benchmark asks for: a few short visual descriptions."""

    descriptions: list[str] = Field(min_length=1, max_length=5)


EXAMPLE = Descriptions(descriptions=["a small red fruit", "tiny yellow seeds on its skin", "a green leafy top"])


def messages_for(name: str) -> list[BaseMessage]:
    return [
        SystemMessage("You write short visual descriptions of object classes."),
        HumanMessage(f"Class: {name}. Give 3 short descriptions of what it looks like."),
    ]


def settings(concurrency: int) -> LLMSettings:
    return LLMSettings(max_concurrency=concurrency, max_tokens=128, seed=7, temperature=0.7, timeout_s=300)


async def run_calls(client: LLMClient, names: list[str]) -> float:
    t0 = time.perf_counter()
    await asyncio.gather(*(client.astructured(messages_for(n), Descriptions, task="bench", example=EXAMPLE)
                           for n in names))  # fmt: skip
    return time.perf_counter() - t0


def throughput(replicas: int, concurrency: int, n_calls: int, threads: int) -> dict[str, float]:
    names = [CLASSES[i % len(CLASSES)] for i in range(n_calls)]
    with resolve_provider("local", local_replicas=replicas, local_n_threads=threads) as handle:
        client = LLMClient(handle, settings(concurrency))
        asyncio.run(
            run_calls(client, [f"warm-up {i}" for i in range(replicas)])
        )  # starts the servers, first-call costs
        n_warm = len(client.records)
        elapsed = asyncio.run(run_calls(client, names))
        timed = client.records[n_warm:]
    tokens = sum(r.completion_tokens for r in timed)
    return {
        "calls_per_min": round(n_calls / elapsed * 60, 1),
        "completion_tokens_per_s": round(tokens / elapsed, 1),
        "mean_completion_tokens": round(tokens / n_calls, 1),
        "repairs": sum(r.repair_round > 0 for r in timed),
    }


async def cache_hits(client: LLMClient, n: int) -> list[float]:
    msgs = messages_for("banana")
    await client.astructured(msgs, Descriptions, task="bench", example=EXAMPLE)  # fills the cache
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await client.astructured(msgs, Descriptions, task="bench", example=EXAMPLE)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--calls", type=int, default=6, help="timed calls per throughput figure")
    parser.add_argument("--hits", type=int, default=200, help="cache hits to time")
    args = parser.parse_args()

    cores = len(os.sched_getaffinity(0))
    half = max(1, cores // 2)
    load_start = os.getloadavg()[0]
    c1 = throughput(replicas=1, concurrency=1, n_calls=args.calls, threads=half)
    c2 = throughput(replicas=2, concurrency=2, n_calls=args.calls, threads=half)
    c2_single = throughput(replicas=1, concurrency=2, n_calls=args.calls, threads=half)
    with tempfile.TemporaryDirectory() as tmp, resolve_provider("local", local_n_threads=half) as handle:
        client = LLMClient(handle, settings(1), cache=ResponseCache(Path(tmp) / "cache.sqlite"))
        hits = asyncio.run(cache_hits(client, args.hits))
        if not all(r.cache_hit for r in client.records[1:]):
            raise SystemExit("expected every repeated call to be a cache hit")
    result = {
        "calls_per_min_c1": c1["calls_per_min"],
        "calls_per_min_c2": c2["calls_per_min"],
        "calls_per_min_c2_single_server": c2_single["calls_per_min"],
        "cache_hit_ms": round(statistics.median(hits), 3),
        "cache_hit_p95_ms": round(sorted(hits)[int(0.95 * len(hits)) - 1], 3),
        "details": {"c1": c1, "c2_two_replicas": c2, "c2_single_server": c2_single},
        "setup": {
            "model": handle.model,
            "calls_per_figure": args.calls,
            "max_tokens": 128,
            "cpu_cores": cores,
            "threads_per_server": half,
            "load_avg_1min_start": round(load_start, 2),
            "load_avg_1min_end": round(os.getloadavg()[0], 2),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(result, indent=2))
    os.replace(tmp_out, args.out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
