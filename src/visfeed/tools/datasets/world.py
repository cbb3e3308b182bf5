"""Feedback / validation / test splits of a world, rendered once to PNG files and reused.

Every image has its own generator seeded by ``(seed, split, class, index)``, so splits are deterministic,
independent of rendering order, and never share an image. The folder is rendered into a temporary sibling
and renamed into place, so a crash never leaves a half-written split that a later call would trust.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from visfeed.errors import CacheError
from visfeed.tools.datasets.base import DatasetSplits, Split
from visfeed.tools.embedding.builtin_models import visfeed_cache_dir
from visfeed.tools.world.render import RENDER_VERSION, render
from visfeed.tools.world.spec import WorldSpec, load_spec

log = logging.getLogger(__name__)

SPLIT_IDS = {"feedback": 1, "validation": 2, "test": 3}
_MANIFEST = "manifest.json"


class WorldOptions(BaseModel):
    """Which world to render and how many images per class (a world has no files to take its sizes from)."""

    model_config = ConfigDict(frozen=True)

    spec: Path | None = Field(default=None, description="World spec YAML; None: the shipped market world.")
    n_val: int = Field(default=20, ge=0, description="Validation images per class (0: no validation split).")
    n_test: int = Field(default=50, ge=1, description="Test images per class.")
    cache_dir: Path | None = Field(
        default=None,
        description="visfeed's cache folder; splits are rendered under <cache_dir>/world/. None: ~/.cache/visfeed "
        "(the CLI and runs pass $VISFEED_CACHE_DIR's folder).",
    )


def image_rng(seed: int, split: str, class_index: int, index: int) -> np.random.Generator:
    """The generator of one image (a split id keeps splits apart even for equal indices)."""
    return np.random.default_rng([seed, SPLIT_IDS[split], class_index, index, RENDER_VERSION])


def render_class_images(
    spec: WorldSpec, class_index: int, n: int, *, seed: int, split: str = "test"
) -> list[tuple[dict[str, str], np.random.Generator]]:
    """Attribute draws for ``n`` images of one class, each with the generator that will render it."""
    out = []
    for i in range(n):
        rng = image_rng(seed, split, class_index, i)
        out.append((spec.classes[class_index].sample(rng), rng))
    return out


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.strip().lower())


def write_split(spec: WorldSpec, out: Path, split: str, per_class: int, seed: int) -> tuple[list[str], list[int]]:
    """Render ``per_class`` images of every class into ``out/<class>/NNNN.png``; returns relative paths."""
    paths: list[str] = []
    labels: list[int] = []
    for ci, cls in enumerate(spec.classes):
        folder = out / _slug(cls.name)
        folder.mkdir(parents=True, exist_ok=True)
        for i, (attrs, rng) in enumerate(render_class_images(spec, ci, per_class, seed=seed, split=split)):
            name = folder / f"{i:04d}.png"
            render(attrs, rng).save(name, format="PNG", compress_level=1)
            paths.append(str(name.relative_to(out.parent)))
            labels.append(ci)
    return paths, labels


def world_splits(
    spec: Path | None = None,
    *,
    seed: int = 0,
    k_shot: int = 8,
    n_val: int = 20,
    n_test: int = 50,
    root: Path | None = None,
    cache_dir: Path | None = None,
) -> DatasetSplits:
    """Render (or reuse) the k-shot feedback, validation and test splits of a world spec.

    The folder is ``root`` if given, else ``<cache_dir>/world/<spec-hash>-s<seed>-k<k>-v<val>-t<test>``, with
    ``cache_dir`` defaulting to ``~/.cache/visfeed`` (callers pass ``visfeed_cache_dir(os.environ)`` to honour
    ``$VISFEED_CACHE_DIR``).
    """
    world = load_spec(spec)
    key = f"{world.digest()}-r{RENDER_VERSION}-s{seed}-k{k_shot}-v{n_val}-t{n_test}"
    folder = Path(root) if root is not None else (cache_dir or visfeed_cache_dir()) / "world" / key
    manifest = folder / _MANIFEST
    if not manifest.is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        try:
            record: dict[str, object] = {"name": world.name, "classnames": world.classnames, "key": key}
            for split, n in (("feedback", k_shot), ("validation", n_val), ("test", n_test)):
                if n <= 0:
                    record[split] = None
                    continue
                p, lab = write_split(world, tmp / split, split, n, seed)
                record[split] = {"paths": [str(Path(x)) for x in p], "labels": lab}
            (tmp / _MANIFEST).write_text(json.dumps(record), encoding="utf-8")
            try:
                os.rename(tmp, folder)
            except OSError:
                if not manifest.is_file():  # not a concurrent winner: a real failure
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CacheError(f"cannot write world images to {folder}: {exc}; set VISFEED_CACHE_DIR") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("rendered world %s splits into %s", world.name, folder)
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CacheError(f"world split manifest {manifest} is unreadable ({exc}); delete {folder}") from exc

    def split_of(name: str) -> Split | None:
        entry = data.get(name)
        if entry is None:
            return None
        return Split(paths=[str(folder / p) for p in entry["paths"]], labels=entry["labels"])

    feedback, test = split_of("feedback"), split_of("test")
    if feedback is None or test is None:
        raise CacheError(f"world splits need k_shot > 0 and n_test > 0 (manifest {manifest})")
    return DatasetSplits(
        name=world.name, classnames=world.classnames, feedback=feedback, validation=split_of("validation"), test=test
    )
