"""Does the embedded LLM answer the same requests with the same text twice? (what ``reproducible`` is for)

Starts a fresh local server (SmolLM2 behind llama_cpp.server) per trial and sends the same N requests
(one-shot description prompts for market classes, each with its own per-call seed, no response cache),
with 1 request in flight (``reproducible: true``) and with 2 (the default). Prints and writes, per
concurrency, how many of the N answers were identical in two trials.

Usage: python benchmarks/llm_repeat.py --requests 12 --out benchmarks/results/llm_repeat.json
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from langchain_core.messages import HumanMessage, SystemMessage

from visfeed.fileio import write_json_atomic
from visfeed.state.llm import LLMSettings
from visfeed.tools.llm import LLMClient, resolve_provider

CLASSES = [
    "lemon",
    "lime",
    "banana",
    "cherry",
    "grape",
    "carrot",
    "broccoli",
    "onion",
    "pepper",
    "plum",
    "pear",
    "kiwi",
]


async def trial(concurrency: int, n: int, seed: int) -> list[str]:
    """The texts of n requests sent to a freshly started local server, ``concurrency`` in flight."""
    with resolve_provider("local", temperature=0.8, local_seed=seed) as handle:
        handle.start()
        client = LLMClient(handle, LLMSettings(max_concurrency=concurrency, temperature=0.8, max_tokens=60, seed=seed))
        reqs = [
            [SystemMessage(content="You describe what things look like."),
             HumanMessage(content=f"Describe what a {CLASSES[i % len(CLASSES)]} looks like in one short sentence.")]
            for i in range(n)
        ]  # fmt: skip
        replies = await asyncio.gather(
            *(client.ainvoke(m, task="repeat", cache_salt=f"repeat:{i}") for i, m in enumerate(reqs))
        )
        return [str(r.content) for r in replies]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/llm_repeat.json"))
    args = ap.parse_args()
    out: dict[str, object] = {"requests": args.requests, "seed": args.seed}
    for concurrency in (1, 2):
        t0 = time.perf_counter()
        first = asyncio.run(trial(concurrency, args.requests, args.seed))
        second = asyncio.run(trial(concurrency, args.requests, args.seed))
        same = sum(a == b for a, b in zip(first, second, strict=True))
        out[f"concurrency_{concurrency}"] = {
            "identical": same,
            "wall_s": time.perf_counter() - t0,
            "differing_examples": [[a, b] for a, b in zip(first, second, strict=True) if a != b][:3],
        }
        print(f"{concurrency} in flight: {same}/{args.requests} answers identical in two fresh servers")
    write_json_atomic(args.out, out)


if __name__ == "__main__":
    main()
