"""Dataset names -> sources, and the one entry point the CLI and the graph call: ``load_dataset``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from visfeed.errors import ConfigError
from visfeed.tools.datasets import tv_sources
from visfeed.tools.datasets.base import DatasetSplits
from visfeed.tools.datasets.catalog import CATALOG, DatasetInfo
from visfeed.tools.datasets.cifar import load_cifar
from visfeed.tools.datasets.coop import COOP_LAYOUTS, COOP_SPECIAL, load_coop
from visfeed.tools.datasets.folder import load_imagefolder, load_manifest
from visfeed.tools.datasets.names import check_names, read_classnames_file
from visfeed.tools.datasets.protocol import LoadReport, RawDataset, Verify, make_splits
from visfeed.tools.datasets.stanford_dogs import NAME as DOGS
from visfeed.tools.datasets.stanford_dogs import StanfordDogsOptions, load_stanford_dogs
from visfeed.tools.datasets.world import WorldOptions, world_splits

if TYPE_CHECKING:
    from visfeed.state.config import RunConfig

logger = logging.getLogger(__name__)

Source = Callable[[Path, bool, Path | None], RawDataset]

_BUILTIN: dict[str, Source] = {
    "flowers102": lambda r, d, c: tv_sources.flowers102(r, d),
    "dtd": lambda r, d, c: tv_sources.dtd(r, d),
    "eurosat": lambda r, d, c: tv_sources.eurosat(r, d),
    "food101": lambda r, d, c: tv_sources.food101(r, d),
    "oxford_pets": lambda r, d, c: tv_sources.oxford_pets(r, d),
    "caltech101": lambda r, d, c: tv_sources.caltech101(r, d),
    "sun397": lambda r, d, c: tv_sources.sun397(r, d),
    "stanford_cars": lambda r, d, c: tv_sources.stanford_cars(r, d),
    "fgvc_aircraft": lambda r, d, c: tv_sources.fgvc_aircraft(r, d),
    "cifar10": lambda r, d, c: load_cifar("cifar10", r, download=d, cache_dir=c),
    "cifar100": lambda r, d, c: load_cifar("cifar100", r, download=d, cache_dir=c),
    "imagenet": lambda r, d, c: tv_sources.imagenet(r, d),
    "imagefolder": lambda r, d, c: load_imagefolder(r),
    "manifest": lambda r, d, c: load_manifest(r),
}

#: The synthetic world: rendered on demand from a spec (see :class:`WorldOptions`), no root needed.
WORLD = "world"
#: Sources that take their own options besides the root (a breed subset, crops).
_WITH_OPTIONS = (DOGS,)

ALIASES = {
    "flowers": "flowers102",
    "oxford_flowers": "flowers102",
    "pets": "oxford_pets",
    "oxfordiiitpet": "oxford_pets",
    "oxford_iiit_pet": "oxford_pets",
    "cars": "stanford_cars",
    "dogs": "stanford_dogs",
    "stanforddogs": "stanford_dogs",
    "stanfordcars": "stanford_cars",
    "aircraft": "fgvc_aircraft",
    "fgvcaircraft": "fgvc_aircraft",
    "caltech": "caltech101",
    "food": "food101",
    "imagenet1k": "imagenet",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "folder": "imagefolder",
}

#: Where ``download=True`` puts data when no root is given (never read from the environment).
DEFAULT_DOWNLOAD_ROOT = Path.home() / ".cache" / "visfeed" / "datasets"


class LoadedDataset(NamedTuple):
    """The splits plus a report of what loading did (skipped files, short classes, split origins)."""

    splits: DatasetSplits
    report: LoadReport


def canonical_name(name: str) -> str:
    """Normalize a user-given dataset name (case, '-', aliases; ``coop:`` prefix kept)."""
    key = name.strip().lower()
    if key.startswith("coop"):
        rest = key[4:].lstrip(":").replace("-", "_")
        rest = ALIASES.get(rest, rest)
        if rest and rest not in COOP_LAYOUTS and rest not in COOP_SPECIAL:
            known = ", ".join(f"coop:{k}" for k in (*COOP_LAYOUTS, *COOP_SPECIAL))
            raise ConfigError(f"unknown CoOp dataset {name!r}; known: {known}")
        return f"coop:{rest}" if rest else "coop"
    key = ALIASES.get(key, key)
    key = ALIASES.get(key.replace("-", "_"), key.replace("-", "_"))
    if key not in _BUILTIN and key not in (WORLD, *_WITH_OPTIONS):
        known = ", ".join([WORLD, *_BUILTIN, *_WITH_OPTIONS, "coop:<dataset>"])
        raise ConfigError(f"unknown dataset {name!r}; known: {known} (see `visfeed datasets`)")
    return key


def list_datasets() -> list[DatasetInfo]:
    """Every supported dataset name with its expected on-disk layout."""
    return list(CATALOG.values())


def _source(
    name: str, root: Path, download: bool, cache_dir: Path | None, dogs: StanfordDogsOptions | None
) -> RawDataset:
    if name == DOGS:
        return load_stanford_dogs(root, dogs)
    if name == "coop":
        return load_coop("", root)
    if name == "coop:imagenet":
        return replace(tv_sources.imagenet(root, False), name="coop:imagenet")
    if name.startswith("coop:"):
        return load_coop(name.removeprefix("coop:"), root)
    return _BUILTIN[name](root, download, cache_dir)


def load_dataset_with_report(
    name: str,
    root: Path | None,
    *,
    k_shot: int = 8,
    seed: int = 0,
    download: bool = False,
    classnames_file: Path | None = None,
    n_val_per_class: int | None = None,
    cache_dir: Path | None = None,
    verify: Verify = "fast",
    world: WorldOptions | None = None,
    stanford_dogs: StanfordDogsOptions | None = None,
) -> LoadedDataset:
    """Like :func:`load_dataset`, and also return the :class:`LoadReport`."""
    key = canonical_name(name)
    if key == WORLD:
        return _load_world(world or WorldOptions(), k_shot=k_shot, seed=seed)
    info = CATALOG.get(key)
    if root is None:
        if not (download and info is not None and info.downloadable):
            raise ConfigError(
                f"dataset {key!r} needs --root (the folder that holds it)"
                + ("; or pass --download to fetch it" if info is not None and info.downloadable else "")
            )
        root = DEFAULT_DOWNLOAD_ROOT / key
    root = Path(root).expanduser().absolute()
    raw = _source(key, root, download, cache_dir, stanford_dogs)
    if classnames_file is not None:
        raw.classnames = read_classnames_file(Path(classnames_file), raw.raw_ids, raw.classnames)
        raw.classnames_source = f"file:{classnames_file}"
    check_names(raw.classnames, raw.raw_ids, key)
    splits, report = make_splits(raw, k_shot=k_shot, seed=seed, n_val_per_class=n_val_per_class, verify=verify)
    logger.info(
        "%s: %d classes, %d feedback / %d validation / %d test images (k=%d, seed=%d)",
        key,
        len(splits.classnames),
        len(splits.feedback),
        len(splits.validation) if splits.validation else 0,
        len(splits.test),
        k_shot,
        seed,
    )
    return LoadedDataset(splits, report)


def _load_world(options: WorldOptions, *, k_shot: int, seed: int) -> LoadedDataset:
    """Render (or reuse) the world's splits; every image is drawn from the spec, so nothing is ever skipped."""
    splits = world_splits(
        options.spec, seed=seed, k_shot=k_shot, n_val=options.n_val, n_test=options.n_test, cache_dir=options.cache_dir
    )
    spec = str(options.spec) if options.spec is not None else "the shipped market spec"
    report = LoadReport(
        dataset=WORLD,
        root=None,
        n_classes=len(splits.classnames),
        k_shot=k_shot,
        seed=seed,
        classnames_source="dataset",
        sizes={
            "feedback": len(splits.feedback),
            "validation": len(splits.validation) if splits.validation is not None else 0,
            "test": len(splits.test),
        },
        origin={split: f"rendered from {spec}" for split in ("feedback", "validation", "test")},
        short_classes={},
        classes_without_test=[],
        n_skipped=0,
        skipped=[],
        n_ignored_files=0,
        warnings=[],
    )
    return LoadedDataset(splits, report)


def load_dataset(name: str, root: Path | None, **options: Any) -> DatasetSplits:
    """Load a dataset by name and apply the few-shot protocol (the splits of :func:`load_dataset_with_report`).

    ``options``: the keywords of :func:`load_dataset_with_report`, whose signature is the one definition.

    ``name``: ``world`` (rendered from ``world``'s spec and sizes; ``root`` is not used), a built-in (flowers102, dtd, eurosat, food101, oxford_pets, caltech101, sun397, stanford_cars,
    fgvc_aircraft, cifar10, cifar100, imagenet, stanford_dogs), ``imagefolder``, ``manifest`` (root = the manifest file),
    ``coop:<dataset>`` or ``coop`` (root = a split_zhou_*.json). Nothing is fetched unless ``download``.
    ``cache_dir``: where CIFAR's PNGs go (default beside the batches). ``verify``: "fast" decodes the
    feedback and drawn validation images and identifies the rest by header, "full" decodes all, "off"
    only checks that files exist. ``stanford_dogs``: that dataset's breed subset and crop (see
    :class:`StanfordDogsOptions`). Missing data raises DataError with the expected layout.
    """
    return load_dataset_with_report(name, root, **options).splits


def load_for_config(cfg: RunConfig, cache_dir: Path | None = None) -> LoadedDataset:
    """The dataset a run config names, split as its runs split it (same seed, shots and world sizes).

    ``cache_dir``: visfeed's cache folder, where the world is rendered (see :class:`WorldOptions`).
    """
    return load_dataset_with_report(
        cfg.data.name,
        cfg.data.root,
        k_shot=cfg.data.k_shot,
        seed=cfg.seed,
        download=cfg.backbone.allow_download,
        world=WorldOptions(spec=cfg.data.world_spec, n_val=cfg.data.n_val, n_test=cfg.data.n_test, cache_dir=cache_dir),
        stanford_dogs=StanfordDogsOptions(
            breeds=cfg.data.stanford_dogs.breeds,
            crop=cfg.data.stanford_dogs.crop,
            crop_dir=cfg.data.stanford_dogs.crop_dir,
        ),
    )
