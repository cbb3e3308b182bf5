"""A tiny on-disk world for CLI and crash tests: an ImageFolder of coloured shapes and a random-weight
open_clip model saved as a ``local-dir:`` folder (config + weights), so subprocesses load it too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image

TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
COLOURS = {"cherry": (200, 20, 30), "lime": (60, 200, 40), "lemon": (240, 230, 40)}


def write_model(folder: Path) -> str:
    """Save a seeded random tiny CLIP as open_clip's local-dir layout; returns the backbone string."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY_CFG, "preprocess_cfg": {"size": 32}}), encoding="utf-8"
    )
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CFG)  # type: ignore[arg-type]
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return f"local-dir:{folder}"


def write_images(root: Path, per_class: int = 10, seed: int = 0) -> Path:
    """root/<class>/<i>.png: a coloured disc on a noisy background."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 80, size=(32, 32, 3), dtype=np.uint8)
            yy, xx = np.mgrid[:32, :32]
            r = int(rng.integers(6, 12))
            mask = (yy - 16) ** 2 + (xx - 16) ** 2 < r * r
            img[mask] = colour
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


def tiny_world(base: Path) -> dict[str, Path | str]:
    """The ImageFolder, the ``local-dir:`` backbone and a private embedding cache under ``base``."""
    return {
        "base": base,
        "images": write_images(base / "images"),
        "backbone": write_model(base / "model"),
        "cache": base / "emb.sqlite",
    }
