"""The image line: classifiers fitted on the labelled feedback images themselves, beside every text method.

Why in every result: a description optimizer sees the same few labelled images that a few-shot image
classifier is trained on. If the normalised class means of those embeddings (``image_prototypes``) or a
logistic regression on them (``linear_probe``) beat the optimized descriptions, a user should see it. Both
use the labelled images directly, so they are reference lines, not zero-shot methods; results mark them
with ``uses_images``. The probe's regularisation is chosen on the validation split (never the test split);
without one it keeps scikit-learn's default ``C = 1``.

Scale: the probe's multinomial fit holds several (images x classes) float64 arrays, 3.5 GB each at
21,000 classes with one image per class, so above :data:`PROBE_MAX_ELEMENTS` it is not fitted (the line
then has prototypes only, and says why); prototypes predict a block of images at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from visfeed.errors import DataError

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression

IMAGE_METHODS = ("image_prototypes", "linear_probe")
PROBE_CS = (0.01, 0.1, 1.0, 10.0, 100.0)
"""Inverse regularisation strengths the probe tries on the validation split."""
PROBE_MAX_ELEMENTS = 50_000_000
"""Most (feedback images x classes) for which the probe is fitted: its arrays then stay near 0.4 GB each."""
BLOCK_ELEMENTS = 1 << 24
"""Scores per block when prototypes predict (a block of images x all classes, float64: 128 MB)."""


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float64), so dot products are cosines."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def prototypes(emb: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Normalised mean embedding of each class's images (``n_classes × dim``); every class needs an image."""
    labels = np.asarray(labels)
    missing = sorted(set(range(n_classes)) - set(labels.tolist()))
    if missing:
        raise DataError(f"image prototypes need at least one feedback image per class; classes {missing[:5]} have none")
    x = normalise_rows(emb)
    means = np.stack([x[labels == c].mean(axis=0) for c in range(n_classes)])
    return normalise_rows(means)


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of ``pred`` equal to ``labels`` (0 for no images)."""
    labels = np.asarray(labels)
    return float((np.asarray(pred) == labels).mean()) if len(labels) else 0.0


@dataclass(frozen=True)
class ImageLine:
    """The fitted image-line classifiers of one run (fitted on the feedback split only)."""

    prototypes: np.ndarray
    probe: LogisticRegression | None  # None: too many images x classes to fit (see probe_c_source)
    probe_c: float
    probe_c_source: str

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods this line can predict with: both, or prototypes alone when the probe was skipped."""
        return IMAGE_METHODS if self.probe is not None else IMAGE_METHODS[:1]

    def predict(self, method: str, emb: np.ndarray) -> np.ndarray:
        """Predicted class indices of ``emb`` by ``method`` (one of :attr:`methods`)."""
        x = normalise_rows(emb)
        if method == "image_prototypes":
            step = max(1, BLOCK_ELEMENTS // max(1, len(self.prototypes)))
            return np.concatenate(
                [(x[i : i + step] @ self.prototypes.T).argmax(axis=1) for i in range(0, len(x), step)]
            ) if len(x) else np.zeros(0, dtype=np.int64)  # fmt: skip
        if method == "linear_probe" and self.probe is not None:
            return np.asarray(self.probe.predict(x))
        raise ValueError(f"image-line method {method!r} is not available; this line has {self.methods}")


def _probe(c: float, seed: int) -> LogisticRegression:
    # Imported here: scikit-learn (with SciPy's optimizers and pandas) holds about 140 MB of memory, and
    # every module that imports this one (the scoring tools, the run) would carry it from its start.
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=2000, random_state=seed)


def fit_image_line(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    n_classes: int,
    *,
    val_emb: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    seed: int = 0,
    max_probe_elements: int = PROBE_MAX_ELEMENTS,
) -> ImageLine:
    """Prototypes and a logistic-regression probe on the feedback embeddings; the probe's C picked on validation.

    The probe is skipped (``probe`` None, the reason in ``probe_c_source``) above ``max_probe_elements``.
    """
    protos = prototypes(train_emb, train_labels, n_classes)
    size = len(train_labels) * n_classes
    if size > max_probe_elements:
        reason = f"skipped: {len(train_labels):,} images x {n_classes:,} classes > {max_probe_elements:,}"
        return ImageLine(protos, None, float("nan"), reason)
    x = normalise_rows(train_emb)
    y = np.asarray(train_labels)
    if val_emb is not None and val_labels is not None and len(val_labels):
        xv = normalise_rows(val_emb)
        scored = [(accuracy(_probe(c, seed).fit(x, y).predict(xv), val_labels), -i, c) for i, c in enumerate(PROBE_CS)]
        best_c = max(scored)[2]  # ties: the stronger regularisation (earlier in PROBE_CS)
        source = "validation"
    else:
        best_c, source = 1.0, "default (no validation split)"
    return ImageLine(protos, _probe(best_c, seed).fit(x, y), best_c, source)
