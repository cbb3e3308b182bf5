"""Scoring-engine figures at ImageNet scale on synthetic normalized embeddings.

Prints and writes as JSON:
- feedback_ms_cpu (and feedback_ms_cuda where CUDA is present): full visual feedback (class centroids,
  scores, accuracy, margins, argmax and lambda-confusion, top-m) for 16,000 images x 1,000 classes x 30
  descriptions, 512-d;
- candidates_per_s_cpu: candidate description sets (30 drawn from a pool of 150) evaluated per second for
  one class, in batches of 4,096;
- naive_per_s_cpu and naive_speedup: the same candidates scored the way the reference code does
  (re-embed every description, recompute every class), and the ratio; results_identical checks that both
  ways give the same correct counts and margins (float64).

Usage: python benchmarks/scoring.py --out scoring.json [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from visfeed.tools.scoring.engine import ScoringEngine
from visfeed.tools.scoring.measures import feedback

N_IMG, N_CLS, N_DESC, DIM = 16_000, 1_000, 30, 512
POOL, BATCH = 150, 4_096


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def make_world(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class prototypes with noisy images and descriptions, so accuracy is neither 0 nor 100%."""
    protos = unit(rng.normal(size=(N_CLS, DIM)))
    labels = np.repeat(np.arange(N_CLS), N_IMG // N_CLS)
    x = unit(protos[labels] + 5.0 * unit(rng.normal(size=(N_IMG, DIM))))
    desc = unit(protos[:, None, :] + 1.2 * unit(rng.normal(size=(N_CLS, N_DESC, DIM))))
    return x, labels, desc


def timed(fn, repeats: int, device: torch.device) -> float:
    """Best wall time in ms over repeats (after one warm-up)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def feedback_ms(x, labels, desc, device: str, repeats: int) -> tuple[float, float]:
    eng = ScoringEngine(x, labels, N_CLS, device=device)
    desc_t = torch.as_tensor(desc, device=eng.device)

    def run() -> float:
        eng.centroids = desc_t.mean(dim=1)
        eng.scores = eng.x @ eng.centroids.T
        eng._is_set[:] = True
        return eng.feedback(lam=0.9, m=5).accuracy

    return timed(run, repeats, eng.device), run()


def naive_objective(x: torch.Tensor, labels: torch.Tensor, table: torch.Tensor, ids: torch.Tensor) -> tuple[int, float]:
    """Reference-code style: 'embed' all descriptions again (a gather from a table stands in for the text
    encoder, which is a lower bound on its cost) and recompute every class's score column."""
    emb = table[ids]  # (C, D, dim)
    cen = emb.mean(dim=1)
    fb = feedback(x @ cen.T, labels, N_CLS)
    return fb.n_correct, fb.mean_margin


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--naive", type=int, default=6, help="candidates scored the naive way")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    x, labels, desc = make_world(rng)
    out: dict[str, object] = {
        "n_images": N_IMG,
        "n_classes": N_CLS,
        "n_desc": N_DESC,
        "dim": DIM,
        "pool": POOL,
        "batch": BATCH,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor(),
    }

    ms, acc = feedback_ms(x, labels, desc, "cpu", args.repeats)
    out["feedback_ms_cpu"], out["accuracy"] = round(ms, 2), round(acc, 4)
    print(f"feedback (16k x 1k x 30, 512-d) on CPU: {ms:.1f} ms  (accuracy {acc:.3f})")
    if torch.cuda.is_available():
        ms_cuda, _ = feedback_ms(x, labels, desc, "cuda", args.repeats)
        out["feedback_ms_cuda"] = round(ms_cuda, 2)
        print(f"feedback on CUDA: {ms_cuda:.2f} ms")

    # Candidate sweep for one class: pool = its 30 descriptions + 120 new ones.
    c = 7
    pool = np.concatenate([desc[c], unit(desc[c].mean(0) + 1.3 * unit(rng.normal(size=(POOL - N_DESC, DIM))))])
    members = [np.sort(rng.choice(POOL, size=N_DESC, replace=False)).tolist() for _ in range(BATCH)]
    eng = ScoringEngine(x, labels, N_CLS, device="cpu")
    eng.set_all(list(desc))
    ms_sweep = timed(lambda: eng.evaluate_candidates(c, pool, members), args.repeats, eng.device)
    cps = BATCH / (ms_sweep / 1000)
    out["candidates_ms_per_batch_cpu"] = round(ms_sweep, 2)
    out["candidates_per_s_cpu"] = round(cps)
    print(f"candidate sweep: {BATCH} sets in {ms_sweep:.1f} ms = {cps:,.0f} candidates/s")

    # Naive way, timed in float32 like the engine.
    table = torch.as_tensor(np.concatenate([desc.reshape(-1, DIM), pool]))
    base_ids = torch.arange(N_CLS * N_DESC).view(N_CLS, N_DESC)
    xt, yt = torch.as_tensor(x), torch.as_tensor(labels)

    def ids_for(b: int) -> torch.Tensor:
        ids = base_ids.clone()
        ids[c] = N_CLS * N_DESC + torch.as_tensor(members[b])
        return ids

    t = time.perf_counter()
    for b in range(args.naive):
        naive_objective(xt, yt, table, ids_for(b))
    naive_s = (time.perf_counter() - t) / args.naive
    out["naive_per_s_cpu"] = round(1 / naive_s, 2)
    out["naive_speedup"] = round(cps * naive_s, 1)
    print(f"naive: {1 / naive_s:.2f} candidates/s -> speedup x{cps * naive_s:,.0f}")

    # Identity check in float64 (float32 rounding could flip exact ties either way).
    eng64 = ScoringEngine(x, labels, N_CLS, device="cpu", dtype=torch.float64)
    eng64.set_all(list(desc))
    sweep = eng64.evaluate_candidates(c, pool, members[: args.naive])
    table64, x64 = table.double(), xt.double()
    same = True
    for b in range(args.naive):
        n_correct, margin = naive_objective(x64, yt, table64, ids_for(b))
        same = same and bool(sweep.n_correct[b] == n_correct) and bool(abs(sweep.mean_margin[b] - margin) < 1e-9)
    out["results_identical"] = same
    print(f"incremental == naive on {args.naive} candidates: {same}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
