"""Which parts make the image side's fused query ("What do you see?", arXiv 2405.15668), and their weights.

A config model, so it lives with the other settings: a run's config names it and the CLI parses it; the
fusion maths that use it are in :mod:`visfeed.tools.fusion`.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from visfeed.errors import ConfigError

Part = Literal["image", "description", "label"]
PARTS: tuple[Part, ...] = get_args(Part)


class ImageSide(BaseModel):
    """Which parts make the fused query, and their weights (equal by default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parts: tuple[Part, ...] = Field(default=PARTS, description="Parts summed into the query, any non-empty subset.")
    weights: dict[str, float] = Field(default_factory=dict, description="Weight per part (missing: 1.0).")

    @field_validator("parts", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return [p.strip() for p in v.split(",") if p.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> ImageSide:
        if not self.parts:
            raise ValueError(f"image side needs at least one part of {', '.join(PARTS)}")
        if len(set(self.parts)) != len(self.parts):
            raise ValueError(f"image side parts repeat: {', '.join(self.parts)}")
        for name, w in self.weights.items():
            if name not in PARTS:
                raise ValueError(f"weight for unknown part {name!r}; parts are {', '.join(PARTS)}")
            if not (np.isfinite(w) and w >= 0):
                raise ValueError(f"weight of {name!r} must be finite and >= 0, got {w}")
        if sum(self.weight(p) for p in self.parts) <= 0:
            raise ValueError("the weights of the chosen parts sum to 0")
        return self

    def weight(self, part: str) -> float:
        """The weight of one part."""
        return float(self.weights.get(part, 1.0))

    @property
    def label(self) -> str:
        """Short name, e.g. ``image+description+label``."""
        return "+".join(self.parts)

    @property
    def asks_mllm(self) -> bool:
        """Whether a multimodal LLM must be asked (description or label among the parts)."""
        return any(p != "image" for p in self.parts)


def parse_image_side(text: str, weights: str | None = None) -> ImageSide:
    """``image,description,label`` and optional ``description=0.5,label=2`` into an :class:`ImageSide`."""
    w: dict[str, float] = {}
    for item in (weights or "").split(","):
        if item.strip():
            name, eq, value = item.partition("=")
            try:
                w[name.strip()] = float(value)
            except ValueError:
                raise ConfigError(f"--image-weights expects PART=NUMBER items, got {item!r}") from None
            if not eq:
                raise ConfigError(f"--image-weights expects PART=NUMBER items, got {item!r}")
    try:
        return ImageSide(parts=text, weights=w)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f"--image-side {text!r}: {exc}") from None
