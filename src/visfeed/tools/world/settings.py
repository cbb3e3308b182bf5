"""The settings of the world's two training runs: the market image tower and the eyes.

Why a module of their own: ``visfeed world train`` and ``train-eyes`` show these defaults in their help
and take them as their own, and importing them here costs no torch. Each default is the value the shipped
checkpoint was trained with (its run record, ``assets/market_vlm.json`` / ``market_eyes.json``, holds the
whole config), so a command with no options retrains what ships.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run of the market image tower (all recorded in the run record)."""

    seed: int = 0
    images: int = 640_000
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_frac: float = 0.03
    pool_size: int = 32_000
    twins: int = 64  # hard-negative twins per batch
    checkpoint_every: int = 0  # steps between partial checkpoints (<out>.partial.pt); 0 = none
    workers: int = 1
    threads: int = 1
    init_logit_scale: float = math.log(20.0)
    max_logit_scale: float = math.log(100.0)


@dataclass(frozen=True)
class EyesConfig:
    """Settings of one eyes training run (all recorded in the run record).

    The shipped eyes ran 28 minutes of a 3,000,000-picture schedule under bfloat16 autocast and saw 223,552
    pictures: the time budget ended it, and the learning rate followed the time fraction. ``bf16`` is off
    by default all the same: a CPU without bfloat16 units is slower with it.
    """

    seed: int = 0
    images: int = 3_000_000
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    widths: tuple[int, int, int, int] = (32, 64, 128, 128)
    depth: int = 2
    workers: int = 1
    threads: int = 1
    eval_images: int = 1_000
    minutes: float | None = 28.0
    """Wall-clock budget of the training loop (None: see all ``images``)."""
    skin_weight: float = 2.0
    """Weight of the skin texture's (``pattern``) loss against 1 for each other attribute: the skin is the
    slowest attribute to learn (held-out: 41 % at weight 1 after 171,904 pictures, 65 % at 2 after 223,552,
    each in 28 minutes)."""
    bf16: bool = False
    """Train under bfloat16 autocast (weights stay float32): about twice the pictures per second on a CPU
    with AMX or AVX-512 BF16, slower on one without."""
