"""Auto image-side weights are chosen on the selection split only, and the test split is scored with them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from visfeed.errors import ConfigError
from visfeed.evals.image_side import SideScore, score_grid
from visfeed.state.image_side import ImageSide
from visfeed.tools.image_side.answers import ImageViews
from visfeed.tools.image_side.fusion import choose_weights, fuse

K, D = 6, 32


class TableEncoder:
    """Class ``cI``'s one prompt embeds to row I: the class side is known exactly."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.rows[int(t[1:])] for t in texts]).astype(np.float32)


def _views(rows: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *, truthful: bool) -> ImageViews:
    """Image embeddings of middling quality; a description that is good (``truthful``) or noise."""
    image = rows[labels] + 0.3 * rng.normal(size=(len(labels), D))
    desc = rows[labels] + 0.2 * rng.normal(size=(len(labels), D)) if truthful else rng.normal(size=(len(labels), D))
    n = len(labels)
    return ImageViews([""] * n, [""] * n, np.full(n, -1), {"image": image, "description": desc})


def test_weights_come_from_the_selection_split_never_from_test() -> None:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(K, D))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    classnames = [f"c{i}" for i in range(K)]
    sides = {"names": {c: [c] for c in classnames}}
    sel_labels, test_labels = rng.integers(0, K, 240), rng.integers(0, K, 240)
    # validation says the description is worth a lot; on test the same MLLM answers noise
    selection = _views(rows, sel_labels, rng, truthful=True)
    test = _views(rows, test_labels, rng, truthful=False)
    side = ImageSide(parts=("image", "description"), weights="auto")
    grid = score_grid(
        TableEncoder(rows), classnames, sides, test, test_labels, [ImageSide(parts=("image",)), side],
        selection=("validation", selection, sel_labels), device="cpu",
    )  # fmt: skip
    score = grid.scores["names"][side.label]
    expected = choose_weights(selection.parts, rows, sel_labels, side)
    assert score.weights == expected.weights and score.selection_accuracy == expected.accuracy
    # weights chosen on test would drop the noisy description; these lean on it, and test pays for it
    on_test = choose_weights(test.parts, rows, test_labels, side)
    assert on_test.weights["description"] <= 0.1 < 0.25 <= score.weights["description"]
    fused = fuse(test.parts, side.with_weights(score.weights)) @ rows.T
    assert score.accuracy == pytest.approx(100 * (fused.argmax(1) == test_labels).mean())
    assert score.accuracy < grid.scores["names"]["image"].accuracy
    assert grid.selected_on == "validation" and grid.selection_images == 240


def test_auto_weights_without_a_selection_split_are_refused() -> None:
    rng = np.random.default_rng(4)
    rows = rng.normal(size=(K, D))
    labels = rng.integers(0, K, 30)
    classnames = [f"c{i}" for i in range(K)]
    with pytest.raises(ConfigError, match="selection split"):
        score_grid(
            TableEncoder(rows), classnames, {"names": {c: [c] for c in classnames}},
            _views(rows, labels, rng, truthful=True), labels,
            [ImageSide(parts=("image", "description"), weights="auto")], device="cpu",
        )  # fmt: skip


def test_a_side_without_the_image_has_no_image_alone_figure_and_the_report_says_so() -> None:
    from visfeed.evals.report import _image_side_section

    rng = np.random.default_rng(5)
    rows = rng.normal(size=(K, D))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    classnames = [f"c{i}" for i in range(K)]
    labels = rng.integers(0, K, 60)
    views = _views(rows, labels, rng, truthful=True)
    views.parts["label"] = rng.normal(size=(len(labels), D))
    side = ImageSide(parts=("description", "label"), weights="auto")
    grid = score_grid(
        TableEncoder(rows), classnames, {"names": {c: [c] for c in classnames}}, views, labels,
        [ImageSide(parts=("image",)), side], selection=("feedback", views, labels), device="cpu",
    )  # fmt: skip
    score = grid.scores["names"][side.label]
    assert score.selection_image_accuracy is None and score.weights is not None and grid.selected_on == "feedback"
    page = _image_side_section(grid.model_dump(mode="json"))
    assert "description+label auto: weights (accuracy on feedback, image alone there)" in page and ", -)" in page


def test_the_grid_records_the_best_weighting_and_keeps_the_image_for_a_gain_within_noise() -> None:
    """On the selection split a description rescues one picture of 120: the grid keeps the image alone (and
    says what the best weighting scored); with no noise allowance it takes the description."""
    k, n = 6, 120
    rows, labels = np.eye(k), np.arange(n) % k
    seen = labels.copy()
    seen[:20] = (labels[:20] + 1) % k
    image = rows[seen] + 0.9 * rows[labels]
    image[20:] = rows[labels[20:]]
    desc = rows[seen].copy()
    desc[0] = rows[labels[0]]
    views = ImageViews([""] * n, [""] * n, np.full(n, -1), {"image": image, "description": desc})
    classnames = [f"c{i}" for i in range(k)]
    side = ImageSide(parts=("image", "description"), weights="auto")

    def grid(noise_se: float) -> SideScore:
        return score_grid(
            TableEncoder(rows), classnames, {"names": {c: [c] for c in classnames}}, views, labels, [side],
            selection=("validation", views, labels), device="cpu", noise_se=noise_se,
        ).scores["names"][side.label]  # fmt: skip

    kept, taken = grid(1.0), grid(0.0)
    assert kept.weights == {"image": 1.0, "description": 0.0}
    assert kept.selection_accuracy == kept.selection_image_accuracy == pytest.approx(100 * 100 / 120)
    assert kept.selection_best_accuracy == pytest.approx(100 * 101 / 120) == taken.selection_accuracy
    assert taken.weights is not None and taken.weights["description"] > 0
