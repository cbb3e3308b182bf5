"""One item of the market world as an RGBA tile: its shape, colour, pattern and top, drawn from its attributes.

Why apart from :mod:`visfeed.tools.world.render`: an item's look is what the attributes mean,
while the renderer composes the scene around the items (background, placement, lighting, occlusion,
noise). Random choices come from the caller's generator, in the same order as ever, so a seed still
fixes the picture; a change of drawing here needs a bump of ``render.RENDER_VERSION``.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (205, 30, 35),
    "dark red": (115, 12, 30),
    "pink": (240, 125, 160),
    "orange": (245, 135, 20),
    "yellow": (245, 215, 35),
    "pale yellow": (245, 235, 165),
    "light green": (165, 215, 70),
    "green": (55, 155, 45),
    "dark green": (20, 80, 30),
    "blue": (45, 65, 175),
    "purple": (105, 35, 125),
    "brown": (125, 80, 40),
    "white": (245, 245, 238),
}

_LEAF = (50, 140, 40)
_STEM = (95, 60, 25)
_DARK_BODIES = {"red", "dark red", "purple", "blue", "dark green", "brown", "green", "pink"}


def _clip(c: np.ndarray) -> tuple[int, int, int]:
    a = np.clip(c, 0, 255).astype(int)
    return int(a[0]), int(a[1]), int(a[2])


def _shade(rgb: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return _clip(np.asarray(rgb, dtype=float) * f)


def _profile(shape: str, u: np.ndarray) -> np.ndarray:
    """Half-width (in units of half the item length) along the long axis, u = 0 top .. 1 bottom."""
    d = np.abs(2 * u - 1)
    if shape == "round":
        return np.sqrt(np.clip(1 - d**2, 0, None))
    if shape == "oval":
        return 0.7 * np.sqrt(np.clip(1 - d**2, 0, None))
    if shape == "long":
        r = 0.3
        return np.where(d <= 1 - r, r, np.sqrt(np.clip(r**2 - (d - (1 - r)) ** 2, 0, None)))
    if shape == "heart":
        return 0.95 * np.sin(np.pi * np.clip(u, 0, 1) ** 0.75) ** 0.55 * (1 - 0.45 * u)
    if shape == "teardrop":
        bulb = 0.68 * np.sqrt(np.clip(1 - ((u - 0.66) / 0.34) ** 2, 0, None))
        neck = 0.36 * np.sqrt(np.clip(1 - ((u - 0.24) / 0.24) ** 2, 0, None))
        return np.maximum(bulb, neck)
    if shape == "cone":
        top = np.sqrt(np.clip(u / 0.07, 0, 1))
        return 0.36 * top * (1 - u) ** 0.9 + 0.02
    raise ValueError(shape)


def _outline(shape: str, length: float, cx: float, cy: float) -> list[tuple[float, float]]:
    """Polygon of a silhouette whose long axis is vertical and ``length`` px long."""
    h = length / 2
    if shape == "flat":
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        return [(cx + h * math.cos(a), cy + 0.68 * h * math.sin(a)) for a in t]
    if shape == "curved":
        # a crescent: a band along a circular arc, thick in the middle, pointed at the ends
        rad = 1.1 * h
        t = np.linspace(0, 1, 24)
        ang = np.pi / 2 + (t - 0.5) * 1.7
        thick = 0.3 * h * np.sin(np.pi * t) ** 0.7 + 0.03 * h
        ox, oy = cx - rad * 0.75, cy
        outer = [
            (ox + (rad + w) * math.sin(a), oy - (rad + w) * math.cos(a) + 0)
            for a, w in zip(ang, thick / 2, strict=True)
        ]
        inner = [
            (ox + (rad - w) * math.sin(a), oy - (rad - w) * math.cos(a)) for a, w in zip(ang, thick / 2, strict=True)
        ]
        pts = outer + inner[::-1]
        xs = [p[0] for p in pts]
        shift = cx - (min(xs) + max(xs)) / 2
        return [(x + shift, y) for x, y in pts]
    u = np.linspace(0, 1, 24)
    w = _profile(shape, u) * h
    y = cy - h + u * length
    right = [(cx + float(a), float(b)) for a, b in zip(w, y, strict=True)]
    left = [(cx - float(a), float(b)) for a, b in zip(w[::-1], y[::-1], strict=True)]
    return right + left


def _pattern_color(attrs: dict[str, str], body: tuple[int, int, int]) -> tuple[int, int, int]:
    p = attrs["pattern"]
    if p == "seeds":
        return (250, 225, 90) if attrs["color"] in _DARK_BODIES else (40, 25, 15)
    if p in ("bumpy", "fuzzy"):
        return _shade(body, 1.35) if attrs["color"] not in ("white", "pale yellow", "yellow") else _shade(body, 0.8)
    if p == "kernels":
        return _shade(body, 1.2)
    if p == "hairy":
        return _shade(body, 0.6)
    return _shade(body, 0.55)


def _draw_pattern(
    draw: ImageDraw.ImageDraw,
    attrs: dict[str, str],
    box: tuple[float, float, float, float],
    body: tuple[int, int, int],
    rng: np.random.Generator,
) -> None:
    p = attrs["pattern"]
    if p == "smooth":
        return
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    col = _pattern_color(attrs, body)
    s = max(w, h)
    if p == "stripes":
        n = int(rng.integers(3, 6))
        lw = max(1, round(s / 14))
        for i in range(n):
            x = x0 + (i + 0.5 + rng.uniform(-0.15, 0.15)) * w / n
            draw.line([(x, y0), (x + rng.uniform(-0.1, 0.1) * w, y1)], fill=col, width=lw)
    elif p == "ribs":
        n = 5
        for i in range(1, n):
            x = x0 + i * w / n
            bend = (i - n / 2) / n * w * 0.35
            draw.line([(x - bend, y0), (x, (y0 + y1) / 2), (x - bend, y1)], fill=col, width=1)
    elif p in ("spots", "seeds", "dimples", "fuzzy"):
        density = {"spots": 0.012, "seeds": 0.03, "dimples": 0.09, "fuzzy": 0.25}[p]
        n = max(4, int(density * w * h))
        r = {"spots": max(1.0, s / 12), "seeds": max(0.6, s / 28), "dimples": 0.5, "fuzzy": 0.4}[p]
        xs = rng.uniform(x0, x1, n)
        ys = rng.uniform(y0, y1, n)
        for x, y in zip(xs, ys, strict=True):
            rr = r * rng.uniform(0.7, 1.3)
            draw.ellipse([x - rr, y - rr * 1.2, x + rr, y + rr * 1.2], fill=col)
    elif p == "scales":
        step = max(3.0, s / 6)
        k = -h
        while k < w + h:
            draw.line([(x0 + k, y0), (x0 + k + h, y1)], fill=col, width=1)
            draw.line([(x0 + k + h, y0), (x0 + k, y1)], fill=col, width=1)
            k += step
    elif p == "kernels":
        step = max(2.5, s / 9)
        gap = _shade(body, 0.6)
        y = y0
        while y < y1:
            draw.line([(x0, y), (x1, y)], fill=gap, width=1)
            y += step
        x = x0
        while x < x1:
            draw.line([(x, y0), (x, y1)], fill=gap, width=1)
            x += step
    elif p == "hairy":
        n = max(8, int(0.08 * w * h))
        for _ in range(n):
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
            a = rng.uniform(0, 2 * np.pi)
            ln = rng.uniform(1.0, 2.5)
            draw.line([(x, y), (x + ln * math.cos(a), y + ln * math.sin(a))], fill=col, width=1)
    elif p == "bumpy":
        n = max(5, int(0.03 * w * h))
        r = max(1.2, s / 10)
        for _ in range(n):
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
            draw.ellipse([x - r, y - r, x + r, y + r], outline=_shade(body, 0.65), fill=col)


def _draw_top(
    draw: ImageDraw.ImageDraw, top: str, cx: float, ty: float, length: float, rng: np.random.Generator
) -> None:
    """Parts attached at the top point ``(cx, ty)`` of an upright item."""
    s = length
    leaf = _clip(np.asarray(_LEAF) * rng.uniform(0.85, 1.15))
    if top in ("stem", "leaf"):
        lw = max(1, round(s / 16))
        draw.line([(cx, ty + 1), (cx + s * 0.05, ty - s * 0.16)], fill=_STEM, width=lw)
        if top == "leaf":
            lx, ly = cx + s * 0.05, ty - s * 0.12
            draw.polygon(
                [
                    (lx, ly),
                    (lx + s * 0.14, ly - s * 0.1),
                    (lx + s * 0.3, ly - s * 0.04),
                    (lx + s * 0.14, ly + s * 0.03),
                ],
                fill=leaf,
            )
    elif top == "cap":
        r = s * 0.2
        pts = []
        for i in range(10):
            a = -np.pi / 2 + i * np.pi / 5
            rr = r if i % 2 == 0 else r * 0.35
            pts.append((cx + rr * math.cos(a) * 1.3, ty + s * 0.03 + rr * math.sin(a) * 0.55))
        draw.polygon(pts, fill=leaf)
    elif top == "crown":
        for i in range(5):
            dx = (i - 2) * s * 0.07
            draw.polygon(
                [
                    (cx + dx - s * 0.05, ty + 2),
                    (cx + dx * 2.2, ty - s * (0.28 + 0.06 * (2 - abs(i - 2)))),
                    (cx + dx + s * 0.05, ty + 2),
                ],
                fill=_shade(leaf, 0.85),
            )
    elif top == "greens":
        for i in range(4):
            a = -np.pi / 2 + (i - 1.5) * 0.32
            ex, ey = cx + s * 0.4 * math.cos(a), ty + s * 0.4 * math.sin(a)
            draw.line([(cx, ty + 1), (ex, ey)], fill=leaf, width=max(1, round(s / 18)))
            draw.ellipse([ex - s * 0.05, ey - s * 0.05, ex + s * 0.05, ey + s * 0.05], fill=leaf)
    elif top == "husk":
        for side in (-1, 1):
            draw.polygon(
                [
                    (cx + side * s * 0.02, ty + s * 0.55),
                    (cx + side * s * 0.3, ty + s * 0.75),
                    (cx + side * s * 0.22, ty + s * 1.02),
                    (cx + side * s * 0.04, ty + s * 1.0),
                ],
                fill=leaf,
            )


def draw_item(attrs: dict[str, str], length: float, rng: np.random.Generator) -> Image.Image:
    """One upright item centred in a square RGBA tile."""
    side = int(length * 1.9) + 6
    tile = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    c = side / 2
    body = _clip(np.asarray(PALETTE[attrs["color"]], dtype=float) * rng.uniform(0.9, 1.1, 3))
    shape = attrs["shape"]
    if shape == "floret":
        # stalk plus a canopy of florets
        draw.polygon(
            [
                (c - length * 0.1, c),
                (c + length * 0.1, c),
                (c + length * 0.07, c + length * 0.5),
                (c - length * 0.07, c + length * 0.5),
            ],
            fill=_shade(body, 1.25),
        )
        for _ in range(7):
            fx = c + rng.uniform(-0.3, 0.3) * length
            fy = c - length * 0.12 + rng.uniform(-0.22, 0.12) * length
            r = length * rng.uniform(0.16, 0.22)
            draw.ellipse([fx - r, fy - r, fx + r, fy + r], fill=_shade(body, rng.uniform(0.85, 1.1)))
        top_y = c - length * 0.5
        bbox = (c - length * 0.5, c - length * 0.5, c + length * 0.5, c + length * 0.1)
        mask_pts: list[tuple[float, float]] | None = None
    else:
        mask_pts = _outline(shape, length, c, c)
        ys = [p[1] for p in mask_pts]
        xs = [p[0] for p in mask_pts]
        top_y = min(ys)
        bbox = (min(xs), min(ys), max(xs), max(ys))
    top = attrs["top"]
    if top == "husk":
        _draw_top(draw, top, c, top_y, length, rng)
    if mask_pts is not None:
        if attrs["cut"] == "halved":
            draw.polygon(mask_pts, fill=body)
            inner = [(c + (x - c) * 0.82, c + (y - c) * 0.86) for x, y in mask_pts]
            flesh = _clip(np.asarray(PALETTE[attrs["inside"]], dtype=float) * rng.uniform(0.93, 1.07, 3))
            draw.polygon(inner, fill=flesh)
        else:
            layer = Image.new("RGBA", (side, side), (*body, 255))
            ldraw = ImageDraw.Draw(layer)
            # light from the upper left: a soft highlight and a shaded lower right
            hx, hy = bbox[0] + (bbox[2] - bbox[0]) * 0.35, bbox[1] + (bbox[3] - bbox[1]) * 0.3
            rr = max(bbox[2] - bbox[0], bbox[3] - bbox[1])
            ldraw.ellipse(
                [hx + rr * 0.15, hy + rr * 0.25, hx + rr * 0.9, hy + rr * 1.0], fill=(*_shade(body, 0.82), 255)
            )
            _draw_pattern(ldraw, attrs, bbox, body, rng)
            ldraw.ellipse(
                [hx - rr * 0.1, hy - rr * 0.08, hx + rr * 0.1, hy + rr * 0.08], fill=(*_shade(body, 1.3), 255)
            )
            mask = Image.new("L", (side, side), 0)
            ImageDraw.Draw(mask).polygon(mask_pts, fill=255)
            tile.paste(layer, (0, 0), mask)
    elif attrs["cut"] == "whole":
        _draw_pattern(draw, attrs, bbox, body, rng)
    if top not in ("none", "husk"):
        _draw_top(draw, top, c, top_y, length, rng)
    return tile
