"""Quality gates of the market world and the shipped visfeed-market model (issue 3).

    python benchmarks/world_gates.py --out world_gates.json [--tower FILE]

Loads the model through open_clip exactly as the scoring backend does, renders (or reuses) the test split
of the shipped spec (50 images per class, seed 0), and prints and writes names_acc, oracle_acc,
paraphrase_acc, wrong_acc, binding_acc (percent) and images_per_s (image tower, 2 CPU threads).
The gate texts and held-out wording live in visfeed.tools.world.gates.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import open_clip
import torch

from visfeed.fileio import sha256_file
from visfeed.state.config import DEFAULT_MODEL
from visfeed.tools.embedding.builtin_models import (
    assemble_checkpoint,
    default_pretrained,
    register_builtin_models,
    shipped_tower_id,
    visfeed_cache_dir,
)
from visfeed.tools.world.measure import measure


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument(
        "--tower", type=Path, default=None, help="image-tower checkpoint to test instead of the shipped one"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    register_builtin_models()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = (
            assemble_checkpoint(args.tower, Path(tmp) / "full.pt")
            if args.tower
            else default_pretrained(visfeed_cache_dir(os.environ))
        )
        model, _, preprocess = open_clip.create_model_and_transforms(DEFAULT_MODEL, pretrained=str(ckpt))
    tokenizer = open_clip.get_tokenizer(DEFAULT_MODEL)
    metrics = measure(model, preprocess, tokenizer, seed=args.seed, threads=args.threads)
    metrics["model"] = DEFAULT_MODEL
    metrics["tower"] = str(args.tower) if args.tower else "shipped"
    metrics["tower_sha256_12"] = sha256_file(args.tower)[:12] if args.tower else shipped_tower_id()
    metrics["text_head"] = open_clip.get_model_config(DEFAULT_MODEL)["text_cfg"]["hf_proj_type"]
    metrics["wall_s"] = round(time.time() - t0, 1)
    text = json.dumps(metrics, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if all(metrics["passes"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
