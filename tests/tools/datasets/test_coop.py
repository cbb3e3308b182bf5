"""CoOp split files and CoOp's $DATA layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visfeed.errors import ConfigError, DataError
from visfeed.tools.datasets import load_dataset, load_dataset_with_report


def coop_eurosat(build, data: Path) -> dict[str, list]:
    """$DATA/eurosat/2750/<Class>/... + split_zhou_EuroSAT.json with CoOp's renamed classes."""
    classes = [("AnnualCrop", "Annual Crop Land"), ("SeaLake", "Sea or Lake")]
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, (folder, cname) in enumerate(classes):
        for i, part in enumerate(["train"] * 4 + ["val", "val", "test", "test"]):
            rel = f"{folder}/{folder}_{i}.jpg"
            build.image(data / "eurosat" / "2750" / rel, 10 * label + i, "JPEG")
            split[part].append([rel, label, cname])
    (data / "eurosat" / "split_zhou_EuroSAT.json").write_text(json.dumps(split))
    return split


@pytest.mark.parametrize("where", ["data", "dataset", "file"])
def test_coop_split_file_from_any_root(build, tmp_path: Path, where: str) -> None:
    split = coop_eurosat(build, tmp_path)
    root = {
        "data": tmp_path,
        "dataset": tmp_path / "eurosat",
        "file": tmp_path / "eurosat" / "split_zhou_EuroSAT.json",
    }[where]
    name = "coop" if where == "file" else "coop:eurosat"
    loaded = load_dataset_with_report(name, root, k_shot=2, seed=4)
    s = loaded.splits
    assert s.classnames == ["Annual Crop Land", "Sea or Lake"]
    expected_test = sorted(str(tmp_path / "eurosat" / "2750" / rel) for rel, _, _ in split["test"])
    assert sorted(s.test.paths) == expected_test
    assert s.validation is not None and len(s.validation) == 4  # the file's whole val split
    train_files = {str(tmp_path / "eurosat" / "2750" / rel) for rel, _, _ in split["train"]}
    assert set(s.feedback.paths) <= train_files and len(s.feedback) == 4
    for p, label in zip(s.feedback.paths, s.feedback.labels, strict=True):
        assert ("SeaLake" in p) == (label == 1)


def test_coop_val_shots_like_coop(build, tmp_path: Path) -> None:
    coop_eurosat(build, tmp_path)
    s = load_dataset("coop:eurosat", tmp_path, k_shot=1, n_val_per_class=1)
    assert s.validation is not None and len(s.validation) == 2


def test_coop_missing_split_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="(?s)coop:dtd.*split_zhou_DescribableTextures.json.*Expected layout"):
        load_dataset("coop:dtd", tmp_path)


def test_unknown_coop_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown CoOp dataset"):
        load_dataset("coop:mnist", tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"train": [["a.jpg", 0, "cat"]], "val": [], "test": [["b.jpg", 0, "dog"]]}, "called both"),
        ({"train": [["a.jpg", 1, "cat"]], "val": [], "test": []}, "labels must run 0..N-1"),
        ({"train": [["a.jpg", 0]], "test": []}, r"train\[0\] must be \[relative_path, label, classname\]"),
        (["not", "a", "dict"], "must be a JSON object"),
    ],
)
def test_malformed_split_files(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "split_zhou_Custom.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DataError, match=message):
        load_dataset("coop", path)


def test_coop_fgvc_aircraft_layout(build, tmp_path: Path) -> None:
    truth = build.fgvc_aircraft(tmp_path, coop=True)
    s = load_dataset("coop:fgvc_aircraft", tmp_path, k_shot=2)
    assert s.classnames == ["707-320", "A300B4", "Cessna 172"]
    for split in (s.feedback, s.validation, s.test):
        assert split is not None
        for p, label in zip(split.paths, split.labels, strict=True):
            assert truth[p] == s.classnames[label]


def test_coop_imagenet_layout(build, tmp_path: Path) -> None:
    truth = build.imagenet(tmp_path / "imagenet" / "images")
    s = load_dataset("coop:imagenet", tmp_path, k_shot=1)
    assert s.name == "coop:imagenet" and s.classnames == ["tench", "goldfish", "projectile"]
    assert {p: s.classnames[lab] for p, lab in zip(s.test.paths, s.test.labels, strict=True)} == {
        p: n for p, n in truth.items() if "/val/" in p
    }
