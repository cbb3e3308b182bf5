"""What the eyes can read at 64 px: attribute accuracy per apparent size, skin confusions, texture pixels.

Issue 26 asks whether an attribute the eyes get wrong is unreadable in the world's 64 px pictures or just
not learned. Three measurements, on held-out random attribute combinations (a stream no training run
draws from):

1. the eyes' accuracy per attribute and per apparent size (tiny items are 13 px long, huge ones 51 px);
2. for the skin (``pattern``), the most frequent (true, read) confusions per size;
3. what the renderer draws: for every skin and size, how many pixels of one item the skin changes
   against a smooth item drawn from the same random state (a change above 24 of 255 in some channel:
   over three times the strongest pixel noise the renderer adds), before rotation, lighting and noise.
   A skin that changes a handful of pixels can only be told apart by where they fall, if at all.

    python benchmarks/eyes_readability.py --out benchmarks/results/eyes_readability.json
    python benchmarks/eyes_readability.py --eyes /tmp/eyes/market_eyes.pt --out /tmp/readability.json
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from visfeed.errors import ModelError
from visfeed.fileio import sha256_file, write_json_atomic
from visfeed.tools.world.eyes.network import Eyes, shipped_eyes
from visfeed.tools.world.eyes.train import accuracy_by_size, attribute_accuracy, random_batch
from visfeed.tools.world.item import draw_item
from visfeed.tools.world.render import IMAGE_SIZE, SIZE_FRACTION
from visfeed.tools.world.vocab import ATTRIBUTES, COLORS, VOCABULARY

PATTERN = ATTRIBUTES.index("pattern")
SIZE = ATTRIBUTES.index("size")
NOISE_MARGIN = 24
"""Channel change that counts as drawn: the renderer's pixel noise has a standard deviation of at most 7."""


def skin_confusions(eyes: Eyes, images: np.ndarray, codes: np.ndarray, top: int = 4) -> dict[str, Any]:
    """Per size: skin accuracy and the ``top`` most frequent (true -> read) mistakes with their counts."""
    read = eyes.probabilities(images)["pattern"].argmax(1)
    names, sizes = VOCABULARY["pattern"], VOCABULARY["size"]
    out: dict[str, Any] = {}
    for k, size in enumerate(sizes):
        shown = (codes[:, SIZE] == k) & (codes[:, PATTERN] >= 0)
        if not shown.any():
            continue
        pairs = Counter(
            f"{names[t]} -> {names[r]}" for t, r in zip(codes[shown, PATTERN], read[shown], strict=True) if t != r
        )
        out[size] = {"pictures": int(shown.sum()), "mistakes": dict(pairs.most_common(top))}
    return out


def skin_pixels(items: int, seed: int) -> dict[str, dict[str, float]]:
    """Per skin and size: median pixels of one whole item that the skin changes, and their share of the item."""
    rng = np.random.default_rng([seed, 37])
    out: dict[str, dict[str, float]] = {}
    for skin in VOCABULARY["pattern"][1:]:
        row: dict[str, float] = {}
        for size, frac in SIZE_FRACTION.items():
            changed, share = [], []
            for _ in range(items):
                attrs = {"color": str(rng.choice(COLORS)), "shape": str(rng.choice(["round", "oval", "long"]))}
                attrs |= {"top": "none", "cut": "whole", "inside": "white", "size": size, "count": "single"}
                state = rng.bit_generator.state
                smooth = np.asarray(draw_item(attrs | {"pattern": "smooth"}, frac * IMAGE_SIZE, rng), dtype=int)
                rng.bit_generator.state = state
                drawn = np.asarray(draw_item(attrs | {"pattern": skin}, frac * IMAGE_SIZE, rng), dtype=int)
                item = smooth[..., 3] > 0
                diff = (np.abs(drawn[..., :3] - smooth[..., :3]).max(-1) > NOISE_MARGIN) & item
                changed.append(int(diff.sum()))
                share.append(diff.sum() / max(1, item.sum()))
            row[f"{size}_pixels"] = float(np.median(changed))
            row[f"{size}_share"] = round(100.0 * float(np.median(share)), 1)
        out[skin] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eyes", type=Path, default=None, help="eyes checkpoint (default: the shipped one)")
    ap.add_argument("--images", type=int, default=3000, help="held-out pictures")
    ap.add_argument("--items", type=int, default=30, help="items per (skin, size) for the pixel count")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/eyes_readability.json"))
    args = ap.parse_args()
    if args.images < 1 or args.items < 1:
        ap.error("--images and --items must be at least 1")
    path = args.eyes or shipped_eyes()
    try:
        eyes = Eyes.load(path)
    except ModelError as exc:
        ap.error(str(exc))  # exit 2, naming the checkpoint
    t0 = time.perf_counter()
    images, codes = random_batch(np.random.default_rng([args.seed, 31]), args.images)
    record = {
        "command": "python benchmarks/eyes_readability.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v is not None),
        "eyes_sha256_12": sha256_file(path)[:12],
        "heldout_attribute_accuracy": attribute_accuracy(eyes, images, codes),
        "by_size": accuracy_by_size(eyes, images, codes),
        "skin_mistakes_by_size": skin_confusions(eyes, images, codes),
        "skin_pixels_changed": skin_pixels(args.items, args.seed),
        "wall_s": round(time.perf_counter() - t0, 1),
        "load_average_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    write_json_atomic(args.out, record)
    print("held out:", {a: round(v, 1) for a, v in record["heldout_attribute_accuracy"].items()})
    for size, row in record["by_size"].items():
        print(f"{size:>6}: " + ", ".join(f"{a} {v:.1f}" for a, v in row.items()))
    for size, row in record["skin_mistakes_by_size"].items():
        print(f"skin mistakes, {size} ({row['pictures']} pictures): {row['mistakes']}")
    print("skin pixels changed per item (median, tiny .. huge):")
    for skin, row in record["skin_pixels_changed"].items():
        print(f"  {skin:>8}: " + " ".join(f"{row[f'{s}_pixels']:>5.0f}" for s in SIZE_FRACTION))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
