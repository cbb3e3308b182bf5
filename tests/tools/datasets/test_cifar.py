"""CIFAR: torchvision unpickles miniature batches; pixels land once, exactly, in a PNG cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visfeed.errors import DataError
from visfeed.tools.datasets import load_dataset, load_dataset_with_report
from visfeed.tools.datasets.cifar import materialize


@pytest.mark.parametrize(
    ("name", "readable", "test_file"),
    [
        ("cifar10", ["airplane", "automobile", "bird"], "test_batch"),
        ("cifar100", ["apple", "aquarium fish", "maple tree"], "test"),
    ],
)
def test_cifar_png_cache_roundtrips_pixels(
    build, tmp_path: Path, name: str, readable: list[str], test_file: str
) -> None:
    written, _ = build.cifar(tmp_path, name)
    loaded = load_dataset_with_report(name, tmp_path, k_shot=2, seed=0)
    splits = loaded.splits
    assert splits.classnames == readable
    assert len(splits.test) == 6
    assert len(splits.feedback) == 6  # 2 shots x 3 classes
    cache = next(tmp_path.glob("*-png"))
    # test image i is <cache>/test/<label>/<i>.png and holds the exact pixels of row i of the batch
    expected = written[test_file].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    for path, label in zip(splits.test.paths, splits.test.labels, strict=True):
        p = Path(path)
        assert p.parent.parent == cache / "test" and int(p.parent.name) == label
        assert np.array_equal(np.asarray(Image.open(p)), expected[int(p.stem)])
    assert not list(cache.glob(".*tmp-*"))  # no half-written folders left behind


def test_cache_is_reused_not_rewritten(build, tmp_path: Path) -> None:
    build.cifar(tmp_path, "cifar10")
    first = load_dataset("cifar10", tmp_path, k_shot=1)
    marker = tmp_path / "cifar-10-batches-py-png" / "train" / ".complete"
    stamp = marker.stat().st_mtime_ns
    again = load_dataset("cifar10", tmp_path, k_shot=1)
    assert again == first
    assert marker.stat().st_mtime_ns == stamp


def test_incomplete_cache_is_rebuilt(tmp_path: Path) -> None:
    data = np.zeros((3, 32, 32, 3), dtype=np.uint8)
    folder = tmp_path / "cache" / "train"
    folder.mkdir(parents=True)
    (folder / "000").mkdir()  # a crashed run's leftovers, without the .complete marker
    paths = materialize(data, [0, 1, 1], folder)
    assert all(Path(p).is_file() for p in paths)
    assert (folder / ".complete").is_file()


def test_cache_dir_can_be_elsewhere(build, tmp_path: Path) -> None:
    build.cifar(tmp_path / "data", "cifar100")
    splits = load_dataset("cifar100", tmp_path / "data", k_shot=1, cache_dir=tmp_path / "png")
    assert all(p.startswith(str(tmp_path / "png")) for p in splits.test.paths)


def test_truncated_batch_is_a_data_error(build, tmp_path: Path) -> None:
    build.cifar(tmp_path, "cifar10")
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(DataError, match="cifar10.*data_batch|cifar10.*could not read"):
        load_dataset("cifar10", tmp_path)
