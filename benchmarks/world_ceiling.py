"""Perfect-vision ceiling of the world gates for the current captions and text tower (issue 3).

    python benchmarks/world_ceiling.py --out benchmarks/results/world_ceiling.json [--seeds 2]

Trains, per seed, an attribute-reading stand-in for the image tower exactly as `visfeed world train`
trains the real one (a few minutes on one CPU core instead of half an hour) and prints its gate figures,
and the paraphrase gate with each held-out synonym family put back to training words. A gate this
stand-in cannot pass is out of reach of any image tower with these captions and the frozen MiniLM.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch

from visfeed.fileio import write_text_atomic
from visfeed.tools.world.ceiling import ceiling


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--pool-size", type=int, default=32_000)
    ap.add_argument("--text-head", choices=["linear", "mlp"], default=None, help="default: the shipped config's")
    ap.add_argument("--embed-dim", type=int, default=None, help="default: the shipped config's")
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs = []
    for seed in range(args.seeds):
        t0 = time.time()
        m = ceiling(
            pool_size=args.pool_size, steps=args.steps, seed=seed, text_head=args.text_head, embed_dim=args.embed_dim
        )
        m["wall_s"] = round(time.time() - t0, 1)
        runs.append(m)
        print(json.dumps({k: v for k, v in m.items() if k != "settings"}, indent=1), flush=True)
    keys = ["names_acc", "oracle_acc", "paraphrase_acc", "rare_paraphrase_acc", "wrong_acc", "binding_acc"]
    summary = {
        k: {"mean": float(np.mean([r[k] for r in runs])), "std": float(np.std([r[k] for r in runs]))} for k in keys
    }
    restored = runs[0]["paraphrase_with_training_words"]
    summary["paraphrase_with_training_words"] = {
        fam: float(np.mean([r["paraphrase_with_training_words"][fam] for r in runs])) for fam in restored
    }
    extra = "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in (("text_head", args.text_head), ("embed_dim", args.embed_dim)) if v
    )
    doc = {
        "command": f"python benchmarks/world_ceiling.py --seeds {args.seeds} --steps {args.steps}{extra}",
        "summary": summary,
        "runs": runs,
    }
    write_text_atomic(args.out, json.dumps(doc, indent=2))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
