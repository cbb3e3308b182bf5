"""Stanford Dogs from a miniature copy in the dataset's own layout: names, splits, breed subset, crops, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.tools.datasets.conftest import DOG_BOXES, DOG_COLOURS
from typer.testing import CliRunner

from support.tiny_world import write_model
from visfeed.cli import app
from visfeed.cli.common import console, out
from visfeed.errors import ConfigError, DataError
from visfeed.tools.datasets import StanfordDogsOptions, load_dataset, load_dataset_with_report

pytest.importorskip("scipy")

runner = CliRunner()
out.width = console.width = 250  # rich would wrap the error lines the tests look for at 80 columns


def test_reads_official_lists_with_clean_breed_names(build, tmp_path: Path) -> None:
    truth = build.stanford_dogs(tmp_path)
    loaded = load_dataset_with_report("stanford_dogs", tmp_path, k_shot=2, seed=0)
    splits = loaded.splits
    assert splits.classnames == ["Chihuahua", "Japanese spaniel", "Shih-Tzu"]
    for split in (splits.feedback, splits.validation, splits.test):
        assert split is not None
        for path, label in zip(split.paths, split.labels, strict=True):
            assert splits.classnames[label] == truth[path]
    # 3 listed train images per breed: 2 shots + 1 carved validation; the 2 listed test images per breed
    assert (len(splits.feedback), len(splits.validation or []), len(splits.test)) == (6, 3, 6)
    assert all(int(Path(p).stem.split("_")[1]) > 3 for p in splits.test.paths)
    assert loaded.report.n_skipped == 0 and "test_list.mat" in loaded.report.origin["test"]
    assert load_dataset("dogs", tmp_path / "Images", k_shot=2).classnames == splits.classnames  # alias, inner root


def test_subset_of_breeds_by_name_folder_or_wordnet_id(build, tmp_path: Path) -> None:
    build.stanford_dogs(tmp_path)
    subset = StanfordDogsOptions(breeds=["shih-tzu", "n02085620", "n02085620-Chihuahua"])
    splits = load_dataset("stanford_dogs", tmp_path, k_shot=1, stanford_dogs=subset)
    assert splits.classnames == ["Chihuahua", "Shih-Tzu"]
    assert len(splits.test) == 4 and set(splits.test.labels) == {0, 1}
    assert not any("Japanese" in p for p in splits.feedback.paths + splits.test.paths)
    with pytest.raises(ConfigError, match=r"unknown breed\(s\) \['poodle'\]"):
        load_dataset("stanford_dogs", tmp_path, stanford_dogs=StanfordDogsOptions(breeds=["poodle"]))


def test_crop_to_the_union_of_annotated_boxes_written_once(build, tmp_path: Path) -> None:
    build.stanford_dogs(tmp_path / "data")
    options = StanfordDogsOptions(crop=True, crop_dir=tmp_path / "crops")
    splits = load_dataset("stanford_dogs", tmp_path / "data", k_shot=3, stanford_dogs=options)
    paths = splits.feedback.paths + splits.test.paths
    assert len(paths) == 15 and all(p.startswith(str(tmp_path / "crops")) for p in paths)
    union = (5, 4, 30, 22)
    for path, label in zip(splits.feedback.paths, splits.feedback.labels, strict=True):
        two_dogs = Path(path).stem.split("_")[1] == "1"
        left, top, right, bottom = union if two_dogs else DOG_BOXES[0]
        assert Path(path).stem.endswith(f"_{left}_{top}_{right}_{bottom}")
        with Image.open(path) as im:
            assert im.size == (right - left, bottom - top)
            pixels = np.asarray(im.convert("RGB"), dtype=float)
        colour = list(DOG_COLOURS.values())[label]
        inside = pixels[2:5, 2:5].mean(axis=(0, 1))  # just inside the top-left corner lies a painted dog
        assert np.abs(inside - colour).max() < 40, (path, inside)
        source = Path(str(tmp_path / "data" / "Images"), Path(path).parent.name, Path(path).stem.rsplit("_", 4)[0])
        with Image.open(source.with_suffix(".jpg")) as im:
            region = np.asarray(im.convert("RGB").crop((left, top, right, bottom)), dtype=float)
        assert np.abs(region - pixels).mean() < 12  # the crop is that region of the source, re-encoded
    before = {p: Path(p).stat().st_mtime_ns for p in paths}
    again = load_dataset("stanford_dogs", tmp_path / "data", k_shot=3, stanford_dogs=options)
    assert again == splits and {p: Path(p).stat().st_mtime_ns for p in paths} == before


def test_images_without_a_usable_box_are_skipped_and_reported(build, tmp_path: Path) -> None:
    build.stanford_dogs(tmp_path)
    (tmp_path / "Annotation" / "n02085620-Chihuahua" / "n02085620_2").write_text("<annotation><object>")
    (tmp_path / "Annotation" / "n02085782-Japanese_spaniel" / "n02085782_4").unlink()
    loaded = load_dataset_with_report("stanford_dogs", tmp_path, k_shot=1, stanford_dogs=StanfordDogsOptions(crop=True))
    reasons = {Path(s.path).name: s.reason for s in loaded.report.skipped}
    assert set(reasons) == {"n02085620_2.jpg", "n02085782_4.jpg"}
    assert "ParseError" in reasons["n02085620_2.jpg"] and "missing" in reasons["n02085782_4.jpg"]
    assert len(loaded.splits.test) == 5 and (tmp_path / "Images-cropped").is_dir()


@pytest.mark.parametrize(
    ("breakage", "needle"),
    [
        ("no_lists", "lists"),
        ("no_images", "Images"),
        ("garbage_list", "train_list.mat"),
        ("list_without_files", "file_list"),
        ("crop_without_annotations", "Annotation"),
    ],
)
def test_broken_layout_is_a_data_error_naming_the_path(build, tmp_path: Path, breakage: str, needle: str) -> None:
    build.stanford_dogs(tmp_path)
    options = StanfordDogsOptions(crop=breakage == "crop_without_annotations")
    if breakage == "no_lists":
        for f in (tmp_path / "lists").iterdir():
            f.unlink()
        (tmp_path / "lists").rmdir()
    elif breakage == "no_images":
        (tmp_path / "Images").rename(tmp_path / "Pictures")
    elif breakage == "garbage_list":
        (tmp_path / "lists" / "train_list.mat").write_bytes(b"not a mat file")
    elif breakage == "list_without_files":
        from scipy.io import savemat

        savemat(tmp_path / "lists" / "train_list.mat", {"labels": np.array([[1]])})
    else:
        (tmp_path / "Annotation").rename(tmp_path / "Boxes")
    with pytest.raises(DataError) as info:
        load_dataset("stanford_dogs", tmp_path, stanford_dogs=options)
    message = str(info.value)
    assert "stanford_dogs" in message and needle in message and str(tmp_path) in message


def test_cli_eval_end_to_end_with_crops_and_a_subset(build, tmp_path: Path) -> None:
    build.stanford_dogs(tmp_path / "dogs")
    backbone = write_model(tmp_path / "model")
    common = ["-d", "stanford_dogs", "--backbone", backbone, "--set", "data.k_shot=2", "--set", "backbone.device=cpu",
              "--set", f"backbone.embedding_cache={tmp_path / 'emb.sqlite'}"]  # fmt: skip
    res = runner.invoke(app, ["eval", "--root", str(tmp_path / "nowhere"), *common])
    assert res.exit_code == 2 and "nowhere" in res.output and "stanford_dogs" in res.output
    scored = tmp_path / "eval.json"
    res = runner.invoke(app, [
        "eval", "--root", str(tmp_path / "dogs"), *common, "--set", "data.stanford_dogs.crop=true",
        "--set", "data.stanford_dogs.breeds=[Chihuahua, Shih-Tzu]", "--seeds", "0,1", "--out", str(scored),
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    table = json.loads(scored.read_text())
    assert table["dataset"] == "stanford_dogs" and {"names", "templates", "waffle"} <= set(table["methods"])
    for method in table["methods"].values():
        assert len(method["per_seed"]) == 2 and all(0 <= v <= 100 for v in method["per_seed"])
    crops = sorted(p.parent.name for p in (tmp_path / "dogs" / "Images-cropped").rglob("*.jpg"))
    assert set(crops) == {"n02085620-Chihuahua", "n02086240-Shih-Tzu"} and len(crops) == 10
