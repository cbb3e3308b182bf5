"""Sharded embedding files: what ``visfeed embed`` writes and the embedding cache reads memory-mapped.

Why shards beside the SQLite cache: a test split of a million images is embedded by many workers at once,
and its vectors should not have to pass through one process or one database writer. Each worker writes
its own shard (``<name>.npy``, float32 rows, then ``<name>.keys``, one content hash a line; the keys file
is written last, atomically, so a shard without one is unfinished and ignored). A reader maps every
finished shard with ``numpy.load(mmap_mode="r")``: only the rows a split asks for are read from disk.

Layout: ``<cache folder>/shards/<sha256(namespace)[:16]>/`` with a ``namespace.txt`` naming what the
vectors are (backbone identity and preprocessing), next to the SQLite embedding cache file.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from visfeed.errors import CacheError, EmbeddingError
from visfeed.fileio import write_atomic, write_text_atomic

SHARDS_DIR = "shards"


def shard_folder(cache_file: str | Path, namespace: str) -> Path:
    """The folder of ``namespace``'s shards beside the SQLite cache file ``cache_file``."""
    digest = hashlib.sha256(namespace.encode("utf-8")).hexdigest()[:16]
    return Path(cache_file).parent / SHARDS_DIR / digest


def write_shard(folder: Path, namespace: str, keys: Sequence[str], vectors: np.ndarray) -> Path:
    """Write one finished shard (vectors first, keys last) and return its keys file; a rerun rewrites it."""
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != len(keys) or not np.isfinite(arr).all():
        raise EmbeddingError(f"a shard needs {len(keys)} finite rows, got an array of shape {arr.shape}")
    folder.mkdir(parents=True, exist_ok=True)
    label = folder / "namespace.txt"
    if not label.is_file():
        write_text_atomic(label, namespace + "\n")
    name = hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()[:16]
    write_atomic(folder / f"{name}.npy", lambda f: np.save(f, arr))
    return write_text_atomic(folder / f"{name}.keys", "\n".join(keys) + "\n")


class ShardReader:
    """Key -> row lookups over every finished shard of one namespace, memory-mapped, refreshed on demand."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._where: dict[str, tuple[int, int]] = {}
        self._arrays: list[np.ndarray] = []
        self._seen: set[str] = set()

    def _refresh(self) -> None:
        """Map the shards finished since the last look (a shard is finished once its keys file exists)."""
        if not self.folder.is_dir():
            return
        for keys_file in sorted(self.folder.glob("*.keys")):
            if keys_file.name in self._seen:
                continue
            try:
                keys = keys_file.read_text(encoding="utf-8").split()
                arr = np.load(keys_file.with_suffix(".npy"), mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise CacheError(f"unreadable embedding shard {keys_file.with_suffix('.npy')}: {exc}") from exc
            if arr.ndim != 2 or arr.shape[0] != len(keys) or arr.dtype != np.float32:
                raise CacheError(f"embedding shard {keys_file} does not match its vectors; delete both files")
            self._seen.add(keys_file.name)
            self._arrays.append(arr)
            index = len(self._arrays) - 1
            self._where.update((k, (index, row)) for row, k in enumerate(keys))

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors found for ``keys`` (rows of memory-mapped shards; missing keys are absent)."""
        with self._lock:
            wanted = list(keys)
            if any(k not in self._where for k in wanted):
                self._refresh()
            found: dict[str, np.ndarray] = {}
            for k in wanted:
                loc = self._where.get(k)
                if loc is not None:
                    found[k] = self._arrays[loc[0]][loc[1]]
            return found

    def __len__(self) -> int:
        with self._lock:
            self._refresh()
            return len(self._where)
