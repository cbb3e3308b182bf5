"""Does the embedded server's context size (``n_ctx``) cost speed? Time one agent-sized prompt at each size.

Why: the agent mode's prompts reach about 1,400 tokens (benchmarks/results/agent_mode.json) and its prompt
budget assumes the default 4,096-token context. A larger context would leave more room; a smaller one
less memory. Each size gets a fresh server and the same prompts (each made distinct at its start, so the
server's prefix cache cannot help), answered with a 32-token cap.

    python benchmarks/llm_context.py --out benchmarks/results/llm_context.json [--sizes 2048,4096,8192]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import urllib.request
from pathlib import Path

from visfeed.fileio import write_json_atomic
from visfeed.tools.llm.local_server import LocalLLMServer

FILLER = "The lemon is yellow and oval with a dimpled skin; the lime is green and round with a smooth skin. "


def _ask(server: LocalLLMServer, prompt: str) -> tuple[float, int]:
    body = json.dumps(
        {"model": server.model_alias, "messages": [{"role": "user", "content": prompt}], "max_tokens": 32}
    ).encode()
    req = urllib.request.Request(
        f"{server.base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    t0 = time.perf_counter()
    with opener.open(req, timeout=600) as resp:
        usage = json.loads(resp.read())["usage"]
    return time.perf_counter() - t0, int(usage["prompt_tokens"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sizes", default="2048,4096,8192")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sentences", type=int, default=55, help="filler sentences (~26 tokens each)")
    args = ap.parse_args()
    results = []
    for n_ctx in (int(s) for s in args.sizes.split(",")):
        with LocalLLMServer(n_ctx=n_ctx) as server:
            times, tokens = [], 0
            for r in range(args.repeats):
                took, tokens = _ask(server, f"Request {r} of {n_ctx}. " + FILLER * args.sentences + " Summarize.")
                times.append(took)
        results.append(
            {"n_ctx": n_ctx, "prompt_tokens": tokens, "seconds": times, "median_s": statistics.median(times)}
        )
        print(f"n_ctx {n_ctx:5d}: {tokens} prompt tokens, median {statistics.median(times):.2f} s over {args.repeats}")
    write_json_atomic(
        args.out, {"results": results, "load_avg_1min_end": os.getloadavg()[0], "cpu_cores": os.cpu_count()}
    )


if __name__ == "__main__":
    main()
