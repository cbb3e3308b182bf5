"""Stanford Dogs (Khosla et al., 2011): 120 breeds from ImageNet's dog synsets, official train / test lists.

Read from the layout the dataset ships in (torchvision has no adapter for it): ``Images/<wnid>-<Breed>/``,
``Annotation/<wnid>-<Breed>/<image stem>`` (PASCAL VOC XML without a suffix) and ``lists/train_list.mat`` /
``lists/test_list.mat`` (``file_list``: image paths relative to ``Images/``). A breed is its folder, so the
lists' ``labels`` column is not needed. Readable names come from the folder: ``n02085782-Japanese_spaniel``
-> ``Japanese spaniel``.

Options (:class:`StanfordDogsOptions`): a subset of breeds, and cropping to the annotated box, as the
seed article's experiment does. A crop is written once as a JPEG whose name carries the box, so a changed
annotation gives a new file and the content-keyed embedding cache never mixes the two; images whose
annotation is missing, unreadable or without a box are skipped and reported like unreadable images.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from visfeed.errors import ConfigError, DataError
from visfeed.fileio import write_atomic
from visfeed.tools.datasets.catalog import missing_data
from visfeed.tools.datasets.names import clean, derive
from visfeed.tools.datasets.protocol import Pairs, RawDataset, SkippedFile
from visfeed.tools.datasets.tv_sources import resolve_root

logger = logging.getLogger(__name__)

NAME = "stanford_dogs"
LISTS = {"train": "lists/train_list.mat", "test": "lists/test_list.mat"}
#: Where crops go when no crop folder is given: beside ``Images/`` (as CIFAR's PNG cache sits beside its batches).
CROP_FOLDER = "Images-cropped"
_WORKERS = 8

Box = tuple[int, int, int, int]


class StanfordDogsOptions(BaseModel):
    """Which breeds to keep and whether to crop to the annotated bounding box."""

    model_config = ConfigDict(frozen=True)

    crop: bool = Field(default=False, description="Crop each image to the union of its annotated dog boxes.")
    breeds: list[str] | None = Field(
        default=None,
        description="Breeds to keep, by readable name ('Japanese spaniel'), folder name or WordNet id, "
        "case-insensitive; None: all 120.",
    )
    crop_dir: Path | None = Field(default=None, description=f"Where crops are written; None: ROOT/{CROP_FOLDER}.")


def breed_name(folder: str) -> str:
    """``n02085782-Japanese_spaniel`` -> ``Japanese spaniel`` (only the first '-' separates the WordNet id)."""
    wnid, sep, rest = folder.partition("-")
    return derive(rest) if sep and wnid.startswith("n") else derive(folder)


def _read_list(path: Path) -> list[str]:
    """Image paths (relative to ``Images/``) of one split list, from its ``file_list`` cell array."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(path)
        cells = mat["file_list"]
        files = [str(np.asarray(cell).ravel()[0]) for cell in np.asarray(cells).ravel()]
    except (MatReadError, OSError, ValueError, KeyError, IndexError, TypeError, NotImplementedError) as exc:
        raise DataError(
            f"dataset {NAME!r}: cannot read the split list {path}: {type(exc).__name__}: {exc}; it must be the "
            "dataset's .mat file with a 'file_list' of image paths relative to Images/"
        ) from exc
    bad = [f for f in files if len(Path(f).parts) != 2]
    if bad:
        raise DataError(f"dataset {NAME!r}: {path} lists {bad[0]!r}, expected '<wnid>-<Breed>/<file>.jpg'")
    return files


def _select(folders: list[str], breeds: list[str] | None) -> list[str]:
    """The breed folders to keep, in sorted order; unknown requested breeds are a usage error."""
    if breeds is None:
        return folders
    keys: dict[str, str] = {}
    for folder in folders:
        for key in (folder, folder.partition("-")[0], breed_name(folder)):
            keys.setdefault(clean(key).casefold(), folder)
    unknown = [b for b in breeds if clean(b).casefold() not in keys]
    if unknown:
        known = ", ".join(breed_name(f) for f in folders[:8])
        raise ConfigError(
            f"dataset {NAME!r}: unknown breed(s) {unknown}; use a readable name, folder name or WordNet id "
            f"(e.g. {known}, ...)"
        )
    chosen = {keys[clean(b).casefold()] for b in breeds}
    return [f for f in folders if f in chosen]


def _box(annotation: Path) -> Box:
    """Union of the annotation's object boxes, as (left, top, right, bottom) pixels."""
    objects = ET.parse(annotation).getroot().findall("object/bndbox")
    if not objects:
        raise ValueError("no <object><bndbox> in the annotation")
    coords = np.array([[int(float(b.findtext(tag, ""))) for tag in ("xmin", "ymin", "xmax", "ymax")] for b in objects])
    return int(coords[:, 0].min()), int(coords[:, 1].min()), int(coords[:, 2].max()), int(coords[:, 3].max())


def _crop_one(image: Path, annotation: Path, out_folder: Path) -> str:
    """Write (once) the crop of ``image`` to its annotated box; return the crop's path."""
    left, top, right, bottom = _box(annotation)
    target = out_folder / image.parent.name / f"{image.stem}_{left}_{top}_{right}_{bottom}.jpg"
    if target.is_file():
        return str(target)
    with Image.open(image) as im:
        width, height = im.size
        box = (max(0, left), max(0, top), min(width, right), min(height, bottom))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"box {left, top, right, bottom} is empty inside the {width}x{height} image")
        crop = im.convert("RGB").crop(box)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, lambda f: crop.save(f, format="JPEG", quality=95))
    return str(target)


def _crop_all(pairs: Pairs, base: Path, out_folder: Path) -> tuple[Pairs, list[SkippedFile]]:
    """Crop every listed image in parallel; images that cannot be cropped are skipped with the reason."""

    def work(item: tuple[str, int]) -> tuple[str, int] | SkippedFile:
        path, label = item
        image = Path(path)
        annotation = base / "Annotation" / image.parent.name / image.stem
        try:
            return _crop_one(image, annotation, out_folder), label
        except FileNotFoundError as exc:
            return SkippedFile(path=path, reason=f"not cropped: missing {exc.filename}")
        except PermissionError as exc:
            raise DataError(
                f"dataset {NAME!r}: cannot write crops under {out_folder}: {exc}; set a writable crop folder"
            ) from exc
        except (OSError, ValueError, SyntaxError, ET.ParseError) as exc:
            return SkippedFile(path=path, reason=f"not cropped: {type(exc).__name__}: {exc} ({annotation})")

    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        results = list(pool.map(work, pairs))
    kept = [r for r in results if isinstance(r, tuple)]
    skipped = [r for r in results if isinstance(r, SkippedFile)]
    return kept, skipped


def load_stanford_dogs(root: Path, options: StanfordDogsOptions | None = None) -> RawDataset:
    """Stanford Dogs from ROOT (the folder holding Images/, Annotation/ and lists/): official train / test."""
    options = options or StanfordDogsOptions()
    base = resolve_root(root, LISTS["train"])  # ROOT, or its parent when the user pointed at ROOT/Images
    if base is None or not (base / "Images").is_dir():
        raise missing_data(NAME, root / LISTS["train"] if base is None else base / "Images", downloadable=False)
    if options.crop and not (base / "Annotation").is_dir():
        raise missing_data(NAME, base / "Annotation", downloadable=False, detail="Cropping needs the annotations.")
    lists = {split: _read_list(base / rel) for split, rel in LISTS.items()}
    folders = sorted({Path(f).parts[0] for files in lists.values() for f in files})
    if not folders:
        raise DataError(f"dataset {NAME!r}: the split lists under {base / 'lists'} are empty")
    kept = _select(folders, options.breeds)
    index = {folder: i for i, folder in enumerate(kept)}
    splits: dict[str, Pairs] = {
        split: [(str(base / "Images" / f), index[Path(f).parts[0]]) for f in files if Path(f).parts[0] in index]
        for split, files in lists.items()
    }
    skipped: list[SkippedFile] = []
    origin = {"test": "the official test_list.mat"}
    if options.crop:
        out_folder = (options.crop_dir or base / CROP_FOLDER).expanduser().absolute()
        for split in splits:
            splits[split], missed = _crop_all(splits[split], base, out_folder)
            skipped += missed
        origin["test"] += f", cropped to the annotated boxes (crops under {out_folder})"
        logger.info("%s: crops of %d images under %s", NAME, sum(map(len, splits.values())), out_folder)
    return RawDataset(
        name=NAME,
        root=str(base),
        raw_ids=kept,
        classnames=[breed_name(f) for f in kept],
        classnames_source="derived",
        train=splits["train"],
        test=splits["test"],
        origin=origin,
        skipped=skipped,
    )
