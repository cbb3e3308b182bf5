"""Seconds per eyes training step, float32 against bfloat16 autocast, on this machine's CPU.

Why: ``visfeed world train-eyes --bf16`` is off by default because its speed depends on the CPU (AMX or
AVX-512 BF16 units); this measures the step (forward, backward, AdamW) the training loop runs, on one
batch of rendered pictures, so a user can check before choosing.

    python benchmarks/eyes_step.py --out benchmarks/results/eyes_step.json
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from visfeed.fileio import write_json_atomic
from visfeed.tools.world.eyes.network import EyesNet, to_batch
from visfeed.tools.world.eyes.train import attribute_loss, random_batch


def step_seconds(x: torch.Tensor, codes: torch.Tensor, bf16: bool, steps: int) -> tuple[float, float]:
    """Mean wall and CPU seconds of one training step, after one warm-up step."""
    net = EyesNet()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    for i in range(steps + 1):
        if i == 1:
            wall, cpu = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        loss = attribute_loss({a: v.float() for a, v in logits.items()}, codes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/eyes_step.json"))
    args = ap.parse_args()
    if args.batch_size < 1 or args.steps < 1 or args.threads < 1:
        ap.error("--batch-size, --steps and --threads must be at least 1")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    imgs, codes = random_batch(np.random.default_rng(0), args.batch_size)
    x, c = to_batch(imgs), torch.from_numpy(codes)
    rows = {}
    for name, bf16 in (("float32", False), ("bf16_autocast", True)):
        wall, cpu = step_seconds(x, c, bf16, args.steps)
        rows[name] = {"wall_s": round(wall, 4), "cpu_s": round(cpu, 4)}
        print(f"{name:>14}: {wall:.3f} s wall, {cpu:.3f} s CPU per step of {args.batch_size}")
    record = {
        "command": f"python benchmarks/eyes_step.py --batch-size {args.batch_size} --steps {args.steps} "
        f"--threads {args.threads} --out {args.out}",
        "torch": torch.__version__,
        "steps": rows,
        "load_average_1_5_15_at_end": [round(v, 2) for v in os.getloadavg()],
    }
    write_json_atomic(args.out, record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
