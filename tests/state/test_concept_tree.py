"""The concept tree file: round trip, de-duplication across classes, and errors that name the culprit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from visfeed.errors import ConfigError
from visfeed.state.concepts import ConceptTree, merge_values, normalize_value


def tree_data() -> dict[str, Any]:
    return {
        "domain": "fruit",
        "classnames": ["lemon", "lime", "cherry"],
        "parts": [
            {"name": "skin", "attributes": ["color"]},
            {"name": "top", "parts": [{"name": "leaf", "attributes": ["shape"]}]},
        ],
        "values": [
            {"part": "skin", "attribute": "color", "value": "yellow", "classes": ["lemon"]},
            {"part": "skin", "attribute": "color", "value": "green", "classes": ["lime"]},
            {"part": "top/leaf", "attribute": "shape", "value": "pointed", "classes": ["lemon", "cherry"]},
        ],
    }


def load(tmp_path: Path, data: dict[str, Any]) -> ConceptTree:
    path = tmp_path / "tree.json"
    path.write_text(json.dumps(data))
    return ConceptTree.load(path)


def test_round_trip_and_clue_sentences(tmp_path: Path) -> None:
    tree = load(tmp_path, tree_data())
    again = ConceptTree.load(tree.save(tmp_path / "again.json"))
    assert again == tree
    assert [c.text for c in tree.clues()] == [
        "the color of the skin is yellow",
        "the color of the skin is green",
        "the shape of the leaf is pointed",
    ]
    data = tree_data() | {"template": "a photo of a {part} with {value} {attribute}"}
    assert load(tmp_path, data).clues()[0].text == "a photo of a skin with yellow color"


@pytest.mark.parametrize(
    ("change", "culprit"),
    [
        (lambda d: d["parts"][0].update(name="  "), "parts.0.name"),
        (lambda d: d["values"][1].update(value="Yellow."), "duplicate value 'yellow' for skin color"),
        (lambda d: d["values"][0].update(classes=["durian"]), "unknown class 'durian'"),
        (lambda d: d["values"][0].update(part="top"), "names part 'top', which is not a leaf part"),
        (lambda d: d["values"][0].update(attribute="size"), "attribute 'size' of part 'skin'"),
        (lambda d: d["values"][0].update(value=""), "values.0.value"),
        (lambda d: d.update(template="{value} {colour}"), "template"),
    ],
)
def test_invalid_trees_name_the_culprit(tmp_path: Path, change: Any, culprit: str) -> None:
    data = tree_data()
    change(data)
    with pytest.raises(ConfigError) as err:
        load(tmp_path, data)
    assert culprit in str(err.value) and "tree.json" in str(err.value)


def test_values_are_normalised_and_merged_across_classes() -> None:
    answers = [
        ("skin", "Color", "lemon", "Yellow."),
        ("skin", "color", "banana", "a yellow"),
        ("skin", "color", "lime", "GREEN"),
        ("skin", "color", "cherry", " "),
    ]
    merged = merge_values(answers, ["lemon", "lime", "banana", "cherry"])
    assert [(v.attribute, v.value, v.classes) for v in merged] == [
        ("color", "yellow", ["lemon", "banana"]),
        ("color", "green", ["lime"]),
    ]
    assert normalize_value("  The  Dark Red. ") == "dark red"
