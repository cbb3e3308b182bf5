"""The visual vocabulary and the word probe: file format, errors, and the contrastive maths on hand-made embeddings."""

from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from visfeed.errors import ConfigError
from visfeed.tools.feedback import visual_words as vw


def test_shipped_vocabulary_loads_with_categories_and_no_duplicates() -> None:
    vocab = vw.load_vocabulary()
    assert len(vocab) >= 150
    assert len(set(vocab.entries)) == len(vocab)
    assert {"colour", "shape", "texture", "part", "size", "count"} <= set(vocab.categories)
    # the 47 Describable Textures Dataset terms are there (as adjectives)
    for term in ("banded", "blotchy", "honeycombed", "zigzagged", "scaly", "veined", "woven"):
        assert term in vocab.entries
    assert vocab.texts()[0] == vw.WORD_TEMPLATE.format(word=vocab.entries[0])


def test_user_file_one_entry_a_line_with_comments_and_headers(tmp_path: Path) -> None:
    f = tmp_path / "words.txt"
    f.write_text("# mine\nGlossy\n\n[colour]\nred\n  dark   red \nred\n", encoding="utf-8")
    vocab = vw.load_vocabulary(f)
    assert vocab.entries == ("glossy", "red", "dark red")
    assert vocab.categories == ("words", "colour", "colour")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("red\n[colour\nblue\n", "line 2: malformed category header"),
        ("red\n{classname} x\n", "line 2: vocabulary entry '{classname} x'"),
        ("red\na b c d e f g\n", "more than 6 words"),
        ("# only a comment\nred\n", "at least 2 entries"),
    ],
)
def test_malformed_vocabulary_is_a_clear_config_error(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "bad.txt"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        vw.load_vocabulary(f)
    assert needle in str(err.value)
    assert str(f) in str(err.value)


def test_missing_and_binary_vocabulary_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        vw.load_vocabulary(tmp_path / "nope.txt")
    f = tmp_path / "bin.txt"
    f.write_bytes(b"\xff\xfe\x00red")
    with pytest.raises(ConfigError, match="not UTF-8"):
        vw.load_vocabulary(f)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _toy() -> tuple[vw.Vocabulary, np.ndarray, np.ndarray, np.ndarray]:
    """Class A's images lie along axis 0, B's (A's confuser) along axis 1, C's along axis 2."""
    vocab = vw.Vocabulary(("a-word", "b-word", "c-word", "shared"), ("words",) * 4, "toy")
    words = _unit(np.array([[1, 0, 0, 0.1], [0, 1, 0, 0.1], [0, 0, 1, 0.1], [1, 1, 0, 0.1]], dtype=np.float32))
    rng = np.random.default_rng(0)
    imgs, labels = [], []
    for c in range(3):
        base = np.eye(4, dtype=np.float32)[c]
        imgs.append(_unit(base + 0.05 * rng.standard_normal((5, 4)).astype(np.float32)))
        labels += [c] * 5
    return vocab, words, np.concatenate(imgs), np.array(labels)


def test_a_word_aligned_with_a_class_ranks_first_for_it_and_last_against_it() -> None:
    vocab, words, imgs, labels = _toy()
    probe = vw.WordProbe.build(vocab, words, imgs, labels, ["A", "B", "C"])
    cw = probe.words(0, [1], k=4, k_against=4, per_category=4)
    assert cw.own[0] == "a-word"
    assert "b-word" not in cw.own  # fits the confuser's images, not A's
    assert cw.against["B"][0] == "b-word"
    # the raw contrast ranks a-word first and b-word last
    order = np.argsort(-vw.contrast(probe.fit, 0, [1]))
    assert vocab.entries[order[0]] == "a-word"
    assert vocab.entries[order[-1]] == "b-word"


def test_fit_is_standardized_per_word_and_classes_without_images_are_nan() -> None:
    _, words, imgs, labels = _toy()
    keep = labels != 2
    fit = vw.class_word_fit(imgs[keep], labels[keep], 3, words)
    assert np.isnan(fit[2]).all()
    np.testing.assert_allclose(np.nanmean(fit[:2], axis=0), 0, atol=1e-6)
    # brute force: mean cosine per class, then z-score per word over the classes that have images
    mean = np.stack([(imgs[labels == c] @ words.T).mean(0) for c in range(2)])
    z = (mean - mean.mean(0)) / mean.std(0)
    np.testing.assert_allclose(fit[:2], z, rtol=1e-4, atol=1e-4)


def test_top_entries_caps_each_category() -> None:
    vocab = vw.Vocabulary(("red", "dark red", "pink", "round"), ("colour", "colour", "colour", "shape"), "t")
    scores = np.array([4.0, 3.0, 2.0, 1.0])
    assert vw.top_entries(scores, vocab, 3, per_category=2) == ["red", "dark red", "round"]
    assert vw.top_entries(scores, vocab, 3, require=np.array([False, True, True, True])) == [
        "dark red",
        "pink",
        "round",
    ]


def test_control_descriptions_use_every_word_in_fixed_templates() -> None:
    words = ["green", "small", "round", "dimpled", "with a stem", "glossy"]
    descs = vw.words_descriptions(words)
    assert descs == [
        "something green, small and round",
        "something dimpled, with a stem and glossy",
        "something green, round and with a stem",
        "something small, dimpled and glossy",
    ]
    assert vw.words_descriptions(["green"]) == ["something green"]
    assert vw.words_descriptions([]) == []


def test_vocabulary_module_never_imports_the_world() -> None:
    """The vocabulary is written independently of the synthetic world's words (DESIGN: visual words)."""
    src = Path(vw.__file__).read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom):
            assert "world" not in (node.module or ""), node.module
        elif isinstance(node, ast.Import):
            assert all("world" not in a.name for a in node.names)
    data = resources.files("visfeed").joinpath("assets", "vocabulary", "visual_words.txt").read_text(encoding="utf-8")
    assert "market" not in data.casefold()


def test_word_items_are_singles_then_pairs() -> None:
    items = vw.word_items(["yellow", "round", "smooth", "small"], singles=3, pairs_of=3)
    assert items == [
        "a yellow thing", "a round thing", "a smooth thing",
        "a yellow round thing", "a yellow smooth thing", "a round smooth thing",
    ]  # fmt: skip
