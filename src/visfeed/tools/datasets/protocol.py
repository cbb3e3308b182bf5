"""The few-shot protocol: from a dataset's full splits to feedback / validation / test splits.

Rules (the ones CoOp and its follow-ups publish with, made explicit):

- Shots: per class, the sorted training paths are permuted by a generator seeded with ``(seed, label)``
  and the first ``k`` good images are taken. So the same seed gives the same images, a class's shots do
  not depend on the other classes, and the 1-shot set is contained in the 2-shot set, and so on.
- Validation: the dataset's own val split when it has one (all of it, or ``n_val_per_class`` drawn per
  class with the same seed); otherwise carved from the *end* of the same permutation, disjoint from the
  shots, ``n_val_per_class`` per class (default ``k``), so it does not move when ``k`` changes.
- Test: the dataset's test split; datasets without one hold out 30% of each class with a fixed seed (0),
  independent of ``seed``, so every seed is scored on the same test images.
- Feedback and (drawn) validation images are fully decoded; bad ones are skipped, counted and replaced by
  the next image of the permutation. Test images are identified by header (``verify="full"`` decodes them).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from visfeed.errors import ConfigError, DataError
from visfeed.tools.datasets._files import CheckDepth, check_image, check_images
from visfeed.tools.datasets.base import DatasetSplits, Split

logger = logging.getLogger(__name__)

HOLDOUT_SEED = 0
HOLDOUT_FRACTION = 0.3
_MAX_LISTED = 100

Verify = Literal["fast", "full", "off"]
Pairs = list[tuple[str, int]]


class SkippedFile(BaseModel):
    """An image left out, and why (missing, unreadable, truncated...)."""

    model_config = ConfigDict(frozen=True)

    path: str
    reason: str


@dataclass
class RawDataset:
    """What a source hands to the protocol: every labelled path of the dataset, split as it ships."""

    name: str
    root: str | None
    raw_ids: list[str]
    classnames: list[str]
    classnames_source: str
    train: Pairs
    val: Pairs | None = None
    test: Pairs | None = None
    origin: dict[str, str] = field(default_factory=dict)
    skipped: list[SkippedFile] = field(default_factory=list)
    n_ignored_files: int = 0
    warnings: list[str] = field(default_factory=list)


class LoadReport(BaseModel):
    """What loading did: split sizes and origins, skipped files, short classes, warnings."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    root: str | None
    n_classes: int
    k_shot: int
    seed: int
    classnames_source: str = Field(description="curated, derived, dataset, or file:<path>.")
    sizes: dict[str, int] = Field(description="Images per split: feedback, validation, test.")
    origin: dict[str, str] = Field(description="Where each split came from.")
    short_classes: dict[str, int] = Field(description="Classes with fewer than k shots -> shots taken.")
    classes_without_test: list[str]
    n_skipped: int = Field(description="Images left out because they were missing or unreadable.")
    skipped: list[SkippedFile] = Field(description=f"The first {_MAX_LISTED} of them.")
    n_ignored_files: int = Field(description="Non-image files ignored in folder layouts.")
    warnings: list[str]


def _by_class(pairs: Pairs, n: int) -> list[list[str]]:
    groups: list[list[str]] = [[] for _ in range(n)]
    for path, label in pairs:
        groups[label].append(path)
    return [sorted(g) for g in groups]


def _permutation(seed: int, label: int, stream: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([seed, label, stream]))
    return rng.permutation(size)


def holdout(pairs: Pairs, n_classes: int) -> tuple[Pairs, Pairs]:
    """Split labelled paths into (train, test) with 30% of each class in test, always the same way."""
    train: Pairs = []
    test: Pairs = []
    for label, paths in enumerate(_by_class(pairs, n_classes)):
        order = _permutation(HOLDOUT_SEED, label, 7, len(paths))
        n_test = max(1, round(len(paths) * HOLDOUT_FRACTION)) if len(paths) >= 2 else 0
        for rank, i in enumerate(order):
            (test if rank < n_test else train).append((paths[i], label))
    return train, test


def _take(paths: list[str], order: list[int], n: int, depth: CheckDepth, bad: dict[str, str]) -> list[str]:
    taken: list[str] = []
    for i in order:
        if len(taken) >= n:
            break
        reason = check_image(paths[i], depth)
        if reason is None:
            taken.append(paths[i])
        else:
            bad[paths[i]] = reason
    return taken


def _check_overlap(raw: RawDataset) -> None:
    seen: dict[str, str] = {}
    for split_name, pairs in (("train", raw.train), ("val", raw.val), ("test", raw.test)):
        for path, _ in pairs or []:
            other = seen.get(path)
            if other is not None and other != split_name:
                raise DataError(
                    f"dataset {raw.name!r}: image {path} is in both the {other} and the {split_name} split; "
                    "splits must not overlap. Fix the split files or manifest"
                )
            seen[path] = split_name


def make_splits(
    raw: RawDataset, *, k_shot: int, seed: int, n_val_per_class: int | None = None, verify: Verify = "fast"
) -> tuple[DatasetSplits, LoadReport]:
    """Apply the few-shot protocol to a source's full splits (see the module docstring for the rules)."""
    if k_shot < 1:
        raise ConfigError(f"k_shot must be at least 1 (got {k_shot}); the usual values are 1, 2, 4, 8, 16")
    if n_val_per_class is not None and n_val_per_class < 0:
        raise ConfigError(f"n_val_per_class must be 0 or more (got {n_val_per_class})")
    if verify not in ("fast", "full", "off"):
        raise ConfigError(f"verify must be 'fast', 'full' or 'off' (got {verify!r})")
    _check_overlap(raw)
    n = len(raw.classnames)
    origin = dict(raw.origin)
    warnings = list(raw.warnings)
    train, test = raw.train, raw.test
    if test is None:
        train, test = holdout(train, n)
        origin["test"] = f"held out from train: {HOLDOUT_FRACTION:.0%} per class, fixed seed {HOLDOUT_SEED}"
    origin.setdefault("test", "the dataset's test split")
    origin.setdefault("feedback", f"{k_shot} shots per class drawn from train with seed {seed}")

    shot_depth: CheckDepth = "exists" if verify == "off" else "decode"
    rest_depth: CheckDepth = "header" if verify == "fast" else shot_depth
    train_groups = _by_class(train, n)
    val_groups = _by_class(raw.val, n) if raw.val is not None else None
    n_carve = k_shot if n_val_per_class is None else n_val_per_class

    def per_class(label: int) -> tuple[list[str], list[str], dict[str, str]]:
        bad: dict[str, str] = {}
        paths = train_groups[label]
        order = [int(i) for i in _permutation(seed, label, 0, len(paths))]
        shots = _take(paths, order, k_shot, shot_depth, bad)
        if val_groups is None:
            used = set(shots)
            rest = [i for i in reversed(order) if paths[i] not in used and paths[i] not in bad]
            val = _take(paths, rest, n_carve, shot_depth, bad)
        else:
            vpaths = val_groups[label]
            if n_val_per_class is None:
                val = list(vpaths)
            else:
                vorder = [int(i) for i in _permutation(seed, label, 1, len(vpaths))]
                val = _take(vpaths, vorder, n_val_per_class, shot_depth, bad)
        return shots, val, bad

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(per_class, range(n)))

    bad_all: dict[str, str] = {}
    fb_paths: list[str] = []
    fb_labels: list[int] = []
    val_paths: list[str] = []
    val_labels: list[int] = []
    short: dict[str, int] = {}
    for label, (shots, val, bad) in enumerate(results):
        bad_all.update(bad)
        if not shots:
            raise DataError(
                f"dataset {raw.name!r}: class {raw.raw_ids[label]!r} ({raw.classnames[label]!r}) has no usable "
                f"training image ({len(train_groups[label])} listed, {len(bad)} unreadable); "
                "add images or remove the class"
            )
        if len(shots) < k_shot:
            short[raw.classnames[label]] = len(shots)
        fb_paths += shots
        fb_labels += [label] * len(shots)
        val_paths += val
        val_labels += [label] * len(val)
    if short:
        warnings.append(
            f"{len(short)} class(es) have fewer than {k_shot} usable training images and use what there is "
            f"(e.g. {next(iter(short))!r}: {next(iter(short.values()))})"
        )
    if raw.val is None:
        origin.setdefault("validation", f"carved from train: {n_carve} per class, disjoint from the shots")
    elif n_val_per_class is None:
        origin.setdefault("validation", "the dataset's val split, all of it")
        bad_val = check_images(val_paths, rest_depth)
        bad_all.update(bad_val)
        keep = [i for i, p in enumerate(val_paths) if p not in bad_val]
        val_paths, val_labels = [val_paths[i] for i in keep], [val_labels[i] for i in keep]
    else:
        origin.setdefault("validation", f"the dataset's val split, {n_val_per_class} per class with seed {seed}")

    test_paths = [p for p, _ in test]
    bad_test = check_images(test_paths, rest_depth)
    bad_all.update(bad_test)
    test_pairs = sorted((p, lab) for p, lab in test if p not in bad_test)
    present = {lab for _, lab in test_pairs}
    no_test = [raw.classnames[i] for i in range(n) if i not in present]
    if no_test:
        warnings.append(f"{len(no_test)} class(es) have no test image (e.g. {no_test[0]!r})")

    skipped = list(raw.skipped) + [SkippedFile(path=p, reason=r) for p, r in sorted(bad_all.items())]
    if skipped:
        warnings.append(
            f"{len(skipped)} image(s) skipped as missing or unreadable (e.g. {skipped[0].path}: {skipped[0].reason})"
        )
    for message in warnings:
        logger.warning("%s: %s", raw.name, message)

    splits = DatasetSplits(
        name=raw.name,
        classnames=raw.classnames,
        feedback=Split(paths=fb_paths, labels=fb_labels),
        validation=Split(paths=val_paths, labels=val_labels) if val_paths else None,
        test=Split(paths=[p for p, _ in test_pairs], labels=[lab for _, lab in test_pairs]),
    )
    report = LoadReport(
        dataset=raw.name,
        root=raw.root,
        n_classes=n,
        k_shot=k_shot,
        seed=seed,
        classnames_source=raw.classnames_source,
        sizes={"feedback": len(fb_paths), "validation": len(val_paths), "test": len(test_pairs)},
        origin=origin,
        short_classes=short,
        classes_without_test=no_test,
        n_skipped=len(skipped),
        skipped=skipped[:_MAX_LISTED],
        n_ignored_files=raw.n_ignored_files,
        warnings=warnings,
    )
    return splits, report
