"""ImageFolder trees and CSV / JSONL manifests."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from visfeed.errors import DataError
from visfeed.tools.datasets import load_dataset, load_dataset_with_report


def labelled(splits) -> dict[str, str]:
    out = {}
    for split in (splits.feedback, splits.validation, splits.test):
        for p, label in zip(split.paths if split else [], split.labels if split else [], strict=True):
            out[p] = splits.classnames[label]
    return out


def test_flat_tree_with_readable_and_unicode_names(build, tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", "crème_brûlée")  # as macOS stores it
    truth = build.imagefolder(tmp_path, {"golden_retriever": 5, nfd: 5, "猫": 5})
    (tmp_path / "README.txt").write_text("ignored")
    (tmp_path / "猫" / "notes.txt").write_text("ignored")
    loaded = load_dataset_with_report("imagefolder", tmp_path, k_shot=2, seed=0)
    names = loaded.splits.classnames
    assert names == ["crème brûlée", "golden retriever", "猫"]
    assert unicodedata.is_normalized("NFC", names[0])
    got = labelled(loaded.splits)
    readable = {"golden_retriever": "golden retriever", nfd: "crème brûlée", "猫": "猫"}
    assert len(got) == 15 and all(got[p] == readable[truth[p]] for p in got)
    assert loaded.report.n_ignored_files == 2
    assert loaded.report.sizes == {"feedback": 6, "validation": 3, "test": 6}  # 5 = 2 test + 2 shots + 1 val


def test_split_tree(build, tmp_path: Path) -> None:
    build.imagefolder(tmp_path / "train", {"cat": 4, "dog": 4})
    build.imagefolder(tmp_path / "val", {"cat": 2, "dog": 2}, seed=50)
    build.imagefolder(tmp_path / "test", {"cat": 3, "dog": 3}, seed=90)
    loaded = load_dataset_with_report("imagefolder", tmp_path, k_shot=2)
    s = loaded.splits
    assert all("/train/" in p for p in s.feedback.paths)
    assert s.validation is not None and all("/val/" in p for p in s.validation.paths)
    assert len(s.test) == 6 and all("/test/" in p for p in s.test.paths)


def test_train_val_tree_uses_val_as_test(build, tmp_path: Path) -> None:
    build.imagefolder(tmp_path / "train", {"cat": 4, "dog": 4})
    build.imagefolder(tmp_path / "val", {"cat": 2, "dog": 2}, seed=50)
    loaded = load_dataset_with_report("imagefolder", tmp_path, k_shot=1)
    assert all("/val/" in p for p in loaded.splits.test.paths) and len(loaded.splits.test) == 4
    assert "val/" in loaded.report.origin["test"]
    assert loaded.splits.validation is not None
    assert all("/train/" in p for p in loaded.splits.validation.paths)


def test_empty_class_folder_is_named(build, tmp_path: Path) -> None:
    build.imagefolder(tmp_path, {"cat": 3})
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "x.txt").write_text("no images")
    with pytest.raises(DataError, match=r"class folder .*dog has no image files"):
        load_dataset("imagefolder", tmp_path)


def test_missing_or_empty_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="(?s)no data found at .*absent.*Expected layout"):
        load_dataset("imagefolder", tmp_path / "absent")
    with pytest.raises(DataError, match="no class folders"):
        load_dataset("imagefolder", tmp_path)


def test_names_that_collide_after_cleaning(build, tmp_path: Path) -> None:
    build.imagefolder(tmp_path, {"sea_lion": 2, "sea lion": 2})
    with pytest.raises(DataError, match="both read as 'sea lion'.*classnames_file"):
        load_dataset("imagefolder", tmp_path)


def write_manifest(tmp_path: Path, kind: str, rows: list[dict]) -> Path:
    if kind == "csv":
        keys = list(rows[0])
        text = ",".join(keys) + "\n" + "".join(",".join(str(r[k]) for k in keys) + "\n" for r in rows)
        path = tmp_path / "labels.csv"
        path.write_text(text)
    else:
        path = tmp_path / "labels.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    return path


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_manifest_with_splits_and_relative_paths(build, tmp_path: Path, kind: str) -> None:
    rows = []
    for c in ("zebra", "okapi"):
        for i, split in enumerate(["train", "train", "train", "val", "test", "test"]):
            build.image(tmp_path / "imgs" / f"{c}{i}.jpg", i + len(c))
            rows.append({"path": f"imgs/{c}{i}.jpg", "label": c, "split": split})
    loaded = load_dataset_with_report("manifest", write_manifest(tmp_path, kind, rows), k_shot=2, seed=1)
    s = loaded.splits
    assert s.classnames == ["okapi", "zebra"]
    assert (len(s.feedback), len(s.validation or []), len(s.test)) == (4, 2, 4)
    assert all(Path(p).is_absolute() and Path(p).parent == tmp_path / "imgs" for p in s.test.paths)
    for p, label in zip(s.test.paths, s.test.labels, strict=True):
        assert Path(p).name.startswith(s.classnames[label])


def test_manifest_integer_labels_and_names_file(build, tmp_path: Path) -> None:
    rows = [{"path": build.image(tmp_path / f"{i}.png", i), "label": i % 2} for i in range(8)]
    manifest = write_manifest(tmp_path, "jsonl", rows)
    names = tmp_path / "names.txt"
    names.write_text("even number\nodd number\n")
    loaded = load_dataset_with_report("manifest", manifest, k_shot=1, classnames_file=names)
    assert loaded.splits.classnames == ["even number", "odd number"]
    assert loaded.report.classnames_source == f"file:{names}"
    assert "held out" in loaded.report.origin["test"]


def test_manifest_missing_files_are_skipped_and_counted(build, tmp_path: Path) -> None:
    rows = [{"path": build.image(tmp_path / f"{i}.png", i), "label": "ab"[i % 2]} for i in range(6)]
    rows.append({"path": "gone.png", "label": "a"})
    loaded = load_dataset_with_report("manifest", write_manifest(tmp_path, "csv", rows), k_shot=1)
    assert loaded.report.n_skipped == 1 and "missing" in loaded.report.skipped[0].reason
    assert loaded.report.skipped[0].path == str(tmp_path / "gone.png")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"path": "a.png", "label": "x", "split": "train"}, {"path": "b.png", "label": "x", "split": ""}],
            "give every row a split",
        ),
        (
            [{"path": "a.png", "label": "x", "split": "train"}, {"path": "a.png", "label": "y", "split": "train"}],
            "different label or split",
        ),
        ([{"path": "a.png", "label": "x", "split": "holdout"}], "not train, val or test"),
        ([{"path": "a.png", "label": ""}], "both path and label are required"),
    ],
)
def test_manifest_errors_name_the_line(build, tmp_path: Path, rows, message: str) -> None:
    build.image(tmp_path / "a.png")
    build.image(tmp_path / "b.png", 1)
    with pytest.raises(DataError, match=message):
        load_dataset("manifest", write_manifest(tmp_path, "jsonl", rows))


def test_manifest_wrong_suffix_or_header(tmp_path: Path) -> None:
    bad = tmp_path / "labels.txt"
    bad.write_text("a.png x\n")
    with pytest.raises(DataError, match=r"\.csv, \.tsv, \.jsonl"):
        load_dataset("manifest", bad)
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("file,class\na.png,x\n")
    with pytest.raises(DataError, match="header row with columns path,label"):
        load_dataset("manifest", csv_file)
