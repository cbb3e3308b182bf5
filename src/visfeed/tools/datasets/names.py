"""Readable class names: curated lists shipped as data, names derived from the dataset, user overrides.

A VLM scores "a photo of a {name}", so `AnnualCrop` or `n01440764` cost accuracy; CLIP's evaluations use
cleaned names. Lists we can ship exactly (copied from CLIP's published lists) live in
``visfeed/assets/classnames/*.json``; for the rest the names are derived from the dataset's own files at
load time rather than typed from memory.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from visfeed.errors import DataError

logger = logging.getLogger(__name__)


@cache
def _asset(name: str) -> dict[str, Any]:
    text = resources.files("visfeed").joinpath("assets", "classnames", f"{name}.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def curated_list(dataset: str) -> list[str]:
    """Shipped readable names of a built-in dataset whose classes are label indices (flowers102, pets)."""
    names = _asset(dataset)["names"]
    if not isinstance(names, list):
        raise TypeError(f"assets/classnames/{dataset}.json holds a mapping, not a list")
    return [str(x) for x in names]


def curated_dict(dataset: str) -> dict[str, str]:
    """Shipped readable names keyed by raw class id (folder name or WordNet id)."""
    names = _asset(dataset)["names"]
    if not isinstance(names, dict):
        raise TypeError(f"assets/classnames/{dataset}.json holds a list, not a mapping")
    return {str(k): str(v) for k, v in names.items()}


def clean(name: str) -> str:
    """Normalize a name: Unicode NFC (macOS folders arrive decomposed), collapsed whitespace."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", name)).strip()


def derive(raw: str) -> str:
    """A readable name from a raw class id: separators ('_', '/') become spaces."""
    return clean(raw.replace("_", " ").replace("/", " "))


def names_by_id(raw_ids: list[str], curated: dict[str, str], dataset: str) -> list[str]:
    """Map raw class ids through a curated dict; ids it lacks keep a derived name, logged once."""
    missing = [r for r in raw_ids if r not in curated]
    if missing:
        logger.warning(
            "%s: %d class id(s) have no curated name and keep a derived one (first: %r)",
            dataset,
            len(missing),
            missing[0],
        )
    return [curated.get(r, derive(r)) for r in raw_ids]


def read_classnames_file(path: Path, raw_ids: list[str], current: list[str]) -> list[str]:
    """Apply a user's class-name file; return the names by label index.

    Accepted forms: a text file with one name per line (in label order), or with ``<raw id> <name>`` lines
    (CoOp's ``classnames.txt``, matched when every first token is a raw class id); a JSON list (label
    order); a JSON object keyed by raw class id or label index, which may cover only some classes.
    """
    if not path.is_file():
        raise DataError(f"class-name file {path} does not exist; pass an existing .txt or .json file")
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"class-name file {path} could not be read as UTF-8 text: {exc}") from exc
    n = len(raw_ids)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"class-name file {path} is not valid JSON: {exc}") from exc
        if isinstance(data, list):
            return _from_list([str(x) for x in data], n, path)
        if isinstance(data, dict):
            return _from_mapping({str(k): str(v) for k, v in data.items()}, raw_ids, current, path)
        raise DataError(f"class-name file {path} must hold a JSON list or object, not {type(data).__name__}")
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    ids = set(raw_ids)
    pairs = [line.split(None, 1) for line in lines]
    if lines and all(len(p) == 2 and p[0] in ids for p in pairs):
        return _from_mapping({p[0]: p[1] for p in pairs}, raw_ids, current, path)
    return _from_list(lines, n, path)


def _from_list(names: list[str], n: int, path: Path) -> list[str]:
    if len(names) != n:
        raise DataError(
            f"class-name file {path} has {len(names)} names but the dataset has {n} classes; "
            "give one name per class, in label order"
        )
    blank = [i for i, name in enumerate(names) if not name.strip()]
    if blank:
        raise DataError(f"class-name file {path}: name for label {blank[0]} is empty")
    return [clean(x) for x in names]


def _from_mapping(mapping: dict[str, str], raw_ids: list[str], current: list[str], path: Path) -> list[str]:
    index_of = {r: i for i, r in enumerate(raw_ids)}
    out = list(current)
    unknown = []
    for key, value in mapping.items():
        i = index_of.get(key)
        if i is None and key.isdigit() and int(key) < len(raw_ids):
            i = int(key)
        if i is None:
            unknown.append(key)
            continue
        if not value.strip():
            raise DataError(f"class-name file {path}: name for {key!r} is empty")
        out[i] = clean(value)
    if unknown:
        raise DataError(
            f"class-name file {path} names class {unknown[0]!r}, which is not a class id of this dataset "
            f"(ids look like {raw_ids[:3]}) nor a label index below {len(raw_ids)}"
        )
    return out


def check_names(names: list[str], raw_ids: list[str], dataset: str) -> None:
    """Reject empty or duplicate readable names with a message that names the raw classes involved."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name.strip():
            raise DataError(
                f"dataset {dataset!r}: class {raw_ids[i]!r} (label {i}) has an empty readable name; "
                "rename it or pass classnames_file"
            )
        key = name.casefold()
        if key in seen:
            j = seen[key]
            raise DataError(
                f"dataset {dataset!r}: classes {raw_ids[j]!r} and {raw_ids[i]!r} both read as {name!r}; "
                "a classifier cannot tell them apart. Rename one, or pass classnames_file with distinct names"
            )
        seen[key] = i
