"""Every torchvision adapter parses a miniature copy of its dataset, offline, through torchvision's code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from visfeed.errors import DataError
from visfeed.tools.datasets import DatasetSplits, load_dataset, load_dataset_with_report

scipy = pytest.importorskip  # alias only to keep the per-test skips readable


def assert_labels_match(splits: DatasetSplits, truth: dict[str, str]) -> None:
    """Each image's label names the class the fixture put it in; splits are disjoint."""
    seen: set[str] = set()
    for split in (splits.feedback, splits.validation, splits.test):
        if split is None:
            continue
        for path, label in zip(split.paths, split.labels, strict=True):
            assert os.path.isabs(path)
            assert splits.classnames[label] == truth[path], path
            assert path not in seen
            seen.add(path)


@pytest.mark.parametrize(
    ("name", "needs_scipy", "sizes"),
    [
        ("flowers102", True, (3, 3, 3)),  # official val / test: all 3 of each
        ("dtd", False, (2, 2, 2)),
        ("eurosat", False, (3, 3, 3)),  # 30% of 4 per class held out -> 1 test each, 1 carved val
        ("food101", False, (2, 2, 4)),
        ("oxford_pets", False, (6, 6, 6)),
        ("caltech101", False, (3, 3, 3)),
        ("sun397", False, (2, 2, 4)),
        ("stanford_cars", True, (3, 3, 6)),
        ("fgvc_aircraft", False, (3, 3, 3)),
        ("imagenet", False, (3, 3, 6)),
    ],
)
def test_adapter_reads_miniature_dataset(
    build, tmp_path: Path, name: str, needs_scipy: bool, sizes: tuple[int, int, int]
) -> None:
    if needs_scipy:
        pytest.importorskip("scipy")
    truth = getattr(build, name)(tmp_path)
    loaded = load_dataset_with_report(name, tmp_path, k_shot=1, seed=0)
    splits = loaded.splits
    assert_labels_match(splits, truth)
    assert sorted(set(splits.classnames)) == sorted(set(truth.values()))
    got = (len(splits.feedback), len(splits.validation or []), len(splits.test))
    assert got == sizes
    assert loaded.report.n_skipped == 0


def test_readable_names_follow_clip(build, tmp_path: Path) -> None:
    build.eurosat(tmp_path / "e")
    assert load_dataset("eurosat", tmp_path / "e", k_shot=1).classnames == ["annual crop land", "forest", "lake or sea"]
    build.caltech101(tmp_path / "c")
    # BACKGROUND_Google is dropped as in torchvision; folder names map to CLIP's names
    assert load_dataset("caltech101", tmp_path / "c", k_shot=1).classnames == [
        "centered face",
        "accordion",
        "side of a car",
    ]
    build.imagenet(tmp_path / "i")
    assert load_dataset("imagenet", tmp_path / "i", k_shot=1).classnames == ["tench", "goldfish", "projectile"]


def test_root_may_point_inside_the_dataset_folder(build, tmp_path: Path) -> None:
    truth = build.dtd(tmp_path)
    splits = load_dataset("dtd", tmp_path / "dtd" / "dtd", k_shot=1)
    assert_labels_match(splits, truth)


def test_sun397_without_partitions_holds_out_a_test_split(build, tmp_path: Path) -> None:
    truth = build.sun397(tmp_path, partitions=False)
    loaded = load_dataset_with_report("sun397", tmp_path, k_shot=2, seed=3)
    assert_labels_match(loaded.splits, truth)
    assert "held out" in loaded.report.origin["test"]
    assert len(loaded.splits.test) == 2  # 30% of 4 per class, rounded, two classes


def test_sun397_partition_entry_outside_classes_is_an_error(build, tmp_path: Path) -> None:
    build.sun397(tmp_path)
    with open(tmp_path / "Training_01.txt", "a") as fh:
        fh.write("/z/zoo/sun_x.jpg\n")
    with pytest.raises(DataError, match="zoo"):
        load_dataset("sun397", tmp_path)


def test_image_listed_by_metadata_but_absent_is_skipped_and_reported(build, tmp_path: Path) -> None:
    truth = build.food101(tmp_path)
    gone = sorted(p for p in truth if "/apple_pie/104" in p)[0]  # a test image
    os.remove(gone)
    loaded = load_dataset_with_report("food101", tmp_path, k_shot=1)
    assert gone not in loaded.splits.test.paths
    assert loaded.report.n_skipped == 1
    assert loaded.report.skipped[0].path == gone and loaded.report.skipped[0].reason == "missing"


@pytest.mark.parametrize(
    ("name", "downloadable"),
    [
        ("flowers102", True),
        ("dtd", True),
        ("eurosat", True),
        ("food101", True),
        ("oxford_pets", True),
        ("caltech101", True),
        ("sun397", True),
        ("stanford_cars", False),
        ("fgvc_aircraft", True),
        ("cifar10", True),
        ("cifar100", True),
        ("imagenet", False),
    ],
)
def test_missing_data_names_dataset_path_and_layout(tmp_path: Path, name: str, downloadable: bool) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    with pytest.raises(DataError) as info:
        load_dataset(name, empty)
    message = str(info.value)
    assert repr(name) in message and str(empty) in message and "Expected layout" in message
    assert ("--download" in message) == downloadable
    assert list(empty.iterdir()) == []  # nothing created, nothing fetched


def test_corrupt_metadata_becomes_a_data_error(build, tmp_path: Path) -> None:
    build.food101(tmp_path)
    (tmp_path / "food-101" / "meta" / "train.json").write_text("{not json")
    with pytest.raises(DataError, match="food101.*could not read"):
        load_dataset("food101", tmp_path)
