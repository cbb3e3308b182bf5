"""The image side of zero-shot classification: fuse the picture with what a multimodal LLM says about it.

"What do you see?" (arXiv 2405.15668): the image embedding, the embedding of the MLLM's description of the
image and the embedding of its label guess are each L2-normalised, summed (the paper: equal weights,
nothing learned), renormalised, and the fused query is scored against the class side exactly as an image
embedding would be. Any subset of the three parts may be used. Texts longer than the VLM's text tower
accepts are cut by word, by the tower's own tokenizer, before they are embedded
(:mod:`visfeed.tools.embedding.text_fit`).

Equal weights let a weak part drag a strong one down, so :func:`choose_weights` picks them on a labelled
selection split (validation): a grid over the simplex of the parts' weights, the image alone included. A
few hundred validation pictures are noisy, and the best of 231 weightings can beat the image alone there by
luck (the market's templates image+label once: +0.3 on validation, -0.8 on test); so the choice leaves the
image alone only for a gain that stands out of the split's noise (one standard error), and a part the
split cannot tell from useless gets no weight.

Pure functions here; asking the MLLM is :func:`visfeed.tools.llm.vision.ask_about_images`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from visfeed.errors import EmbeddingError
from visfeed.state.image_side import ImageSide

WEIGHT_STEP = 0.05
"""Grid step of the auto weights on the simplex (231 points for three parts, 21 for two)."""
TIE_SCALE = 100.0
"""Logit scale of the cross-entropy that breaks accuracy ties (CLIP's, when the backbone has none)."""
NOISE_SE = 1.0
"""Standard errors within which a simpler weighting counts as good as the best (the one-standard-error rule)."""


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not np.all(norms > 0):
        raise EmbeddingError("cannot fuse a zero embedding")
    out: np.ndarray = x / norms
    return out


def fuse(parts: Mapping[str, np.ndarray], side: ImageSide) -> np.ndarray:
    """The fused queries (N, d): normalised weighted sum of the normalised parts ``side`` names."""
    missing = [p for p in side.parts if p not in parts]
    if missing:
        raise EmbeddingError(f"no embeddings for part(s) {', '.join(missing)}")
    shapes = {parts[p].shape for p in side.parts}
    if len(shapes) != 1:
        raise EmbeddingError(f"parts have different shapes: {sorted(shapes)}")
    total = sum(side.weight(p) * _unit(np.asarray(parts[p], dtype=np.float64)) for p in side.parts)
    return _unit(np.asarray(total)).astype(np.float32)


def match_label(answer: str, classnames: Sequence[str]) -> int:
    """Index of the class an MLLM's free-text label answer names, or -1.

    The longest class name found as whole words wins (so "green apple" beats "apple"); case-insensitive.
    """
    text = f" {re.sub(r'[^a-z0-9]+', ' ', answer.lower())} "
    best, best_len = -1, 0
    for i, name in enumerate(classnames):
        key = re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()
        if key and (f" {key} " in text or f" {key}s " in text) and len(key) > best_len:
            best, best_len = i, len(key)
    return best


def weight_grid(parts: Sequence[str], step: float = WEIGHT_STEP) -> list[dict[str, float]]:
    """Every weighting of ``parts`` on the simplex with the given step, the heaviest image weight first."""
    n = round(1 / step)
    if len(parts) == 1:
        return [{parts[0]: 1.0}]
    grid: list[dict[str, float]] = []

    def fill(prefix: list[int], left: int) -> None:
        if len(prefix) == len(parts) - 1:
            ticks = [*prefix, left]
            grid.append({p: round(k / n, 6) for p, k in zip(parts, ticks, strict=True)})
            return
        for k in range(left, -1, -1):
            fill([*prefix, k], left - k)

    fill([], n)
    return grid


@dataclass(frozen=True)
class WeightChoice:
    """The weights chosen on the selection split, and what they scored there."""

    weights: dict[str, float]
    accuracy: float
    """Percent correct on the selection split with these weights."""
    cross_entropy: float
    image_accuracy: float | None
    """Percent correct on the selection split with the image alone (None when the side has no image)."""
    best_accuracy: float
    """Percent correct of the best weighting on the selection split, before a simpler one within noise won."""


def _simplicity(w: Mapping[str, float]) -> tuple[float, float]:
    """Sort key, simplest first: the heaviest image weight, then the lightest label weight."""
    return (-w.get("image", 0.0), w.get("label", 0.0))


def choose_weights(
    parts: Mapping[str, np.ndarray],
    class_matrix: np.ndarray,
    labels: np.ndarray,
    side: ImageSide,
    *,
    step: float = WEIGHT_STEP,
    scale: float = TIE_SCALE,
    noise_se: float = NOISE_SE,
) -> WeightChoice:
    """The simplest weights of ``side.parts`` whose accuracy on the given (selection) split is within noise of the best.

    ``parts`` are that split's part embeddings, ``class_matrix`` (K, d) the class side's rows (scores are
    ``query @ class_matrix.T``, as in the scoring engine), ``labels`` its true classes. The best weighting
    has the highest accuracy, ties going to the lower cross-entropy of ``softmax(scale * scores)``. Then
    the one-standard-error rule: a weighting whose accuracy is within ``noise_se`` standard errors of the
    best's (the paired difference on the same pictures) is as good as far as the split can tell, and the
    simplest of those wins: the heaviest image weight (so the image alone unless the gain over it stands
    out of the noise), then the lightest label weight. Only what is passed in is seen: give it the
    validation split, never the test split.
    """
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))
    classes = np.asarray(class_matrix, dtype=np.float64)
    grid = weight_grid(side.parts, step)
    if not grid or not len(labels):
        raise EmbeddingError(f"no weighting of {side.label} to choose from")
    hits = np.empty((len(grid), len(labels)), dtype=np.float64)
    ces = np.empty(len(grid))
    for g, w in enumerate(grid):
        scores = fuse(parts, side.with_weights(w)).astype(np.float64) @ classes.T
        hits[g] = scores.argmax(1) == labels
        z = scale * scores
        z -= z.max(1, keepdims=True)
        ces[g] = float(np.mean(np.log(np.exp(z).sum(1)) - z[rows, labels]))
    accs = 100.0 * hits.mean(1)
    best = max(range(len(grid)), key=lambda g: (accs[g], -ces[g], -g))
    diff = hits[best] - hits
    se = 100.0 * diff.std(1, ddof=1) / np.sqrt(len(labels)) if len(labels) > 1 else np.zeros(len(grid))
    within = [g for g in range(len(grid)) if accs[g] >= accs[best] - noise_se * se[g]]
    chosen = min(within, key=lambda g: (*_simplicity(grid[g]), -accs[g], ces[g], g))
    image = next((g for g, w in enumerate(grid) if w.get("image") == 1.0), None)
    return WeightChoice(
        weights=grid[chosen],
        accuracy=float(accs[chosen]),
        cross_entropy=float(ces[chosen]),
        image_accuracy=None if image is None else float(accs[image]),
        best_accuracy=float(accs[best]),
    )
