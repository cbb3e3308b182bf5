"""User data: ImageFolder trees and CSV / JSONL manifests."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

from visfeed.errors import DataError
from visfeed.tools.datasets._files import IMG_EXTENSIONS, is_image_name
from visfeed.tools.datasets.catalog import missing_data
from visfeed.tools.datasets.names import clean, derive
from visfeed.tools.datasets.protocol import Pairs, RawDataset, SkippedFile

logger = logging.getLogger(__name__)

_SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_SPLIT_VALUES = {**_SPLIT_DIRS, "dev": "val"}


def scan_class_dir(directory: Path) -> tuple[list[str], int]:
    """All image files under one class folder (recursively, following links), sorted; and the ignored count."""
    found: list[str] = []
    ignored = 0
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if is_image_name(name):
                found.append(os.path.join(os.path.abspath(dirpath), name))
            elif not name.startswith("."):
                ignored += 1
    return sorted(found), ignored


def _subdirs(directory: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))


def scan_tree(directory: Path, dataset: str) -> tuple[dict[str, list[str]], int]:
    """Class folder name -> image paths for an ImageFolder tree; errors on a tree or class with no images."""
    classes = _subdirs(directory)
    if not classes:
        raise missing_data(dataset, directory, downloadable=False, detail="It has no class folders.")
    ignored = sum(1 for e in os.scandir(directory) if e.is_file() and not e.name.startswith("."))
    out: dict[str, list[str]] = {}
    for cls in classes:
        files, n_ignored = scan_class_dir(directory / cls)
        ignored += n_ignored
        out[cls] = files
    empty = [c for c, files in out.items() if not files]
    if empty:
        raise DataError(
            f"dataset {dataset!r}: class folder {directory / empty[0]} has no image files "
            f"({len(empty)} such folder(s); image suffixes: {', '.join(IMG_EXTENSIONS)}). "
            "Add images or remove the folder"
        )
    return out, ignored


def load_imagefolder(root: Path, *, name: str = "imagefolder") -> RawDataset:
    """Read ``root/<class>/...`` or ``root/{train,val,test}/<class>/...`` (see the catalog entry)."""
    if not root.is_dir():
        raise missing_data(name, root, downloadable=False)
    top = _subdirs(root)
    split_layout = "train" in top and all(d in _SPLIT_DIRS for d in top)
    origin: dict[str, str] = {}
    if not split_layout:
        tree, ignored = scan_tree(root, name)
        trees = {"train": tree}
        origin["train"] = "all class folders"
    else:
        trees = {}
        ignored = 0
        for d in top:
            tree, n_ignored = scan_tree(root / d, name)
            trees[_SPLIT_DIRS[d]] = {**trees.get(_SPLIT_DIRS[d], {}), **tree}
            ignored += n_ignored
        if "test" not in trees and "val" in trees:
            trees["test"] = trees.pop("val")
            origin["test"] = "the val/ folder (there is no test/ folder)"
    raw_ids = sorted({c for tree in trees.values() for c in tree})
    index = {c: i for i, c in enumerate(raw_ids)}

    def pairs(split: str) -> Pairs | None:
        tree = trees.get(split)
        if tree is None:
            return None
        return [(p, index[c]) for c, files in tree.items() for p in files]

    if ignored:
        logger.info("%s: ignored %d non-image file(s) under %s", name, ignored, root)
    return RawDataset(
        name=name,
        root=str(root),
        raw_ids=raw_ids,
        classnames=[derive(c) for c in raw_ids],
        classnames_source="derived",
        train=pairs("train") or [],
        val=pairs("val"),
        test=pairs("test"),
        origin=origin,
        n_ignored_files=ignored,
    )


def _read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"manifest {path} could not be read as UTF-8 text: {exc}") from exc
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"manifest {path} line {lineno} is not valid JSON: {exc}") from exc
            if not isinstance(obj, dict):
                raise DataError(f"manifest {path} line {lineno} must be a JSON object with path and label")
            rows.append((lineno, obj))
        return rows
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if "path" not in fields or "label" not in fields:
            raise DataError(f"manifest {path} needs a header row with columns path,label[,split] (found {fields})")
        return [
            (lineno, {k.strip().lower(): v for k, v in row.items() if k is not None})
            for lineno, row in enumerate(reader, 2)
        ]
    raise DataError(f"manifest {path} must end in .csv, .tsv, .jsonl or .ndjson (got {suffix!r})")


def _int_label(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def load_manifest(path: Path, *, name: str = "manifest") -> RawDataset:
    """Read a CSV / JSONL manifest of ``path, label[, split]`` rows (paths relative to the manifest)."""
    if not path.is_file():
        raise missing_data(name, path, downloadable=False)
    rows = _read_rows(path)
    if not rows:
        raise DataError(f"manifest {path} has no rows; add one row per image (path, label[, split])")
    base = path.parent.absolute()
    entries: list[tuple[int, str, Any, str | None]] = []
    for lineno, row in rows:
        p, label = row.get("path"), row.get("label")
        if p is None or not str(p).strip() or label is None or str(label).strip() == "":
            raise DataError(f"manifest {path} line {lineno}: both path and label are required")
        split_raw = row.get("split")
        split = None
        if split_raw is not None and str(split_raw).strip():
            split = _SPLIT_VALUES.get(str(split_raw).strip().lower())
            if split is None:
                raise DataError(f"manifest {path} line {lineno}: split {split_raw!r} is not train, val or test")
        full = os.path.normpath(base / os.path.expanduser(str(p).strip()))
        entries.append((lineno, full, label, split))
    with_split = sum(1 for e in entries if e[3] is not None)
    if 0 < with_split < len(entries):
        first = next(e for e in entries if e[3] is None)
        raise DataError(f"manifest {path} line {first[0]}: give every row a split, or none")
    ints = [_int_label(e[2]) for e in entries]
    if all(i is not None for i in ints):
        n = max(i for i in ints if i is not None) + 1
        raw_ids = [str(i) for i in range(n)]
        labels = [int(i) for i in ints if i is not None]
        logger.warning("%s: integer labels; pass classnames_file to give the classes readable names", path)
        source = "label ids"
    else:
        names = [clean(str(e[2])) for e in entries]
        raw_ids = sorted(set(names))
        index = {c: i for i, c in enumerate(raw_ids)}
        labels = [index[c] for c in names]
        source = "dataset"
    seen: dict[str, tuple[int, int, str | None]] = {}
    splits: dict[str, Pairs] = {"train": [], "val": [], "test": []}
    skipped: list[SkippedFile] = []
    dupes = 0
    for (lineno, full, _, split), label in zip(entries, labels, strict=True):
        if full in seen:
            first_line, first_label, first_split = seen[full]
            if (first_label, first_split) != (label, split):
                raise DataError(
                    f"manifest {path}: {full} appears on line {first_line} and line {lineno} with a different "
                    "label or split; each image needs one label and one split"
                )
            dupes += 1
            continue
        seen[full] = (lineno, label, split)
        if not os.path.isfile(full):
            skipped.append(SkippedFile(path=full, reason=f"missing (manifest line {lineno})"))
            continue
        splits[split or "train"].append((full, label))
    warnings = [f"{dupes} duplicate row(s) ignored"] if dupes else []
    if not any(splits.values()):
        raise DataError(f"manifest {path}: none of its {len(entries)} image paths exist (first: {entries[0][1]})")
    counts = [0] * len(raw_ids)
    for pairs in splits.values():
        for _, label in pairs:
            counts[label] += 1
    empty = [raw_ids[i] for i, c in enumerate(counts) if c == 0]
    if empty:
        raise DataError(f"manifest {path}: class {empty[0]!r} has no existing image ({len(empty)} such)")
    has = {k for k, v in splits.items() if v}
    return RawDataset(
        name=name,
        root=str(path),
        raw_ids=raw_ids,
        classnames=[clean(r) for r in raw_ids],
        classnames_source=source,
        train=splits["train"],
        val=splits["val"] if "val" in has else None,
        test=splits["test"] if "test" in has else None,
        skipped=skipped,
        warnings=warnings,
    )
