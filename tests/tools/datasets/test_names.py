"""Shipped class-name lists and user overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visfeed.errors import DataError
from visfeed.tools.datasets.names import (
    check_names,
    curated_dict,
    curated_list,
    derive,
    read_classnames_file,
)


def test_flowers_list_is_clips_cleanup_of_torchvisions() -> None:
    from torchvision.datasets import Flowers102

    ours = curated_list("flowers102")
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(ours, Flowers102.classes, strict=True)) if a != b]
    assert diff == [
        (15, "globe flower", "globe-flower"),
        (59, "pink and yellow dahlia", "pink-yellow dahlia?"),
        (92, "air plant", "ball moss"),
    ]


def test_imagenet_names_are_clip_names_and_unique() -> None:
    import open_clip.zero_shot_metadata as meta

    names = curated_dict("imagenet")
    wnids = list(names)
    assert len(wnids) == 1000 and wnids == sorted(wnids) and wnids[0] == "n01440764"
    clip = list(meta.IMAGENET_CLASSNAMES)
    changed = [(w, clip[i], names[w]) for i, w in enumerate(wnids) if clip[i] != names[w]]
    # exactly the two documented edits that make CLIP's list unique
    assert changed == [("n04008634", "missile", "projectile"), ("n04355933", "sunglasses", "sunglass")]
    check_names(list(names.values()), wnids, "imagenet")


@pytest.mark.parametrize(("dataset", "size"), [("eurosat", 10), ("caltech101", 101)])
def test_curated_maps_cover_every_folder(dataset: str, size: int) -> None:
    names = curated_dict(dataset)
    assert len(names) == size
    check_names(list(names.values()), list(names), dataset)


def test_eurosat_examples() -> None:
    assert curated_dict("eurosat")["AnnualCrop"] == "annual crop land"
    assert curated_dict("caltech101")["Faces_easy"] == "centered face"


def test_derive() -> None:
    assert derive("apartment_building/outdoor") == "apartment building outdoor"
    assert derive("  aquarium_fish ") == "aquarium fish"


IDS = ["n1", "n2", "n3"]
CURRENT = ["one", "two", "three"]


@pytest.mark.parametrize(
    ("filename", "content", "expected"),
    [
        ("names.txt", "uno\ndos\ntres\n\n", ["uno", "dos", "tres"]),
        ("names.txt", "n2 the second\nn1 the first\n", ["the first", "the second", "three"]),
        ("names.json", json.dumps(["uno", "dos", "tres"]), ["uno", "dos", "tres"]),
        ("names.json", json.dumps({"n3": "drei", "0": "eins"}), ["eins", "two", "drei"]),
        ("names.txt", "caf\u0065\u0301\nb\nc\n", ["café", "b", "c"]),
    ],
)
def test_classnames_file_forms(tmp_path: Path, filename: str, content: str, expected: list[str]) -> None:
    path = tmp_path / filename
    path.write_text(content, encoding="utf-8")
    assert read_classnames_file(path, IDS, CURRENT) == expected


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("names.txt", "uno\ndos\n", "has 2 names but the dataset has 3 classes"),
        ("names.txt", "uno\n\ntres\n", "name for label 1 is empty"),
        ("names.json", json.dumps({"n9": "nine"}), "names class 'n9'"),
        ("names.json", "{broken", "not valid JSON"),
        ("names.json", json.dumps("text"), "JSON list or object"),
    ],
)
def test_classnames_file_errors(tmp_path: Path, filename: str, content: str, message: str) -> None:
    path = tmp_path / filename
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_classnames_file(path, IDS, CURRENT)


def test_missing_classnames_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_classnames_file(tmp_path / "nope.txt", IDS, CURRENT)


def test_duplicate_or_empty_names_name_the_raw_classes() -> None:
    with pytest.raises(DataError, match="'n1' and 'n3' both read as 'Cat'"):
        check_names(["cat", "dog", "Cat"], IDS, "toy")
    with pytest.raises(DataError, match="'n2' .*empty"):
        check_names(["cat", " ", "bird"], IDS, "toy")
