"""Pillow renderer of the market world: attributes in, a 64 px RGB picture out, deterministic for a seed.

Every random choice comes from the one ``numpy.random.Generator`` passed in, so a seed fixes the picture.
Nuisance variation (position, rotation, scale jitter, lighting, colour jitter, background, occlusion, noise)
is drawn here, the scene around the items; one item's look (shape, colour, pattern, top) is drawn by
:mod:`visfeed.tools.world.item`. What the picture *means* is only the attribute assignment.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from visfeed.tools.world.item import draw_item

IMAGE_SIZE = 64
RENDER_VERSION = 1
"""Bump when drawing changes (here or in the item module), so caches of rendered splits are rebuilt."""

SIZE_FRACTION = {"tiny": 0.2, "small": 0.32, "medium": 0.46, "large": 0.62, "huge": 0.8}
"""Longest side of one item as a fraction of the picture."""


def _background(rng: np.random.Generator) -> Image.Image:
    s = IMAGE_SIZE
    hue = rng.uniform(0, 1)
    sat = rng.uniform(0.0, 0.35)
    val = rng.uniform(0.35, 0.95)
    base = np.asarray(_hsv(hue, sat, val), dtype=float)
    kind = int(rng.integers(0, 5))
    y = np.linspace(-1, 1, s)[:, None, None]
    x = np.linspace(-1, 1, s)[None, :, None]
    img = np.broadcast_to(base, (s, s, 3)).copy()
    if kind == 1:  # vertical gradient
        img *= 1 + 0.18 * y
    elif kind == 2:  # table edge: a second surface below a horizon
        other = np.asarray(_hsv(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.3, 0.9)), dtype=float)
        img = np.where(y > rng.uniform(-0.2, 0.5), other, img)
    elif kind == 3:  # cloth stripes
        period = rng.uniform(0.15, 0.5)
        img *= 1 + 0.12 * np.sign(np.sin((x if rng.random() < 0.5 else y) / period * np.pi))
    elif kind == 4:  # checks
        period = rng.uniform(0.2, 0.5)
        img *= 1 + 0.1 * np.sign(np.sin(x / period * np.pi) * np.sin(y / period * np.pi))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return 255 * r, 255 * g, 255 * b


def _positions(count: str, length: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    s = IMAGE_SIZE
    margin = length * 0.45
    if count == "single":
        return [
            (
                rng.uniform(margin, s - margin) if margin < s / 2 else s / 2,
                rng.uniform(margin, s - margin) if margin < s / 2 else s / 2,
            )
        ]
    if count == "pair":
        cx, cy = s / 2 + rng.uniform(-4, 4), s / 2 + rng.uniform(-4, 4)
        a = rng.uniform(0, np.pi)
        d = length * 0.55
        return [(cx + d * math.cos(a), cy + d * math.sin(a)), (cx - d * math.cos(a), cy - d * math.sin(a))]
    n = int(rng.integers(5, 9))
    cx, cy = s / 2 + rng.uniform(-5, 5), s / 2 + rng.uniform(-5, 5)
    pts = []
    for i in range(n):
        a = i * 2.4 + rng.uniform(-0.3, 0.3)
        r = length * 0.55 * math.sqrt(i + 0.3)
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a) * 1.1))
    return pts


def render(attrs: dict[str, str], rng: np.random.Generator) -> Image.Image:
    """Draw one picture of the given full attribute assignment."""
    s = IMAGE_SIZE
    img = _background(rng).convert("RGBA")
    base_len = SIZE_FRACTION[attrs["size"]] * s * rng.uniform(0.9, 1.1)
    rot_base = rng.uniform(-35, 35)
    shadow = rng.random() < 0.5
    for x, y in _positions(attrs["count"], base_len, rng):
        length = base_len * rng.uniform(0.93, 1.07)
        tile = draw_item(attrs, length, rng)
        tile = tile.rotate(rot_base + rng.uniform(-15, 15), resample=Image.Resampling.BILINEAR)
        w = tile.size[0]
        if shadow:
            sh = Image.new("RGBA", (s, s), (0, 0, 0, 0))
            ImageDraw.Draw(sh).ellipse(
                [x - length * 0.4, y + length * 0.2, x + length * 0.5, y + length * 0.55], fill=(0, 0, 0, 60)
            )
            img.alpha_composite(sh)
        img.alpha_composite(tile, (round(x - w / 2), round(y - w / 2)))
    if rng.random() < 0.2:  # partial occlusion by a neutral object
        col = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.2), rng.uniform(0.2, 0.9))
        occ = Image.new("RGBA", (s, s), (0, 0, 0, 0))
        x0 = rng.uniform(-10, s)
        y0 = rng.uniform(-10, s)
        ImageDraw.Draw(occ).rectangle(
            [x0, y0, x0 + rng.uniform(8, 22), y0 + rng.uniform(8, 22)],
            fill=(int(col[0]), int(col[1]), int(col[2]), 255),
        )
        img.alpha_composite(occ)
    out = img.convert("RGB")
    if rng.random() < 0.15:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    pixels = np.asarray(out, dtype=np.float32)
    arr: np.ndarray = pixels * rng.uniform(0.8, 1.2) * rng.uniform(0.94, 1.06, 3) + rng.uniform(-12, 12)
    arr += rng.normal(0, rng.uniform(0, 7), arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def render_array(attrs: dict[str, str], rng: np.random.Generator) -> np.ndarray:
    """Same as :func:`render`, as a ``(64, 64, 3)`` uint8 array (training path)."""
    return np.asarray(render(attrs, rng), dtype=np.uint8)
