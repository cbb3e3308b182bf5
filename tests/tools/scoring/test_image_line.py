"""The image line: prototypes and a linear probe on the feedback images, the probe's C chosen on validation."""

from __future__ import annotations

import numpy as np
import pytest

from visfeed.errors import DataError
from visfeed.tools.scoring.image_line import PROBE_CS, _probe, accuracy, fit_image_line, prototypes


def _clusters(rng: np.random.Generator, n_per: int, noise: float, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(len(centres)), n_per)
    return centres[labels] + noise * rng.standard_normal((len(labels), centres.shape[1])), labels


def test_prototypes_are_normalised_class_means_and_classify_clean_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16) * 3
    emb, labels = _clusters(rng, 8, 0.1, centres)
    protos = prototypes(emb, labels, 4)
    assert np.allclose(np.linalg.norm(protos, axis=1), 1.0)
    assert np.argmax(protos, axis=1).tolist() == [0, 1, 2, 3]
    line = fit_image_line(emb, labels, 4)
    test, test_labels = _clusters(rng, 20, 0.1, centres)
    assert accuracy(line.predict("image_prototypes", test), test_labels) == 1.0
    assert accuracy(line.predict("linear_probe", test), test_labels) == 1.0
    assert line.probe_c == 1.0 and "no validation" in line.probe_c_source


def test_probe_c_is_the_best_on_validation_never_on_test() -> None:
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((6, 32))
    train, y = _clusters(rng, 4, 1.2, centres)
    val, yv = _clusters(rng, 30, 1.2, centres)
    line = fit_image_line(train, y, 6, val_emb=val, val_labels=yv, seed=0)
    x = train / np.linalg.norm(train, axis=1, keepdims=True)
    xv = val / np.linalg.norm(val, axis=1, keepdims=True)
    on_val = [accuracy(_probe(c, 0).fit(x, y).predict(xv), yv) for c in PROBE_CS]
    assert line.probe_c_source == "validation"
    assert on_val[PROBE_CS.index(line.probe_c)] == max(on_val)
    assert line.probe_c == PROBE_CS[on_val.index(max(on_val))]  # ties go to the stronger regularisation


def test_a_class_without_feedback_images_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="classes \\[2\\]"):
        prototypes(np.ones((4, 8)), np.array([0, 0, 1, 1]), 3)


def test_a_probe_too_large_to_fit_is_skipped_with_its_reason_and_prototypes_predict_in_blocks(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    centres = np.eye(6, 16) * 3
    emb, labels = _clusters(rng, 5, 0.1, centres)
    full = fit_image_line(emb, labels, 6)
    small = fit_image_line(emb, labels, 6, max_probe_elements=5 * 6 * 6 - 1)
    assert full.methods == ("image_prototypes", "linear_probe")
    assert small.probe is None and small.methods == ("image_prototypes",)
    assert small.probe_c_source == "skipped: 30 images x 6 classes > 179"
    with pytest.raises(ValueError, match="'linear_probe' is not available"):
        small.predict("linear_probe", emb)
    test, test_labels = _clusters(rng, 7, 0.4, centres)
    whole = small.predict("image_prototypes", test)
    assert accuracy(whole, test_labels) == accuracy(full.predict("image_prototypes", test), test_labels)
    monkeypatch.setattr("visfeed.tools.scoring.image_line.BLOCK_ELEMENTS", 12)  # two images per block
    assert small.predict("image_prototypes", test).tolist() == whole.tolist()
    assert whole.tolist() == np.argmax(test @ small.prototypes.T, axis=1).tolist()
    assert small.predict("image_prototypes", test[:0]).shape == (0,)
