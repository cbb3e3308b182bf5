"""Fusion maths on hand-made embeddings, truncation by real open_clip tokenizers, label matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pytest

from visfeed.errors import ConfigError, EmbeddingError
from visfeed.state.image_side import ImageSide, parse_image_side
from visfeed.tools.embedding.cache import EmbeddingCache
from visfeed.tools.embedding.text_fit import fit_text, token_counter
from visfeed.tools.embedding.vlm import VLM, BackboneRef
from visfeed.tools.image_side.fusion import choose_weights, fuse, match_label, weight_grid


def test_fuse_is_the_normalised_sum_of_normalised_parts() -> None:
    image = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    desc = np.array([[0.0, 4.0, 0.0], [0.0, 0.0, 5.0]])
    label = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    parts = {"image": image, "description": desc, "label": label}
    out = fuse(parts, ImageSide())
    s = 1 / np.sqrt(3)
    np.testing.assert_allclose(out, [[s, s, s], [0.0, 2 / np.sqrt(5), 1 / np.sqrt(5)]], atol=1e-6)
    # a subset uses only its parts, and the image alone is the normalised image
    np.testing.assert_allclose(fuse(parts, ImageSide(parts=("image",))), [[1, 0, 0], [0, 1, 0]], atol=1e-6)
    pair = fuse(parts, ImageSide(parts=("image", "description")))
    np.testing.assert_allclose(pair[0], [np.sqrt(0.5), np.sqrt(0.5), 0.0], atol=1e-6)
    # weights scale the normalised parts before the sum: 3 x image + 1 x description on row 0
    weighted = fuse(parts, parse_image_side("image,description", "image=3"))
    np.testing.assert_allclose(weighted[0], np.array([3.0, 1.0, 0.0]) / np.sqrt(10), atol=1e-6)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)


def test_fuse_and_side_refuse_bad_input() -> None:
    with pytest.raises(EmbeddingError, match="label"):
        fuse({"image": np.eye(2)}, ImageSide(parts=("image", "label")))
    with pytest.raises(EmbeddingError, match="zero"):
        fuse({"image": np.zeros((1, 2))}, ImageSide(parts=("image",)))
    with pytest.raises(ConfigError, match="picture"):
        parse_image_side("image,picture")
    with pytest.raises(ConfigError, match="repeat"):
        parse_image_side("image,image")
    with pytest.raises(ConfigError, match="PART=NUMBER"):
        parse_image_side("image", "image=heavy")
    with pytest.raises(ConfigError, match="sum to 0"):
        parse_image_side("label", "label=0")
    assert parse_image_side(" description , label ").parts == ("description", "label")


@pytest.mark.parametrize("model", ["ViT-B-32", "visfeed-market"])
def test_an_over_long_description_is_cut_by_the_towers_own_tokenizer(model: str) -> None:
    from visfeed.tools.embedding.builtin_models import register_builtin_models

    register_builtin_models()
    tok = open_clip.get_tokenizer(model)
    count, limit = token_counter(tok), tok.context_length
    text = " ".join(f"a very long description word{i} with extraordinarily polysyllabic vocabulary" for i in range(40))
    cut = fit_text(text, count, limit)
    words = text.split()
    n = len(cut.split())
    assert 0 < n < len(words) and cut == " ".join(words[:n])  # a prefix of whole words
    assert count(cut) <= limit < count(" ".join(words[: n + 1]))  # the longest that fits
    assert fit_text("a red round fruit", count, limit) == "a red round fruit"
    assert len(fit_text(" ".join(["x"] * 300), lambda t: 0, limit).split()) == 100  # the authors' 100-word cap


def test_vlm_fit_text_uses_its_tokenizer(tiny_checkpoint: Path, tmp_path: Path) -> None:
    vlm = VLM(
        BackboneRef("visfeed-test-tiny", str(tiny_checkpoint)), EmbeddingCache(tmp_path / "e.sqlite"), device="cpu"
    )
    long = "striped " * 200
    cut = vlm.fit_text(long)
    assert cut and len(vlm.tokenizer.encode(cut)) + 2 <= vlm.tokenizer.context_length < len(vlm.tokenizer.encode(long))


def test_match_label_names_the_longest_class_in_the_answer() -> None:
    names = ["apple", "green apple", "lemon"]
    assert match_label("It is a Green Apple.", names) == 1
    assert match_label("lemons", names) == 2
    assert match_label("an apple, I think", names) == 0
    assert match_label("a banana", names) == -1


def _classes_and_labels(
    rng: np.random.Generator, k: int = 6, d: int = 32, n: int = 300
) -> tuple[np.ndarray, np.ndarray]:
    rows = rng.normal(size=(k, d))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True), rng.integers(0, k, n)


def _signal(rows: np.ndarray, labels: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Embeddings near the true class's row: the larger ``noise``, the weaker the part."""
    return rows[labels] + noise * rng.normal(size=(len(labels), rows.shape[1]))


def test_weight_grid_covers_the_simplex_heaviest_image_first() -> None:
    grid = weight_grid(("image", "description", "label"))
    assert len(grid) == 231 and grid[0] == {"image": 1.0, "description": 0.0, "label": 0.0}
    assert all(abs(sum(w.values()) - 1) < 1e-9 for w in grid)
    assert len({tuple(w.values()) for w in grid}) == 231
    assert weight_grid(("image", "label"), step=0.25) == [
        {"image": w, "label": 1 - w} for w in (1.0, 0.75, 0.5, 0.25, 0.0)
    ]


def test_auto_weights_give_a_noise_provider_about_zero() -> None:
    rng = np.random.default_rng(0)
    rows, labels = _classes_and_labels(rng)
    parts = {
        "image": _signal(rows, labels, 0.25, rng),
        "description": rng.normal(size=(len(labels), rows.shape[1])),  # an MLLM whose answers are noise
        "label": rng.normal(size=(len(labels), rows.shape[1])),
    }
    side = ImageSide(weights="auto")
    choice = choose_weights(parts, rows, labels, side)
    assert choice.weights["image"] >= 0.9 and choice.weights["description"] <= 0.05 and choice.weights["label"] <= 0.05
    assert choice.image_accuracy is not None and choice.accuracy >= choice.image_accuracy
    # equal weights, as the paper fuses: the noise drags the image down
    equal = fuse(parts, ImageSide()) @ rows.T
    assert 100 * (equal.argmax(1) == labels).mean() < choice.image_accuracy - 10
    with pytest.raises(ConfigError, match="chosen on validation"):
        fuse(parts, side)


def test_auto_weights_use_a_part_that_helps() -> None:
    rng = np.random.default_rng(1)
    rows, labels = _classes_and_labels(rng)
    parts = {"image": _signal(rows, labels, 0.3, rng), "description": _signal(rows, labels, 0.3, rng)}
    choice = choose_weights(parts, rows, labels, ImageSide(parts=("image", "description"), weights="auto"))
    assert 0.2 <= choice.weights["description"] <= 0.8  # two independent views of equal strength: both used
    assert choice.image_accuracy is not None and choice.accuracy > choice.image_accuracy + 3


def _rescued(n_rescued: int, n: int = 200, k: int = 8) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """An image part wrong on 40 of ``n`` pictures (narrowly) and a label that agrees with the image's own
    answer except on ``n_rescued`` of those 40, where it names the true class: any label weight above a small
    threshold rescues exactly those pictures and changes nothing else."""
    rows, labels = np.eye(k), np.arange(n) % k
    seen = labels.copy()
    seen[:40] = (labels[:40] + 1) % k  # the image's wrong answers
    image = 1.0 * rows[seen] + 0.9 * rows[labels]
    image[40:] = rows[labels[40:]] + 0.5 * rows[(labels[40:] + 1) % k]
    label = rows[seen].copy()
    label[:n_rescued] = rows[labels[:n_rescued]]
    return {"image": image, "label": label}, rows, labels


def test_a_gain_within_the_selection_splits_noise_keeps_the_image_alone() -> None:
    """One picture of 200 rescued (+0.5 points, one standard error): the label gets no weight."""
    parts, rows, labels = _rescued(1)
    choice = choose_weights(parts, rows, labels, ImageSide(parts=("image", "label"), weights="auto"))
    assert choice.weights == {"image": 1.0, "label": 0.0}
    assert choice.accuracy == choice.image_accuracy == 80.0 and choice.best_accuracy == 80.5
    # the best weighting alone (no noise allowance) would have taken the label on that one picture
    assert (
        choose_weights(parts, rows, labels, ImageSide(parts=("image", "label"), weights="auto"), noise_se=0).weights[
            "label"
        ]
        > 0
    )


def test_a_gain_beyond_the_noise_is_taken_with_the_lightest_label_that_keeps_it() -> None:
    parts, rows, labels = _rescued(30)  # +15 points: far beyond a standard error (about 2.5)
    side = ImageSide(parts=("image", "label"), weights="auto")
    choice = choose_weights(parts, rows, labels, side)
    assert choice.best_accuracy == 95.0 and choice.accuracy == 95.0 and choice.image_accuracy == 80.0
    heavier = [w for w in weight_grid(side.parts) if w["label"] > choice.weights["label"]]
    assert 0 < choice.weights["label"] < 0.5 and heavier  # every heavier label also gets 95: the lightest wins
    for w in heavier:
        fused = fuse(parts, side.with_weights(w)) @ rows.T
        assert 100 * (fused.argmax(1) == labels).mean() <= 95.0


def test_auto_and_equal_weights_parse_and_label() -> None:
    assert parse_image_side("image,label").auto and parse_image_side("image,label").label == "image+label auto"
    equal = parse_image_side("image,label", "equal")
    assert not equal.auto and equal.weights == {} and equal.label == "image+label"
    alone = parse_image_side("image")  # nothing to choose
    assert not alone.auto and alone.weight("image") == 1.0 and alone.label == "image"
    with pytest.raises(ConfigError, match="auto, equal or PART=NUMBER"):
        parse_image_side("image,label", "heavy")
