"""Names, the catalog, the docs table, and --download as the only way anything is fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from visfeed.errors import ConfigError, DataError
from visfeed.tools.datasets import canonical_name, list_datasets, load_dataset

BUILTINS = [
    "flowers102",
    "dtd",
    "eurosat",
    "food101",
    "oxford_pets",
    "caltech101",
    "sun397",
    "stanford_cars",
    "fgvc_aircraft",
    "cifar10",
    "cifar100",
    "imagenet",
    "stanford_dogs",
]
DOCS = Path(__file__).resolve().parents[3] / "docs" / "datasets.md"


def test_catalog_lists_every_name_with_a_layout() -> None:
    infos = {info.name: info for info in list_datasets()}
    assert set(infos) == {"world", *BUILTINS, "imagefolder", "manifest", "coop:<dataset>"}
    assert all("ROOT" in info.layout and info.splits and info.classnames for info in infos.values())


def test_docs_table_covers_every_dataset() -> None:
    text = DOCS.read_text("utf-8")
    for info in list_datasets():
        assert f"`{info.name}`" in text, info.name


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Flowers102", "flowers102"),
        ("pets", "oxford_pets"),
        ("CIFAR-10", "cifar10"),
        ("fgvc-aircraft", "fgvc_aircraft"),
        ("coop:EuroSAT", "coop:eurosat"),
        ("coop:flowers", "coop:flowers102"),
        ("coop", "coop"),
    ],
)
def test_canonical_names(given: str, expected: str) -> None:
    assert canonical_name(given) == expected


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'; known: world, flowers102"):
        canonical_name("mnist")


def test_root_is_required_without_download() -> None:
    with pytest.raises(ConfigError, match="needs --root.*--download"):
        load_dataset("dtd", None)
    with pytest.raises(ConfigError, match="needs --root"):
        load_dataset("imagefolder", None, download=True)


def test_download_reaches_torchvision_only_when_asked(tmp_path: Path, monkeypatch) -> None:
    import torchvision.datasets.dtd as tv_dtd

    calls: list[str] = []

    def offline(url: str, *args, **kwargs) -> None:  # the far side of the network
        calls.append(url)
        raise RuntimeError("network is off in tests")

    monkeypatch.setattr(tv_dtd, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="--download"):
        load_dataset("dtd", tmp_path)
    assert calls == []
    with pytest.raises(DataError, match="network is off"):
        load_dataset("dtd", tmp_path, download=True)
    assert calls == [tv_dtd.DTD._URL]


def test_stanford_cars_cannot_be_downloaded(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="(?s)cannot download it"):
        load_dataset("stanford_cars", tmp_path, download=True)
