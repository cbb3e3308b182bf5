"""Adapters over torchvision's dataset classes: their own parsing code reads the files, we keep paths+labels.

Each adapter checks that the dataset is on disk *before* it builds the torchvision object (some of them
create folders or reach for the network otherwise), passes ``download`` through only when the user asked,
and reads the private lists torchvision builds (``_image_files``/``_labels``, ``samples``...), checked
against torchvision 0.29. torchvision's md5 checks of the metadata files are relaxed to presence checks
(Flowers102 here, CIFAR in cifar.py): they reject re-packed copies and the miniature fixtures the tests write; archives fetched
with ``download=True`` are still md5-checked by torchvision.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from visfeed.errors import DataError
from visfeed.tools.datasets.catalog import CATALOG, missing_data
from visfeed.tools.datasets.folder import scan_tree
from visfeed.tools.datasets.names import curated_dict, curated_list, derive, names_by_id
from visfeed.tools.datasets.protocol import Pairs, RawDataset

T = TypeVar("T")


def resolve_root(root: Path, marker: str) -> Path | None:
    """The folder under which ``marker`` exists: ``root`` or, if the user pointed inside it, an ancestor."""
    candidate = root
    for _ in range(len(Path(marker).parts)):
        if (candidate / marker).exists():
            return candidate
        candidate = candidate.parent
    return None


def _prepare(name: str, root: Path, marker: str, download: bool) -> Path:
    if download and CATALOG[name].downloadable:
        root.mkdir(parents=True, exist_ok=True)
        return root
    found = resolve_root(root, marker)
    if found is None:
        raise missing_data(name, root / marker, downloadable=CATALOG[name].downloadable)
    return found


def construct(name: str, looked_at: Path, factory: Callable[[], T]) -> T:
    """Run a torchvision constructor; turn its errors into a DataError naming the dataset and path."""
    try:
        return factory()
    except ImportError as exc:
        raise DataError(f"dataset {name!r} needs scipy to read its .mat files: pip install scipy ({exc})") from exc
    except (RuntimeError, OSError, ValueError, KeyError, IndexError, EOFError, pickle.UnpicklingError) as exc:
        if "scipy" in str(exc).lower():
            raise DataError(f"dataset {name!r} needs scipy to read its .mat files: pip install scipy") from exc
        layout = CATALOG[name].layout
        raise DataError(
            f"dataset {name!r}: torchvision could not read {looked_at}: {type(exc).__name__}: {exc}\n"
            f"Expected layout (ROOT = --root):\n{layout}"
        ) from exc


def _pairs(files: list[Any], labels: list[Any]) -> Pairs:
    return [(str(Path(f).absolute()), int(label)) for f, label in zip(files, labels, strict=True)]


def _by_parent(files: list[Any], index: dict[str, int]) -> Pairs:
    return [(str(Path(f).absolute()), index[Path(f).parent.name]) for f in files]


def _raw(name: str, root: Path, raw_ids: list[str], names: list[str], source: str, **splits: Any) -> RawDataset:
    return RawDataset(name=name, root=str(root), raw_ids=raw_ids, classnames=names, classnames_source=source, **splits)


def flowers102(root: Path, download: bool) -> RawDataset:
    """Oxford Flowers-102: official train / val / test from setid.mat; CLIP's names."""
    from torchvision.datasets import Flowers102

    class _Flowers102(Flowers102):
        def _check_integrity(self) -> bool:
            files = (self._file_dict["label"][0], self._file_dict["setid"][0])
            return bool(self._images_folder.is_dir()) and all((self._base_folder / f).is_file() for f in files)

    base = _prepare("flowers102", root, "flowers-102/jpg", download)
    splits = {}
    for split in ("train", "val", "test"):
        ds = construct("flowers102", base / "flowers-102", partial(_Flowers102, base, split=split, download=download))
        splits[split] = _pairs(ds._image_files, ds._labels)
    n = 1 + max(label for pairs in splits.values() for _, label in pairs)
    curated = curated_list("flowers102")
    names = [curated[i] if i < len(curated) else f"flower {i + 1}" for i in range(n)]
    return _raw("flowers102", base, [str(i + 1) for i in range(n)], names, "curated", **splits)


def dtd(root: Path, download: bool, partition: int = 1) -> RawDataset:
    """Describable Textures, partition 1 (train1 / val1 / test1)."""
    from torchvision.datasets import DTD

    base = _prepare("dtd", root, "dtd/dtd/labels", download)
    files = {
        s: construct(
            "dtd", base / "dtd" / "dtd", partial(DTD, base, split=s, partition=partition, download=download)
        )._image_files
        for s in ("train", "val", "test")
    }
    raw_ids = sorted({Path(f).parent.name for fs in files.values() for f in fs})
    index = {c: i for i, c in enumerate(raw_ids)}
    splits = {s: _by_parent(fs, index) for s, fs in files.items()}
    return _raw("dtd", base, raw_ids, [derive(c) for c in raw_ids], "derived", **splits)


def eurosat(root: Path, download: bool) -> RawDataset:
    """EuroSAT RGB; no official split (held out by the protocol); CLIP's names."""
    from torchvision.datasets import EuroSAT

    base = _prepare("eurosat", root, "eurosat/2750", download)
    ds = construct("eurosat", base / "eurosat" / "2750", partial(EuroSAT, base, download=download))
    curated = curated_dict("eurosat")
    names = names_by_id(list(ds.classes), curated, "eurosat")
    return _raw(
        "eurosat",
        base,
        list(ds.classes),
        names,
        "curated",
        train=[(str(Path(p).absolute()), int(t)) for p, t in ds.samples],
    )


def food101(root: Path, download: bool) -> RawDataset:
    """Food-101: official train / test (meta/*.json); names from the class keys."""
    from torchvision.datasets import Food101

    base = _prepare("food101", root, "food-101/meta", download)
    files = {
        s: construct("food101", base / "food-101", partial(Food101, base, split=s, download=download))._image_files
        for s in ("train", "test")
    }
    raw_ids = sorted({Path(f).parent.name for fs in files.values() for f in fs})
    index = {c: i for i, c in enumerate(raw_ids)}
    return _raw(
        "food101",
        base,
        raw_ids,
        [derive(c) for c in raw_ids],
        "derived",
        train=_by_parent(files["train"], index),
        test=_by_parent(files["test"], index),
    )


def oxford_pets(root: Path, download: bool) -> RawDataset:
    """Oxford-IIIT Pet: official trainval / test; names from the file-name breeds, as CLIP's list has them."""
    from torchvision.datasets import OxfordIIITPet

    base = _prepare("oxford_pets", root, "oxford-iiit-pet/annotations", download)
    splits: dict[str, Pairs] = {}
    raw: dict[int, str] = {}
    for split, key in (("trainval", "train"), ("test", "test")):
        ds = construct(
            "oxford_pets", base / "oxford-iiit-pet", partial(OxfordIIITPet, base, split=split, download=download)
        )
        splits[key] = _pairs(ds._images, ds._labels)
        for path, label in splits[key]:
            raw.setdefault(label, Path(path).stem.rsplit("_", 1)[0])
    n = 1 + max(raw)
    raw_ids = [raw.get(i, str(i + 1)) for i in range(n)]
    # CLIP's list is exactly these breeds with '_' -> ' ' ("Abyssinian", "american bulldog")
    return _raw("oxford_pets", base, raw_ids, [derive(r) for r in raw_ids], "derived", **splits)


def caltech101(root: Path, download: bool) -> RawDataset:
    """Caltech-101 (101 classes, BACKGROUND_Google dropped as torchvision does); CLIP's names."""
    from torchvision.datasets import Caltech101

    base = _prepare("caltech101", root, "caltech101/101_ObjectCategories", download)
    ds = construct("caltech101", base / "caltech101", partial(Caltech101, base, download=download))
    folder = Path(ds.root) / "101_ObjectCategories"
    # torchvision numbers a category's files image_0001..image_<count>; paths are rebuilt the same way
    train = [
        (str((folder / ds.categories[y] / f"image_{i:04d}.jpg").absolute()), int(y))
        for y, i in zip(ds.y, ds.index, strict=True)
    ]
    curated = curated_dict("caltech101")
    names = names_by_id(list(ds.categories), curated, "caltech101")
    return _raw("caltech101", base, list(ds.categories), names, "curated", train=train)


def _sun_partition(base: Path, data_dir: Path, stem: str) -> list[str] | None:
    """Relative image paths ("a/abbey/sun_x.jpg") of a SUN397 partition file, if one is present."""
    for folder in (base, base / "Partitions", data_dir, data_dir / "Partitions"):
        file = folder / f"{stem}.txt"
        if file.is_file():
            return [line.strip().lstrip("/") for line in file.read_text("utf-8").splitlines() if line.strip()]
    return None


def sun397(root: Path, download: bool) -> RawDataset:
    """SUN397: Training_01 / Testing_01 when the partition files are present, else held out."""
    from torchvision.datasets import SUN397

    base = _prepare("sun397", root, "SUN397/ClassName.txt", download)
    data_dir = (base / "SUN397").absolute()
    ds = construct("sun397", data_dir, partial(SUN397, base, download=download))
    raw_ids = list(ds.classes)
    names = [derive(c) for c in raw_ids]
    train_rel, test_rel = _sun_partition(base, data_dir, "Training_01"), _sun_partition(base, data_dir, "Testing_01")
    if train_rel is None or test_rel is None:
        return _raw("sun397", base, raw_ids, names, "derived", train=_pairs(ds._image_files, ds._labels))
    index = {c: i for i, c in enumerate(raw_ids)}

    def labelled(rel_paths: list[str]) -> Pairs:
        out: Pairs = []
        for rel in rel_paths:
            category = "/".join(Path(rel).parts[1:-1])  # same rule as torchvision: drop the letter folder
            if category not in index:
                raise DataError(f"sun397: partition entry {rel!r} is not under a category of ClassName.txt")
            out.append((str(data_dir / rel), index[category]))
        return out

    return _raw(
        "sun397",
        base,
        raw_ids,
        names,
        "derived",
        train=labelled(train_rel),
        test=labelled(test_rel),
        origin={"train": "Training_01.txt partition", "test": "Testing_01.txt partition"},
    )


def stanford_cars(root: Path, download: bool) -> RawDataset:
    """Stanford Cars: official train / test from the devkit .mat files (needs scipy)."""
    from torchvision.datasets import StanfordCars

    base = _prepare("stanford_cars", root, "stanford_cars/devkit", False)
    splits = {}
    classes: list[str] = []
    for split in ("train", "test"):
        ds = construct("stanford_cars", base / "stanford_cars", partial(StanfordCars, base, split=split))
        splits[split] = [(str(Path(p).absolute()), int(t)) for p, t in ds._samples]
        classes = [str(c) for c in ds.classes]
    return _raw("stanford_cars", base, classes, [c.strip() for c in classes], "derived", **splits)


def fgvc_aircraft(root: Path, download: bool) -> RawDataset:
    """FGVC-Aircraft variants: official train / val / test."""
    from torchvision.datasets import FGVCAircraft

    base = _prepare("fgvc_aircraft", root, "fgvc-aircraft-2013b/data", download)
    splits = {}
    classes: list[str] = []
    for split in ("train", "val", "test"):
        ds = construct(
            "fgvc_aircraft",
            base / "fgvc-aircraft-2013b",
            partial(FGVCAircraft, base, split=split, annotation_level="variant", download=download),
        )
        splits[split] = _pairs(ds._image_files, ds._labels)
        classes = list(ds.classes)
    return _raw("fgvc_aircraft", base, classes, [c.strip() for c in classes], "derived", **splits)


def _imagenet_dirs(root: Path) -> tuple[Path, Path] | None:
    for folder in (root, root / "images", root / "imagenet" / "images"):
        if (folder / "train").is_dir() and (folder / "val").is_dir():
            return folder / "train", folder / "val"
    return None


def imagenet(root: Path, download: bool) -> RawDataset:
    """ImageNet-1k from ImageFolder trees (train -> shots, val -> test); CLIP's names by WordNet id."""
    dirs = _imagenet_dirs(root)
    if dirs is None:
        raise missing_data("imagenet", root / "train", downloadable=False)
    train_dir, val_dir = dirs
    if not any(e.is_dir() for e in val_dir.iterdir()):
        raise DataError(
            f"dataset 'imagenet': {val_dir} has no class folders; sort the validation images into "
            "<wnid>/ folders (torchvision.datasets.ImageNet(root, split='val') does this offline from "
            "ILSVRC2012_devkit_t12.tar.gz and ILSVRC2012_img_val.tar)"
        )
    train_tree, n1 = scan_tree(train_dir, "imagenet")
    val_tree, n2 = scan_tree(val_dir, "imagenet")
    raw_ids = sorted(set(train_tree) | set(val_tree))
    index = {c: i for i, c in enumerate(raw_ids)}
    curated = curated_dict("imagenet")
    extra: dict[str, str] = {}
    for txt in (train_dir.parent.parent / "classnames.txt", train_dir.parent / "classnames.txt"):
        if txt.is_file():  # CoOp's classnames.txt ("<wnid> <name>"), used for wnids CLIP's list lacks
            for line in txt.read_text("utf-8").splitlines():
                wnid, _, name = line.strip().partition(" ")
                if wnid and name:
                    extra[wnid] = name
    names = names_by_id(raw_ids, {**extra, **curated}, "imagenet")
    return RawDataset(
        name="imagenet",
        root=str(root),
        raw_ids=raw_ids,
        classnames=names,
        classnames_source="curated",
        train=[(p, index[c]) for c, files in train_tree.items() for p in files],
        test=[(p, index[c]) for c, files in val_tree.items() for p in files],
        origin={"test": "the val/ folder (ImageNet's test labels are not public)"},
        n_ignored_files=n1 + n2,
    )
