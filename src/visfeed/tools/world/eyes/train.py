"""Training of the "eyes" (:mod:`visfeed.tools.world.eyes`): attribute recognition on random world pictures.

Like the tower's training, the data are random attribute combinations rendered on the fly (never class
specs or labels), so the eyes know the world's vocabulary and nothing about its classes. Batch ``b`` is
rendered from a generator seeded by ``(seed, 23, b)``: the stream is fixed by the seed whatever the
worker count. One cross-entropy per attribute; what the picture hides (the skin of a halved item, the
flesh of a whole one) is left out of the loss.

A time budget (``minutes``) makes the command fit a machine's minutes rather than a number of pictures:
the learning rate follows the cosine over the larger of the step fraction and the time fraction, and
training stops at whichever runs out first. The stream is still fixed by the seed; how far along it a
run gets depends on the machine, so the run record says how many pictures it saw and how loaded the
machine was.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from visfeed.tools.world.captions import complete, image_codes
from visfeed.tools.world.eyes.network import HIDDEN, Eyes, EyesNet, save_eyes, to_batch
from visfeed.tools.world.render import IMAGE_SIZE, render_array
from visfeed.tools.world.settings import EyesConfig
from visfeed.tools.world.vocab import ATTRIBUTES, VOCABULARY


def random_batch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pictures of random attribute combinations and their codes (``HIDDEN`` where unseen)."""
    imgs = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    codes = np.empty((n, len(ATTRIBUTES)), dtype=np.int64)
    for k in range(n):
        attrs = complete({}, rng)
        imgs[k] = render_array(attrs, rng)
        codes[k] = image_codes(attrs)
    return imgs, codes


class _Stream(IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    def __init__(self, n_batches: int, batch_size: int, seed: int) -> None:
        self.n_batches, self.batch_size, self.seed = n_batches, batch_size, seed

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        for b in range(wid, self.n_batches, nw):
            imgs, codes = random_batch(np.random.default_rng([self.seed, 23, b]), self.batch_size)
            yield torch.from_numpy(imgs), torch.from_numpy(codes)


def attribute_loss(
    logits: dict[str, torch.Tensor], codes: torch.Tensor, weights: dict[str, float] | None = None
) -> torch.Tensor:
    """Weighted mean over attributes of the cross-entropy on the pictures that show that attribute.

    ``weights`` (default 1 each) lets a slow attribute (the skin texture) pull harder on the shared trunk.
    """
    losses, ws = [], []
    for j, a in enumerate(ATTRIBUTES):
        target = codes[:, j]
        if bool((target != HIDDEN).any()):
            losses.append(F.cross_entropy(logits[a], target, ignore_index=HIDDEN))
            ws.append((weights or {}).get(a, 1.0))
    w = torch.tensor(ws)
    return (torch.stack(losses) * w).sum() / w.sum()


def attribute_accuracy(eyes: Eyes, images: np.ndarray, codes: np.ndarray) -> dict[str, float]:
    """Percent of shown attributes named right, per attribute and over all (``mean``)."""
    probs = eyes.probabilities(images)
    out: dict[str, float] = {}
    right = total = 0
    for j, a in enumerate(ATTRIBUTES):
        shown = codes[:, j] != HIDDEN
        hit = probs[a].argmax(1)[shown] == codes[shown, j]
        out[a] = 100.0 * float(hit.mean()) if shown.any() else float("nan")
        right, total = right + int(hit.sum()), total + int(shown.sum())
    out["mean"] = 100.0 * right / max(1, total)
    return out


def accuracy_by_size(eyes: Eyes, images: np.ndarray, codes: np.ndarray) -> dict[str, dict[str, float]]:
    """:func:`attribute_accuracy` per apparent size: what the picture's resolution lets the eyes read."""
    size = codes[:, ATTRIBUTES.index("size")]
    return {
        VOCABULARY["size"][k]: attribute_accuracy(eyes, images[size == k], codes[size == k])
        for k in range(len(VOCABULARY["size"]))
        if (size == k).any()
    }


def train_eyes(
    cfg: EyesConfig, out: Path, *, progress: Callable[[dict[str, float]], None] | None = None
) -> dict[str, Any]:
    """Train, write the checkpoint to ``out``; returns the run record (with held-out attribute accuracy)."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    net = EyesNet(cfg.widths, cfg.depth)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_batches = max(1, cfg.images // cfg.batch_size)
    budget_s = None if cfg.minutes is None else 60.0 * cfg.minutes
    warm = 0.05

    def lr_at(frac: float) -> float:
        if frac < warm:
            return cfg.lr * max(frac, 1.0 / n_batches) / warm
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - warm) / (1 - warm))))

    loader = DataLoader(
        _Stream(n_batches, cfg.batch_size, cfg.seed),
        batch_size=None,
        num_workers=cfg.workers,
        prefetch_factor=4 if cfg.workers else None,
    )
    net.train()
    load_start = os.getloadavg()
    cpu0 = os.times()
    t0, ema, steps = time.time(), None, 0
    batches = iter(loader)
    for step, (imgs, codes) in enumerate(batches):
        el = time.time() - t0
        frac = max(step / n_batches, el / budget_s if budget_s else 0.0)
        if frac >= 1.0:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(frac)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = net(to_batch(imgs.numpy()))
        loss = attribute_loss({a: v.float() for a, v in logits.items()}, codes, {"pattern": cfg.skin_weight})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps = step + 1
        ema = float(loss.detach()) if ema is None else 0.95 * ema + 0.05 * float(loss.detach())
        if progress is not None and (step % 20 == 0 or step == n_batches - 1):
            progress({"step": step, "images": steps * cfg.batch_size, "loss": ema, "elapsed_s": time.time() - t0})
    wall = time.time() - t0
    load_end = os.getloadavg()
    del batches  # joins the rendering workers, so their CPU time is counted below
    cpu1 = os.times()
    net.eval()
    save_eyes(net, out)
    # Held out: another stream (seed offset), never seen in training.
    images, codes = random_batch(np.random.default_rng([cfg.seed, 29]), cfg.eval_images)
    eyes = Eyes.load(out)
    return {
        "config": {**asdict(cfg), "widths": list(cfg.widths)},
        "images_seen": steps * cfg.batch_size,
        "steps": steps,
        "train_wall_s": round(wall, 1),
        # CPU seconds beside wall time: on a shared machine wall time says more about the neighbours.
        "train_cpu_s": {
            "trainer": round(cpu1.user + cpu1.system - cpu0.user - cpu0.system, 1),
            "render_workers": round(
                cpu1.children_user + cpu1.children_system - cpu0.children_user - cpu0.children_system, 1
            ),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1_5_15_at_start": [round(x, 2) for x in load_start],
            "load_average_1_5_15_at_end": [round(x, 2) for x in load_end],
        },
        "final_loss": ema,
        "parameters": sum(p.numel() for p in net.parameters()),
        "checkpoint_bytes": out.stat().st_size,
        "identity": eyes.identity,
        "heldout_attribute_accuracy": attribute_accuracy(eyes, images, codes),
        "heldout_by_size": accuracy_by_size(eyes, images, codes),
        "torch": torch.__version__,
    }
