"""Measure a model on the market world's test split: gate figures and image-tower throughput.

Shared by ``benchmarks/world_gates.py`` (shipped checkpoint, loaded through open_clip) and
``visfeed world train`` (the freshly trained model, for its run record).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from visfeed.tools.datasets.world import world_splits
from visfeed.tools.embedding.builtin_models import visfeed_cache_dir
from visfeed.tools.world.gates import evaluate, passes
from visfeed.tools.world.train import encode_texts


def load_images(paths: Sequence[str], preprocess: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
    """Preprocessed image batch (the model's own open_clip transform)."""
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(preprocess(im.convert("RGB")))
    return torch.stack(out)


def embed_images(model: Any, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Normalised image embeddings, in batches."""
    outs = []
    with torch.no_grad():
        for k in range(0, len(x), batch):
            outs.append(model.encode_image(x[k : k + batch], normalize=True).float().cpu().numpy())
    return np.concatenate(outs)


def throughput(model: Any, x: torch.Tensor, *, batch: int = 256, min_s: float = 3.0) -> float:
    """Images per second through the image tower on preprocessed tensors (warm-up batch excluded)."""
    xb = x[:batch]
    with torch.no_grad():
        model.encode_image(xb)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < min_s:
            model.encode_image(xb)
            n += len(xb)
    return n / (time.perf_counter() - t0)


def measure(
    model: Any,
    preprocess: Callable[[Image.Image], torch.Tensor],
    tokenizer: Any,
    *,
    spec: Path | None = None,
    seed: int = 0,
    n_test: int = 50,
    threads: int = 2,
) -> dict[str, Any]:
    """Gate figures (percent) and ``images_per_s`` on the test split of a world (default: market)."""
    torch.set_num_threads(threads)
    model.eval()
    splits = world_splits(spec, seed=seed, n_test=n_test, cache_dir=visfeed_cache_dir(os.environ))
    x = load_images(splits.test.paths, preprocess)
    images = embed_images(model, x)

    def encode(texts: list[str]) -> np.ndarray:
        return encode_texts(model, tokenizer, texts)

    metrics: dict[str, Any] = evaluate(images, np.asarray(splits.test.labels), splits.classnames, encode)
    metrics["images_per_s"] = throughput(model, x)
    metrics["test_images"] = len(x)
    metrics["torch_threads"] = threads
    metrics["passes"] = passes(metrics)
    return metrics
