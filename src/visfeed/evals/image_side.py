"""The image-side grid of one split: every class-side method under every image-side subset.

Shared by ``visfeed eval --image-side``, a run's finalizer and ``benchmarks/image_side.py``, so the three
report the same numbers: test accuracy per (class-side method, image-side subset), the MLLM's own label
accuracy, and accuracy on the pictures whose guessed label is wrong (does fusion survive a bad guess?).

A side with auto weights gets them per class side from a labelled *selection* split (validation, or the
feedback split where there is none): the MLLM is asked about those pictures too (cached like the test
ones), :func:`~visfeed.tools.image_side.fusion.choose_weights` sees only them, and the test split is scored once with
the weights chosen. The weights and the selection figures are recorded beside each score.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from pydantic import BaseModel, Field

from visfeed.errors import ConfigError
from visfeed.state.image_side import AUTO, PARTS, ImageSide
from visfeed.state.llm import LLMSettings
from visfeed.state.templates import PromptSet
from visfeed.tools.image_side.answers import ImageViews, class_matrix, correct_against, view_images
from visfeed.tools.image_side.fusion import NOISE_SE, TIE_SCALE, choose_weights, fuse
from visfeed.tools.llm import Budget, LLMClient, ProviderHandle, ResponseCache, resolve_provider
from visfeed.tools.llm.vision import DESCRIBE_PROMPT, check_accepts_images, project_cost
from visfeed.tools.scoring.session import TextEncoder

log = logging.getLogger(__name__)

MLLM_MAX_TOKENS = 160
"""Completion cap per MLLM answer: a description of about 100 words, or a label."""


def all_subsets(*, auto: bool = False) -> list[ImageSide]:
    """The seven non-empty subsets of image, description and label (equal weights, or auto ones)."""
    weights: dict[str, float] | str = AUTO if auto else {}
    return [ImageSide(parts=c, weights=weights) for k in (1, 2, 3) for c in itertools.combinations(PARTS, k)]  # type: ignore[arg-type]


@dataclass
class SelectionSplit:
    """Labelled pictures the auto weights are chosen on: validation (or feedback), never test."""

    name: str
    paths: Sequence[str]
    image_emb: np.ndarray
    labels: np.ndarray


def union_side(sides: Sequence[ImageSide]) -> ImageSide:
    """One side holding every part any of ``sides`` uses (what to ask the MLLM for)."""
    return ImageSide(parts=tuple(p for p in PARTS if any(p in s.parts for s in sides)))


class SideScore(BaseModel):
    """Test accuracy (%) of one class-side method under one image side."""

    accuracy: float = Field(description="All test pictures.")
    accuracy_label_wrong: float | None = Field(
        default=None, description="Pictures whose MLLM label guess is wrong (None: no guesses asked)."
    )
    weights: dict[str, float] | None = Field(
        default=None, description="Weights of the parts used on test (for an auto side: those chosen on selection)."
    )
    selection_accuracy: float | None = Field(
        default=None, description="Auto side: accuracy (%) on the selection split with the chosen weights."
    )
    selection_image_accuracy: float | None = Field(
        default=None, description="Auto side: accuracy (%) on the selection split with the image alone."
    )
    selection_best_accuracy: float | None = Field(
        default=None,
        description="Auto side: the best weighting's accuracy (%) on the selection split (the chosen one is the "
        "simplest within a standard error of it).",
    )


class ImageSideResult(BaseModel):
    """One split's grid: method -> side label -> score, plus what the MLLM got right on its own."""

    mllm: str = Field(description="Provider and model that answered.")
    label_accuracy: float | None = Field(description="Percent of pictures whose label guess names the true class.")
    label_wrong: int = Field(description="Pictures whose guess is wrong (the subset of accuracy_label_wrong).")
    n_images: int = Field(description="Test pictures.")
    scores: dict[str, dict[str, SideScore]] = Field(description="method -> image side -> score.")
    examples: list[dict[str, str]] = Field(default_factory=list, description="A few answers, for the report.")
    selected_on: str | None = Field(
        default=None, description="Split the auto weights were chosen on (validation or feedback); None: no auto side."
    )
    selection_images: int = Field(default=0, description="Pictures of that split.")
    selection_label_accuracy: float | None = Field(
        default=None, description="The MLLM's label accuracy (%) on the selection split."
    )


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
    """The multimodal provider and a client with the response cache, a budget and bounded concurrency.

    The provider gets the process environment (an API key, proxies) from here: tools read none.
    """
    handle = resolve_provider(spec, base_url=base_url, temperature=0.0, local_seed=seed, env=os.environ)
    check_accepts_images(handle)
    budget = Budget(max_calls=max_calls, max_cost_usd=max_cost_usd) if (max_calls or max_cost_usd) else None
    settings = LLMSettings(temperature=0.0, max_tokens=MLLM_MAX_TOKENS, seed=seed, max_concurrency=max_concurrency)
    return handle, LLMClient(handle, settings, cache=ResponseCache(cache_path), budget=budget)


def projected(handle: ProviderHandle, n_images: int, side: ImageSide, classnames: Sequence[str]) -> str:
    """The worst-case cost line shown before the MLLM is asked."""
    from visfeed.tools.image_side.answers import classify_prompt

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
    selection: tuple[str, ImageViews, np.ndarray] | None = None,
    mllm: str = "",
    device: str = "auto",
    noise_se: float = NOISE_SE,
) -> ImageSideResult:
    """Every method under every side; the plain image side is scored as such (no fusion maths).

    ``selection`` (split name, its views, its labels) is where auto sides choose their weights (``noise_se``:
    see :func:`~visfeed.tools.image_side.fusion.choose_weights`); the test ``views`` and ``labels`` are only scored.
    """
    if any(s.auto for s in sides) and selection is None:
        raise ConfigError("auto image-side weights need a labelled selection split (validation or feedback)")
    asked = "label" in views.parts
    wrong = ~views.label_correct(labels) if asked else np.zeros(len(labels), dtype=bool)
    scale = float(getattr(encoder, "logit_scale", None) or TIE_SCALE)
    scores: dict[str, dict[str, SideScore]] = {}
    for method, prompts in class_sides.items():
        row = scores.setdefault(method, {})
        # the class side's rows, embedded once: every side of this method is scored against them
        rows = class_matrix(encoder, classnames, prompts, views.parts["image"], labels, device=device)
        for side in sides:
            score = SideScore(accuracy=0.0)
            if side.parts == ("image",):
                right = correct_against(views.parts["image"], rows, labels)
            else:
                fixed = side
                if side.auto and selection is not None:
                    _, sel, sel_labels = selection
                    choice = choose_weights(sel.parts, rows, sel_labels, side, scale=scale, noise_se=noise_se)
                    fixed = side.with_weights(choice.weights)
                    score.selection_accuracy = choice.accuracy
                    score.selection_image_accuracy = choice.image_accuracy
                    score.selection_best_accuracy = choice.best_accuracy
                right = correct_against(fuse(views.parts, fixed), rows, labels)
                score.weights = {p: fixed.weight(p) for p in fixed.parts}
            score.accuracy = _pct(right)
            score.accuracy_label_wrong = _pct(right[wrong]) if asked else None
            row[side.label] = score
    examples = [
        {"true": classnames[int(labels[i])], "description": views.descriptions[i], "label": views.label_answers[i]}
        for i in range(min(5, len(labels)))
    ]
    sel_name, sel_label = None, None
    if selection is not None and any(s.auto for s in sides):
        sel_name = selection[0]
        if "label" in selection[1].parts:
            sel_label = _pct(selection[1].label_correct(selection[2]))
    return ImageSideResult(
        mllm=mllm,
        label_accuracy=_pct(~wrong) if asked else None,
        label_wrong=int(wrong.sum()),
        n_images=len(labels),
        scores=scores,
        examples=examples,
        selected_on=sel_name,
        selection_images=len(selection[2]) if sel_name is not None and selection is not None else 0,
        selection_label_accuracy=sel_label,
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
    selection: SelectionSplit | None = None,
    device: str = "auto",
    noise_se: float = NOISE_SE,
) -> ImageSideResult:
    """Ask the MLLM once per picture and question (cached), choose auto weights on ``selection``, score test."""
    fit = getattr(encoder, "fit_text", None)
    union = union_side(sides)
    sel = None
    if selection is not None and any(s.auto for s in sides):
        sel_views = view_images(client, encoder, selection.paths, selection.image_emb, classnames, union, fit=fit)
        sel = (selection.name, sel_views, np.asarray(selection.labels))
    views = view_images(client, encoder, paths, image_emb, classnames, union, fit=fit)
    mllm = "" if client is None else f"{client.handle.provider}:{client.handle.model}"
    return score_grid(
        encoder, classnames, class_sides, views, labels, sides, selection=sel, mllm=mllm, device=device,
        noise_se=noise_se,
    )  # fmt: skip


class EmbeddedPictures(Protocol):
    """What a split embedded for scoring gives (``agents.resources.EmbeddedSplit``)."""

    image_emb: np.ndarray
    labels: np.ndarray
    paths: list[str] | None


def selection_split(validation: EmbeddedPictures | None, feedback: EmbeddedPictures) -> SelectionSplit:
    """The validation split when the data has one with image files, else the feedback split."""
    for name, split in (("validation", validation), ("feedback", feedback)):
        if split is not None and split.paths:
            return SelectionSplit(name, list(split.paths), split.image_emb, split.labels)
    raise ConfigError("auto image-side weights need the image files of the validation or feedback split")
