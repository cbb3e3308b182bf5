"""CoOp's fixed splits (``split_zhou_<Name>.json``) and CoOp's ``$DATA`` folder layout.

A split file maps ``train`` / ``val`` / ``test`` to lists of ``[relative_path, label, classname]``, the
paths relative to the dataset's image folder. CoOp draws its k shots from ``train`` itself; the few-shot
draw here is visfeed's (seeded numpy), so the protocol matches but the exact images differ from CoOp's
cached ``split_fewshot/*.pkl`` files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visfeed.errors import ConfigError, DataError
from visfeed.tools.datasets.catalog import missing_data
from visfeed.tools.datasets.names import derive
from visfeed.tools.datasets.protocol import Pairs, RawDataset


@dataclass(frozen=True)
class CoopLayout:
    """Where CoOp keeps one dataset under ``$DATA``."""

    folder: str
    split_file: str
    image_dir: str


COOP_LAYOUTS: dict[str, CoopLayout] = {
    "caltech101": CoopLayout("caltech-101", "split_zhou_Caltech101.json", "101_ObjectCategories"),
    "oxford_pets": CoopLayout("oxford_pets", "split_zhou_OxfordPets.json", "images"),
    "stanford_cars": CoopLayout("stanford_cars", "split_zhou_StanfordCars.json", ""),
    "flowers102": CoopLayout("oxford_flowers", "split_zhou_OxfordFlowers.json", "jpg"),
    "food101": CoopLayout("food-101", "split_zhou_Food101.json", "images"),
    "sun397": CoopLayout("sun397", "split_zhou_SUN397.json", "SUN397"),
    "dtd": CoopLayout("dtd", "split_zhou_DescribableTextures.json", "images"),
    "eurosat": CoopLayout("eurosat", "split_zhou_EuroSAT.json", "2750"),
    "ucf101": CoopLayout("ucf101", "split_zhou_UCF101.json", "UCF-101-midframes"),
}
#: Datasets CoOp reads without a split_zhou file; handled by dedicated code (see load_coop).
COOP_SPECIAL = ("fgvc_aircraft", "imagenet")


def _locate(root: Path, name: str, layout: CoopLayout) -> tuple[Path, Path]:
    """Find (split file, dataset folder) from $DATA, the dataset folder, or the split file itself."""
    if root.is_file():
        return root, root.parent
    for folder in (root / layout.folder, root):
        candidate = folder / layout.split_file
        if candidate.is_file():
            return candidate, folder
    raise missing_data(
        f"coop:{name}",
        root,
        downloadable=False,
        detail=f"Looked for {root / layout.folder / layout.split_file} and {root / layout.split_file}.",
    )


def read_split_file(split_path: Path, image_dir: Path, name: str) -> RawDataset:
    """Parse a CoOp split JSON into full train / val / test splits with CoOp's class names."""
    try:
        data = json.loads(split_path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"CoOp split file {split_path} could not be read as JSON: {exc}") from exc
    if not isinstance(data, dict) or "train" not in data or "test" not in data:
        raise DataError(f"CoOp split file {split_path} must be a JSON object with train, val and test lists")
    names: dict[int, str] = {}
    splits: dict[str, Pairs] = {}
    for split in ("train", "val", "test"):
        items: Any = data.get(split, [])
        if not isinstance(items, list):
            raise DataError(f"CoOp split file {split_path}: {split!r} must be a list")
        pairs: Pairs = []
        for i, item in enumerate(items):
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
                raise DataError(
                    f"CoOp split file {split_path}: {split}[{i}] must be [relative_path, label, classname], "
                    f"got {item!r}"
                )
            rel, label, cname = item
            try:
                label = int(label)
            except (TypeError, ValueError) as exc:
                raise DataError(f"CoOp split file {split_path}: {split}[{i}] has label {label!r}") from exc
            if names.setdefault(label, str(cname)) != str(cname):
                raise DataError(
                    f"CoOp split file {split_path}: label {label} is called both {names[label]!r} and {cname!r}"
                )
            pairs.append((str((image_dir / rel).absolute()), label))
        splits[split] = pairs
    n = max(names) + 1 if names else 0
    missing = [i for i in range(n) if i not in names]
    if not names or min(names) < 0 or missing:
        detail = f"label {missing[0]} is absent" if missing else f"labels found: {sorted(names)[:5]}"
        raise DataError(f"CoOp split file {split_path}: labels must run 0..N-1 ({detail})")
    raw_ids = [names[i] for i in range(n)]
    return RawDataset(
        name=f"coop:{name}",
        root=str(split_path),
        raw_ids=raw_ids,
        classnames=[derive(r) for r in raw_ids],
        classnames_source="dataset",
        train=splits["train"],
        val=splits["val"] or None,
        test=splits["test"],
        origin={"test": f"CoOp split file {split_path.name}"},
    )


def _read_fgvc_lists(data_dir: Path, name: str) -> RawDataset:
    variants = [line.strip() for line in (data_dir / "variants.txt").read_text("utf-8").splitlines()]
    variants = [v for v in variants if v]
    index = {v: i for i, v in enumerate(variants)}
    splits: dict[str, Pairs] = {}
    for split in ("train", "val", "test"):
        file = data_dir / f"images_variant_{split}.txt"
        if not file.is_file():
            raise missing_data(name, file, downloadable=False)
        pairs: Pairs = []
        for lineno, line in enumerate(file.read_text("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            image_id, _, variant = line.strip().partition(" ")
            if variant not in index:
                raise DataError(f"{file} line {lineno}: variant {variant!r} is not in variants.txt")
            pairs.append((str((data_dir / "images" / f"{image_id}.jpg").absolute()), index[variant]))
        splits[split] = pairs
    return RawDataset(
        name=name,
        root=str(data_dir),
        raw_ids=variants,
        classnames=variants,
        classnames_source="dataset",
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
    )


def load_coop(name: str, root: Path) -> RawDataset:
    """Load ``coop:<name>`` from CoOp's layout (``coop`` alone: root must be a split JSON file)."""
    if name == "":
        if not root.is_file():
            raise missing_data("coop:<dataset>", root, downloadable=False, detail="`coop` needs the split JSON.")
        known = {lay.split_file: (key, lay) for key, lay in COOP_LAYOUTS.items()}
        key, lay = known.get(root.name, (root.stem, CoopLayout(root.parent.name, root.name, "")))
        return read_split_file(root, root.parent / lay.image_dir, key)
    if name == "fgvc_aircraft":
        for folder in (root / "fgvc_aircraft", root):
            if (folder / "variants.txt").is_file():
                return _read_fgvc_lists(folder, "coop:fgvc_aircraft")
        raise missing_data("coop:fgvc_aircraft", root / "fgvc_aircraft" / "variants.txt", downloadable=False)
    layout = COOP_LAYOUTS.get(name)
    if layout is None:
        known_names = ", ".join([*COOP_LAYOUTS, *COOP_SPECIAL])
        raise ConfigError(f"unknown CoOp dataset {name!r}; known: {known_names}")
    split_path, folder = _locate(root, name, layout)
    return read_split_file(split_path, folder / layout.image_dir, name)
