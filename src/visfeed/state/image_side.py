"""Which parts make the image side's fused query ("What do you see?", arXiv 2405.15668), and their weights.

A config model, so it lives with the other settings: a run's config names it and the CLI parses it; the
fusion maths that use it are in :mod:`visfeed.tools.image_side.fusion`.

Weights are equal (the paper), given by the user, or ``"auto"``: chosen per class side on the validation
split (:func:`visfeed.tools.image_side.fusion.choose_weights`), because the right weights depend on the MLLM, the
backbone and the dataset, and an equal-weight sum of a strong and a weak signal is worse than the strong one.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from visfeed.errors import ConfigError

Part = Literal["image", "description", "label"]
PARTS: tuple[Part, ...] = get_args(Part)
AUTO = "auto"
AUTO_SUFFIX = " auto"
"""Appended to the label of a side whose weights are chosen on validation (``image+label auto``)."""


class ImageSide(BaseModel):
    """Which parts make the fused query, and their weights (equal, given, or ``"auto"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parts: tuple[Part, ...] = Field(default=PARTS, description="Parts summed into the query, any non-empty subset.")
    weights: dict[str, float] | Literal["auto"] = Field(
        default_factory=dict,
        description="Weight per part (missing: 1.0), or 'auto': chosen per class side on the validation split.",
    )

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
        if isinstance(self.weights, str):
            return self
        for name, w in self.weights.items():
            if name not in PARTS:
                raise ValueError(f"weight for unknown part {name!r}; parts are {', '.join(PARTS)}")
            if not (np.isfinite(w) and w >= 0):
                raise ValueError(f"weight of {name!r} must be finite and >= 0, got {w}")
        if sum(self.weight(p) for p in self.parts) <= 0:
            raise ValueError("the weights of the chosen parts sum to 0")
        return self

    @property
    def auto(self) -> bool:
        """Whether the weights are to be chosen on validation (a single part needs no choice)."""
        return self.weights == AUTO and len(self.parts) > 1

    def weight(self, part: str) -> float:
        """The weight of one part (a side with auto weights has none until they are chosen)."""
        if isinstance(self.weights, str):
            if len(self.parts) == 1:
                return 1.0
            raise ConfigError(f"image side {self.label}: auto weights must be chosen on validation before fusing")
        return float(self.weights.get(part, 1.0))

    def with_weights(self, weights: dict[str, float]) -> ImageSide:
        """The same parts with fixed ``weights`` (e.g. the ones chosen on validation)."""
        return ImageSide(parts=self.parts, weights=weights)

    @property
    def label(self) -> str:
        """Short name, e.g. ``image+description+label`` (``... auto`` when chosen on validation)."""
        return "+".join(self.parts) + (AUTO_SUFFIX if self.auto else "")

    @property
    def asks_mllm(self) -> bool:
        """Whether a multimodal LLM must be asked (description or label among the parts)."""
        return any(p != "image" for p in self.parts)


def short_weights(weights: dict[str, float]) -> str:
    """``i0.8/d0.15/l0.05``: weights for a table cell (parts by their initial)."""
    return "/".join(f"{p[0]}{w:g}" for p, w in weights.items())


def parse_weights(weights: str | None) -> dict[str, float] | Literal["auto"]:
    """``auto`` (default), ``equal``, or ``description=0.5,label=2`` items."""
    text = (weights or AUTO).strip()
    if text == AUTO:
        return "auto"
    if text == "equal":
        return {}
    w: dict[str, float] = {}
    for item in text.split(","):
        if item.strip():
            name, eq, value = item.partition("=")
            try:
                w[name.strip()] = float(value)
            except ValueError:
                raise ConfigError(f"--image-weights expects auto, equal or PART=NUMBER items, got {item!r}") from None
            if not eq:
                raise ConfigError(f"--image-weights expects auto, equal or PART=NUMBER items, got {item!r}")
    return w


def parse_image_side(text: str, weights: str | None = AUTO) -> ImageSide:
    """``image,description,label`` and ``auto`` / ``equal`` / ``description=0.5,label=2`` into an :class:`ImageSide`."""
    w = parse_weights(weights)
    try:
        return ImageSide(parts=text, weights=w)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f"--image-side {text!r}: {exc}") from None
