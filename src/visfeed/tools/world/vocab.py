"""The attribute vocabulary of the market world: what a class spec may say and the renderer can draw.

Every attribute is single-valued per rendered item. The vocabulary is fixed in code because each value
needs drawing code; class specs (YAML) choose distributions over these values. ``docs/world.md`` and the
header of ``assets/world/market.yaml`` document the same table.
"""

from __future__ import annotations

from typing import Final

COLORS: Final[tuple[str, ...]] = (
    "red",
    "dark red",
    "pink",
    "orange",
    "yellow",
    "pale yellow",
    "light green",
    "green",
    "dark green",
    "blue",
    "purple",
    "brown",
    "white",
)

VOCABULARY: Final[dict[str, tuple[str, ...]]] = {
    # main skin colour of the item
    "color": COLORS,
    # silhouette
    "shape": ("round", "oval", "long", "curved", "heart", "teardrop", "cone", "flat", "floret"),
    # skin texture / pattern (hidden when the item is cut in half)
    "pattern": (
        "smooth",
        "stripes",
        "spots",
        "seeds",
        "dimples",
        "scales",
        "kernels",
        "hairy",
        "ribs",
        "bumpy",
        "fuzzy",
    ),
    # part on top of the item
    "top": ("none", "stem", "leaf", "cap", "crown", "greens", "husk"),
    # apparent size in the picture (the world has a fixed camera distance)
    "size": ("tiny", "small", "medium", "large", "huge"),
    # how many items are shown
    "count": ("single", "pair", "cluster"),
    # whole, or cut in half showing the flesh
    "cut": ("whole", "halved"),
    # flesh colour, visible only when halved
    "inside": COLORS,
}

ATTRIBUTES: Final[tuple[str, ...]] = tuple(VOCABULARY)

DEFAULTS: Final[dict[str, str]] = {
    "pattern": "smooth",
    "top": "none",
    "size": "medium",
    "count": "single",
    "cut": "whole",
    "inside": "white",
}
"""Values used for attributes a class spec leaves out (``color`` and ``shape`` are required)."""

REQUIRED: Final[tuple[str, ...]] = ("color", "shape")

SIZE_OK_FOR_COUNT: Final[dict[str, tuple[str, ...]]] = {
    "single": ("tiny", "small", "medium", "large", "huge"),
    "pair": ("tiny", "small", "medium"),
    "cluster": ("tiny", "small"),
}
"""Several items must fit one 64 px picture, so only small items come in pairs or clusters."""


def compatible(attrs: dict[str, str]) -> bool:
    """Whether a (possibly partial) attribute assignment can be drawn."""
    count, size = attrs.get("count"), attrs.get("size")
    return not (count and size and size not in SIZE_OK_FOR_COUNT[count])


def index_of(attribute: str, value: str) -> int:
    """Integer code of a value (used by the vectorised caption/image consistency check)."""
    return VOCABULARY[attribute].index(value)
