"""``visfeed embed``: fill the embedding cache for a dataset split and a backbone, as memory-mapped shards.

Why a job of its own: a large test split (a million images) should be embedded before the runs that
score it, on many workers at once, without passing every vector through one process. The plan (which
files, which are new) is made once; the work is a stream of batches, each embedded and written as one
shard (:mod:`visfeed.tools.embedding.shards`) by :class:`ShardEmbedder`. The same class runs in-process (the local
path) or as Ray Data actors (``map_batches`` over a pool of CPU or GPU actors). The runs then find the
vectors through the ordinary embedding cache, read from the memory-mapped shards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from visfeed.errors import ConfigError, DataError
from visfeed.state.config import DEFAULT_MODEL, RunConfig
from visfeed.tools.embedding.cache import EmbeddingCache, file_key
from visfeed.tools.embedding.shards import shard_folder, write_shard
from visfeed.tools.embedding.vlm import VLM, BackboneRef

log = logging.getLogger(__name__)

SplitName = Literal["test", "validation", "feedback", "all"]


class EmbedJob(BaseModel):
    """The backbone and cache a worker needs (sent to each Ray actor as JSON)."""

    backbone: str = DEFAULT_MODEL
    pretrained: str | None = None
    allow_download: bool = False
    device: str = "auto"
    cache: Path = Field(description="The SQLite embedding cache file; shards go beside it.")
    cache_dir: Path | None = Field(
        default=None,
        description="visfeed's cache folder (the default backbone's assembled checkpoint); None: ~/.cache/visfeed.",
    )
    batch_size: int = Field(default=256, ge=1, description="Images per forward pass.")

    def load_vlm(self) -> VLM:
        """The backbone, loaded exactly as a run loads it (same identity, so the same cache namespace)."""
        from visfeed.tools.embedding.builtin_models import default_pretrained

        pretrained = self.pretrained
        if pretrained is None and self.backbone == DEFAULT_MODEL:
            pretrained = str(default_pretrained(self.cache_dir))
        ref = BackboneRef(self.backbone, pretrained, self.allow_download)
        return VLM(ref, EmbeddingCache(self.cache), device=self.device, batch_size=self.batch_size, num_workers=0)


class EmbedReport(BaseModel):
    """What ``visfeed embed`` did (printed, and written by ``benchmarks/embed.py``)."""

    images: int = Field(description="Files in the split (duplicates by content counted once).")
    embedded: int = Field(description="Files run through the backbone now.")
    already_cached: int
    shards: int
    wall_s: float
    images_per_s: float = Field(description="Embedded files per second of wall time (0 when nothing was new).")
    busy_s: float = Field(
        default=0.0, description="From the first batch's start to the last batch's end: wall less worker start-up."
    )
    busy_images_per_s: float = Field(default=0.0, description="Embedded files per second of busy time.")
    executor: str
    namespace: str
    folder: str


class ShardEmbedder:
    """Embeds one batch of files and writes it as a shard: a Ray Data actor, or a plain object locally."""

    def __init__(self, job_json: str) -> None:
        self.vlm = EmbedJob.model_validate_json(job_json).load_vlm()
        self.folder = shard_folder(self.vlm.cache.path, self.vlm.image_namespace)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``batch``: columns ``path`` and ``key`` (content hash); returns how many rows it wrote, and when.

        The start and end times (epoch seconds) let the job tell embedding throughput from worker start-up.
        """
        t0 = time.time()
        paths = [str(p) for p in batch["path"]]
        keys = [str(k) for k in batch["key"]]
        write_shard(self.folder, self.vlm.image_namespace, keys, self.vlm.encode_images(paths))
        return {"n": np.asarray([len(paths)], dtype=np.int64), "t0": np.asarray([t0]), "t1": np.asarray([time.time()])}


def split_paths(cfg: RunConfig, split: SplitName, cache_dir: Path | None = None) -> list[str]:
    """Image files of one split (or all) of the config's dataset, as a run would load them (``cache_dir``: the world's)."""
    from visfeed.tools.datasets import load_for_config

    splits, _ = load_for_config(cfg, cache_dir)
    parts = {"feedback": splits.feedback, "validation": splits.validation, "test": splits.test}
    chosen = [s for name, s in parts.items() if s is not None and split in (name, "all")]
    return list(dict.fromkeys(p for s in chosen for p in s.paths))


def plan(vlm: VLM, paths: Sequence[str]) -> tuple[list[str], list[str], int]:
    """(paths, keys) of the files not in the cache yet, and how many are; duplicate contents count once."""
    try:
        keyed = dict(zip((file_key(p) for p in paths), paths, strict=True))
    except OSError as exc:
        raise DataError(f"cannot read image file: {exc}") from exc
    cached = vlm.cache.get_many(vlm.image_namespace, keyed)
    todo = {k: p for k, p in keyed.items() if k not in cached}
    return list(todo.values()), list(todo), len(keyed) - len(todo)


def embed_split(
    job: EmbedJob,
    paths: Sequence[str],
    *,
    shard_size: int = 1024,
    ray_workers: int | None = None,
    ray_address: str | None = None,
    gpus_per_worker: float = 0.0,
) -> EmbedReport:
    """Embed the files not cached yet into shards: in this process, or on ``ray_workers`` Ray Data actors."""
    if shard_size < 1:
        raise ConfigError(f"shard size must be at least 1, got {shard_size}")
    if not paths:
        raise DataError("the split has no images to embed")
    vlm = job.load_vlm()
    todo, keys, cached = plan(vlm, paths)
    t0 = time.perf_counter()
    batches: list[dict[str, np.ndarray]] = []
    if todo and ray_workers is None:
        embedder = ShardEmbedder(job.model_dump_json())
        for start in range(0, len(todo), shard_size):
            part = slice(start, start + shard_size)
            batches.append(embedder({"path": np.asarray(todo[part]), "key": np.asarray(keys[part])}))
    elif todo:
        batches = _embed_on_ray(job, todo, keys, shard_size, ray_workers or 1, ray_address, gpus_per_worker)
    wall = time.perf_counter() - t0
    written = sum(int(b["n"][0]) for b in batches)
    if written != len(todo):
        raise DataError(f"embedded {written} of {len(todo)} images")
    busy = max((float(b["t1"][0]) for b in batches), default=0.0) - min(
        (float(b["t0"][0]) for b in batches), default=0.0
    )
    folder = shard_folder(vlm.cache.path, vlm.image_namespace)
    return EmbedReport(
        images=len(todo) + cached,
        embedded=len(todo),
        already_cached=cached,
        shards=len(batches),
        wall_s=wall,
        images_per_s=len(todo) / wall if todo and wall > 0 else 0.0,
        busy_s=busy,
        busy_images_per_s=len(todo) / busy if todo and busy > 0 else 0.0,
        executor="local" if ray_workers is None else f"ray x{ray_workers}",
        namespace=vlm.image_namespace,
        folder=str(folder),
    )


def _embed_on_ray(
    job: EmbedJob, paths: list[str], keys: list[str], shard_size: int, workers: int, address: str | None,
    gpus_per_worker: float,
) -> list[dict[str, np.ndarray]]:  # fmt: skip
    """Ray Data: the files as a dataset, ``map_batches`` over a pool of ``workers`` ShardEmbedder actors.

    Returns one record per shard written (as :meth:`ShardEmbedder.__call__` returns it).
    """
    from visfeed.tools.embedding.ray_support import connect, import_ray

    ray = import_ray()
    own = connect(address)
    try:
        ds = ray.data.from_items([{"path": p, "key": k} for p, k in zip(paths, keys, strict=True)])
        written = ds.map_batches(
            ShardEmbedder,
            batch_size=shard_size,
            concurrency=workers,
            num_cpus=1,
            num_gpus=gpus_per_worker,
            fn_constructor_kwargs={"job_json": job.model_dump_json()},
        )
        rows = [{k: np.asarray([v]) for k, v in row.items()} for row in written.iter_rows()]
    finally:
        if own:
            ray.shutdown()
    return rows
