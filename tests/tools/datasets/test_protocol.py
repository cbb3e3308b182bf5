"""The few-shot protocol: determinism, nesting, disjoint splits, bad images, short classes."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visfeed.errors import ConfigError, DataError
from visfeed.tools.datasets._files import check_image
from visfeed.tools.datasets.protocol import RawDataset, holdout, make_splits


def raw_dataset(
    build, tmp_path: Path, per_class: int = 20, n_classes: int = 3, with_test: bool = False, with_val: bool = False
) -> RawDataset:
    train, val, test = [], [], []
    for c in range(n_classes):
        for i in range(per_class):
            train.append((build.image(tmp_path / f"c{c}" / f"train{i}.png", 1000 * c + i), c))
        for i in range(3):
            if with_test:
                test.append((build.image(tmp_path / f"c{c}" / f"test{i}.png", 5000 + 10 * c + i), c))
            if with_val:
                val.append((build.image(tmp_path / f"c{c}" / f"val{i}.png", 7000 + 10 * c + i), c))
    names = [f"class {c}" for c in range(n_classes)]
    return RawDataset(
        name="toy",
        root=str(tmp_path),
        raw_ids=names,
        classnames=names,
        classnames_source="test",
        train=train,
        val=val if with_val else None,
        test=test if with_test else None,
    )


def shots_by_class(splits) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for p, label in zip(splits.feedback.paths, splits.feedback.labels, strict=True):
        out.setdefault(label, []).append(p)
    return out


def test_same_seed_same_images_other_seed_other_images(build, tmp_path: Path) -> None:
    raw = raw_dataset(build, tmp_path)
    a, _ = make_splits(raw, k_shot=4, seed=1)
    b, _ = make_splits(raw, k_shot=4, seed=1)
    c, _ = make_splits(raw, k_shot=4, seed=2)
    assert a == b
    assert a.feedback.paths != c.feedback.paths
    assert a.test == c.test  # the held-out test split does not move with the seed


@pytest.mark.parametrize("seed", [0, 5])
def test_shots_are_nested_and_splits_disjoint(build, tmp_path: Path, seed: int) -> None:
    raw = raw_dataset(build, tmp_path, per_class=30)  # 21 train after the 30% holdout: room for 8 + 8
    previous: dict[int, list[str]] = {}
    vals = []
    for k in (1, 2, 4, 8):
        splits, report = make_splits(raw, k_shot=k, seed=seed)
        shots = shots_by_class(splits)
        assert all(len(v) == k for v in shots.values()) and len(shots) == 3
        for label, paths in previous.items():
            assert set(paths) <= set(shots[label])
        previous = shots
        assert splits.validation is not None
        fb, va, te = set(splits.feedback.paths), set(splits.validation.paths), set(splits.test.paths)
        assert not (fb & va) and not (fb & te) and not (va & te)
        assert len(va) == 3 * k  # carved: k per class by default
        vals.append(va)
        assert report.sizes == {"feedback": 3 * k, "validation": 3 * k, "test": len(te)}
    # validation comes from the other end of the permutation: small-k sets sit inside larger-k ones
    assert vals[0] <= vals[1] <= vals[2]


def test_holdout_is_fixed_and_covers_each_class(tmp_path: Path) -> None:
    pairs = [(f"/x/{c}/{i}.png", c) for c in range(2) for i in range(10)] + [("/x/2/0.png", 2)]
    train, test = holdout(pairs, 3)
    assert holdout(list(reversed(pairs)), 3) == (train, test)  # input order does not matter
    assert sum(1 for _, c in test if c == 0) == 3 and sum(1 for _, c in test if c == 2) == 0
    assert not {p for p, _ in train} & {p for p, _ in test}


def test_native_val_is_used_whole_or_subsampled(build, tmp_path: Path) -> None:
    raw = raw_dataset(build, tmp_path, per_class=5, with_val=True, with_test=True)
    whole, report = make_splits(raw, k_shot=2, seed=0)
    assert whole.validation is not None and len(whole.validation) == 9
    assert report.origin["validation"] == "the dataset's val split, all of it"
    sub, _ = make_splits(raw, k_shot=2, seed=0, n_val_per_class=2)
    assert sub.validation is not None and len(sub.validation) == 6
    assert set(sub.validation.paths) <= set(whole.validation.paths)
    assert sub == make_splits(raw, k_shot=2, seed=0, n_val_per_class=2)[0]


def test_short_class_takes_what_there_is_and_warns(build, tmp_path: Path, caplog) -> None:
    raw = raw_dataset(build, tmp_path, per_class=3, with_test=True)
    raw.train = [pair for pair in raw.train if pair[1] != 1 or pair[0].endswith("train0.png")]
    with caplog.at_level(logging.WARNING):
        splits, report = make_splits(raw, k_shot=2, seed=0)
    assert report.short_classes == {"class 1": 1}
    assert shots_by_class(splits)[1] == [raw.train[3][0]]
    assert "fewer than 2" in caplog.text


def truncated_jpeg(path: Path) -> str:
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, format="JPEG")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return str(path)


def test_check_image_depths(tmp_path: Path) -> None:
    bad = truncated_jpeg(tmp_path / "cut.jpg")
    assert check_image(bad, "header") is None  # the header is intact
    assert "unreadable" in (check_image(bad, "decode") or "")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    assert "unreadable" in (check_image(str(text), "header") or "")
    assert check_image(str(tmp_path / "absent.png"), "decode") == "missing"


def test_bad_shot_is_skipped_counted_and_replaced(build, tmp_path: Path) -> None:
    raw = raw_dataset(build, tmp_path, per_class=6, with_test=True)
    clean, _ = make_splits(raw, k_shot=2, seed=0)
    victim = clean.feedback.paths[0]
    truncated_jpeg(Path(victim))  # overwrite a chosen shot with a truncated JPEG (still named .png)
    splits, report = make_splits(raw, k_shot=2, seed=0)
    assert victim not in splits.feedback.paths
    assert len(shots_by_class(splits)[0]) == 2
    assert report.n_skipped == 1 and report.skipped[0].path == victim
    assert "unreadable" in report.skipped[0].reason


def test_non_image_test_file_is_dropped(build, tmp_path: Path) -> None:
    raw = raw_dataset(build, tmp_path, per_class=3, with_test=True)
    Path(raw.test[0][0]).write_bytes(b"")
    splits, report = make_splits(raw, k_shot=1, seed=0)
    assert raw.test[0][0] not in splits.test.paths and report.n_skipped == 1


def test_class_without_usable_images_is_an_error(build, tmp_path: Path) -> None:
    raw = raw_dataset(build, tmp_path, per_class=2, with_test=True)
    for path, label in raw.train:
        if label == 2:
            Path(path).write_text("garbage")
    with pytest.raises(DataError, match="'class 2'.*no usable training image"):
        make_splits(raw, k_shot=1, seed=0)


def test_overlapping_splits_are_rejected(build, tmp_path: Path) -> None:
    raw = raw_dataset(build, tmp_path, per_class=2, with_test=True)
    raw.test = [*raw.test, raw.train[0]]
    with pytest.raises(DataError, match="both the train and the test split"):
        make_splits(raw, k_shot=1, seed=0)


@pytest.mark.parametrize(
    "kwargs", [{"k_shot": 0}, {"k_shot": 1, "n_val_per_class": -1}, {"k_shot": 1, "verify": "sometimes"}]
)
def test_bad_options_are_config_errors(build, tmp_path: Path, kwargs) -> None:
    raw = raw_dataset(build, tmp_path, per_class=2)
    with pytest.raises(ConfigError):
        make_splits(raw, seed=0, **kwargs)


def test_verify_full_decodes_test_images(build, tmp_path: Path) -> None:
    raw = raw_dataset(build, tmp_path, per_class=2, with_test=True)
    truncated_jpeg(Path(raw.test[0][0]))
    fast, _ = make_splits(raw, k_shot=1, seed=0, verify="fast")
    full, report = make_splits(raw, k_shot=1, seed=0, verify="full")
    assert raw.test[0][0] in fast.test.paths  # header is fine
    assert raw.test[0][0] not in full.test.paths and report.n_skipped == 1
