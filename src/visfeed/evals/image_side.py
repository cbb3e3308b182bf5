"""The image-side grid of one split: every class-side method under every image-side subset.

Shared by ``visfeed eval --image-side``, a run's finalizer and ``benchmarks/image_side.py``, so the three
report the same numbers: test accuracy per (class-side method, image-side subset), the MLLM's own label
accuracy, and accuracy on the pictures whose guessed label is wrong (does fusion survive a bad guess?).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from visfeed.state.image_side import PARTS, ImageSide
from visfeed.state.llm import LLMSettings
from visfeed.state.templates import PromptSet
from visfeed.tools.image_side import ImageViews, correct_per_image, fused_correct, view_images
from visfeed.tools.llm import Budget, LLMClient, ProviderHandle, ResponseCache, resolve_provider
from visfeed.tools.llm.vision import DESCRIBE_PROMPT, check_accepts_images, project_cost
from visfeed.tools.session import TextEncoder

log = logging.getLogger(__name__)

MLLM_MAX_TOKENS = 160
"""Completion cap per MLLM answer: a description of about 100 words, or a label."""


def all_subsets() -> list[ImageSide]:
    """The seven non-empty subsets of image, description and label, equal weights."""
    return [ImageSide(parts=c) for k in (1, 2, 3) for c in itertools.combinations(PARTS, k)]


def union_side(sides: Sequence[ImageSide]) -> ImageSide:
    """One side holding every part any of ``sides`` uses (what to ask the MLLM for)."""
    return ImageSide(parts=tuple(p for p in PARTS if any(p in s.parts for s in sides)))


class SideScore(BaseModel):
    """Test accuracy (%) of one class-side method under one image side."""

    accuracy: float = Field(description="All test pictures.")
    accuracy_label_wrong: float | None = Field(
        default=None, description="Pictures whose MLLM label guess is wrong (None: no guesses asked)."
    )


class ImageSideResult(BaseModel):
    """One split's grid: method -> side label -> score, plus what the MLLM got right on its own."""

    mllm: str = Field(description="Provider and model that answered.")
    label_accuracy: float | None = Field(description="Percent of pictures whose label guess names the true class.")
    label_wrong: int = Field(description="Pictures whose guess is wrong (the subset of accuracy_label_wrong).")
    n_images: int = Field(description="Test pictures.")
    scores: dict[str, dict[str, SideScore]] = Field(description="method -> image side -> score.")
    examples: list[dict[str, str]] = Field(default_factory=list, description="A few answers, for the report.")


def open_mllm(
    spec: str,
    *,
    base_url: str | None,
    cache_path: Path,
    seed: int,
    max_calls: int | None = None,
    max_cost_usd: float | None = None,
    max_concurrency: int = 2,
) -> tuple[ProviderHandle, LLMClient]:
    """The multimodal provider and a client with the response cache, a budget and bounded concurrency."""
    handle = resolve_provider(spec, base_url=base_url, temperature=0.0, local_seed=seed)
    check_accepts_images(handle)
    budget = Budget(max_calls=max_calls, max_cost_usd=max_cost_usd) if (max_calls or max_cost_usd) else None
    settings = LLMSettings(temperature=0.0, max_tokens=MLLM_MAX_TOKENS, seed=seed, max_concurrency=max_concurrency)
    return handle, LLMClient(handle, settings, cache=ResponseCache(cache_path), budget=budget)


def projected(handle: ProviderHandle, n_images: int, side: ImageSide, classnames: Sequence[str]) -> str:
    """The worst-case cost line shown before the MLLM is asked."""
    from visfeed.tools.image_side import classify_prompt

    prompts = ([DESCRIBE_PROMPT] if "description" in side.parts else []) + (
        [classify_prompt(classnames)] if "label" in side.parts else []
    )
    return project_cost(handle, n_images, prompts, max_tokens=MLLM_MAX_TOKENS).describe()


def _pct(mask: np.ndarray) -> float:
    return 100.0 * float(mask.mean()) if mask.size else float("nan")


def score_grid(
    encoder: TextEncoder,
    classnames: Sequence[str],
    class_sides: Mapping[str, PromptSet],
    views: ImageViews,
    labels: np.ndarray,
    sides: Sequence[ImageSide],
    *,
    mllm: str = "",
    device: str = "auto",
) -> ImageSideResult:
    """Every method under every side; the plain image side is scored as such (no fusion maths)."""
    asked = "label" in views.parts
    wrong = ~views.label_correct(labels) if asked else np.zeros(len(labels), dtype=bool)
    scores: dict[str, dict[str, SideScore]] = {}
    for method, prompts in class_sides.items():
        row = scores.setdefault(method, {})
        for side in sides:
            if side.parts == ("image",):
                right = correct_per_image(encoder, classnames, prompts, views.parts["image"], labels, device=device)
            else:
                right = fused_correct(encoder, classnames, prompts, views, labels, side, device=device)
            row[side.label] = SideScore(
                accuracy=_pct(right), accuracy_label_wrong=_pct(right[wrong]) if asked else None
            )
    examples = [
        {"true": classnames[int(labels[i])], "description": views.descriptions[i], "label": views.label_answers[i]}
        for i in range(min(5, len(labels)))
    ]
    return ImageSideResult(
        mllm=mllm,
        label_accuracy=_pct(~wrong) if asked else None,
        label_wrong=int(wrong.sum()),
        n_images=len(labels),
        scores=scores,
        examples=examples,
    )


def image_side_grid(
    client: LLMClient | None,
    encoder: TextEncoder,
    classnames: Sequence[str],
    class_sides: Mapping[str, PromptSet],
    paths: Sequence[str],
    image_emb: np.ndarray,
    labels: np.ndarray,
    sides: Sequence[ImageSide],
    *,
    device: str = "auto",
) -> ImageSideResult:
    """Ask the MLLM once per picture and question (cached), then score the grid."""
    fit = getattr(encoder, "fit_text", None)
    views = view_images(client, encoder, paths, image_emb, classnames, union_side(sides), fit=fit)
    mllm = "" if client is None else f"{client.handle.provider}:{client.handle.model}"
    return score_grid(encoder, classnames, class_sides, views, labels, sides, mllm=mllm, device=device)
