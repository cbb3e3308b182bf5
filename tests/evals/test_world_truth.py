"""The world-truth measures of the concept benchmark: they must tell a true tree from a false one."""

from __future__ import annotations

from visfeed.evals.concepts.world_truth import (
    PHRASES,
    VOCABULARY_SYNONYMS,
    positive_precision_at_k,
    positive_profile,
    spec_tree,
    true_assignments,
    world_match,
)
from visfeed.state.concepts import ConceptPart, ConceptTree, ConceptValue
from visfeed.tools.concepts.features import tree_space
from visfeed.tools.feedback.visual_words import load_vocabulary
from visfeed.tools.world.spec import load_spec
from visfeed.tools.world.vocab import VOCABULARY


def test_world_match_reads_the_captions_words_and_the_part() -> None:
    assert world_match("object", "shape", "cylindrical") == ("shape", "long")  # a caption synonym
    assert world_match("object", "pattern", "striped") == ("pattern", "stripes")
    assert world_match("skin", "color", "heart-shaped") == ("shape", "heart")
    assert world_match("flesh", "color", "pale yellow") == ("inside", "pale yellow")
    assert world_match("object", "pattern", "knitted") is None
    assert world_match("object", "shape", "spherical") == ("shape", "round")  # a vocabulary synonym
    assert world_match("object", "color", "golden") is None  # between yellow and orange: states neither


def test_vocabulary_synonyms_are_vocabulary_words_that_name_world_values() -> None:
    entries = set(load_vocabulary(None).entries)
    for word, (attribute, value) in VOCABULARY_SYNONYMS.items():
        assert word in entries and value in VOCABULARY[attribute]
        assert PHRASES[word] == (attribute, value)


def test_true_assignments_of_the_spec_tree_and_of_a_wrong_one() -> None:
    spec = load_spec()
    assert all(row["fraction"] == 1.0 for row in true_assignments(spec_tree(spec), spec).values())
    lemon = next(c for c in spec.classes if c.name == "lemon")
    assert "yellow" in lemon.support("color")
    wrong = ConceptTree(
        domain="fruit", classnames=spec.classnames, parts=[ConceptPart(name="object", attributes=["color", "shape"])],
        values=[ConceptValue(part="object", attribute="color", value="brown", classes=["lemon"]),
                ConceptValue(part="object", attribute="color", value="yellow", classes=["banana"]),
                ConceptValue(part="object", attribute="shape", value="yellow", classes=["lemon"])],
    )  # fmt: skip
    got = true_assignments(wrong, spec)
    assert got["color"] == {"assignments": 2, "true": 1, "fraction": 0.5}
    assert got["shape"]["true"] == 0  # a colour is no shape, however true of the class


def test_positive_precision_counts_only_the_clues_given_and_names_the_class_they_are_true_of() -> None:
    spec = load_spec()
    space = tree_space(spec_tree(spec))
    yellow = next(t for t in space.texts if t.endswith("skin is yellow"))
    blue = next(t for t in space.texts if t.endswith("skin is blue"))
    got = positive_precision_at_k(
        {"lemon": [(yellow, 0.3), (blue, 0.1)], "blueberry": [(yellow, 0.2)], "lime": []}, space, spec
    )
    assert got == {"lemon": 0.5, "blueberry": 0.0}  # lime has no positive evidence: left out, not a zero


def test_positive_profile_tells_a_ranking_miss_from_a_missing_true_clue() -> None:
    spec = load_spec()
    space = tree_space(spec_tree(spec))
    yellow = next(t for t in space.texts if t.endswith("skin is yellow"))
    blue = next(t for t in space.texts if t.endswith("skin is blue"))
    dimples = next(t for t in space.texts if t.endswith("skin is dimples"))
    got = positive_profile(
        {"lemon": [(yellow, 0.6), (blue, 0.3), (dimples, 0.1)], "blueberry": [(yellow, 0.2)], "lime": []}, space, spec
    )
    assert got["at_1"] == 0.5 and abs(got["at_3"] - 1 / 3) < 1e-9 and abs(got["at_5"] - 1 / 3) < 1e-9
    # lemon: two true clues of three, so no order reaches more than 2/3; blueberry: none is true
    assert abs(got["ceiling_at_5"] - 1 / 3) < 1e-9
    assert abs(got["weighted"] - 0.35) < 1e-9  # lemon's true clues carry 0.7 of its importance
