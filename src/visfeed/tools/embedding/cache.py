"""On-disk embedding cache shared by runs and processes.

SQLite in WAL mode gives what the cache must guarantee without hand-written locking: a write is one
transaction, so an interrupted write leaves either the old or the new rows (never a torn vector), and two
processes may write at once (the loser waits on the busy timeout). Every row stores its dimension and the
vector's byte length is checked on read, so a row can never be returned as a wrong-sized vector.

Vectors that ``visfeed embed`` wrote as shards beside the file (:mod:`visfeed.tools.embedding.shards`) are found
too, memory-mapped, before the database is asked.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from visfeed.errors import CacheError, EmbeddingError
from visfeed.fileio import connect_sqlite, sha256_file
from visfeed.tools.embedding.shards import ShardReader, shard_folder

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID
"""


def text_key(text: str) -> str:
    """Cache key of an exact text (sha256, so long descriptions make short keys)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_key(path: str | Path) -> str:
    """Cache key of a file's content: the same image under two paths is embedded once."""
    return sha256_file(path)


class EmbeddingCache:
    """Float32 vectors keyed by (namespace, key) in one SQLite file.

    The namespace carries everything that changes a vector (backbone, weights, preprocessing), the key
    the input (text or image content hash). Reads hit an in-process dict first.
    """

    def __init__(self, path: str | Path, *, timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        try:
            self._conn = connect_sqlite(self.path, _SCHEMA, timeout_s=timeout_s)
        except (sqlite3.Error, OSError) as exc:
            raise CacheError(f"cannot open the embedding cache {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        self._memory: dict[tuple[str, str], np.ndarray] = {}
        self._shards: dict[str, ShardReader] = {}

    def shards(self, namespace: str) -> ShardReader:
        """The memory-mapped shards of ``namespace`` (empty until ``visfeed embed`` writes some)."""
        reader = self._shards.get(namespace)
        if reader is None:
            reader = self._shards[namespace] = ShardReader(shard_folder(self.path, namespace))
        return reader

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors found for ``keys`` (missing keys are simply absent from the result)."""
        found: dict[str, np.ndarray] = {}
        todo: list[str] = []
        for k in dict.fromkeys(keys):
            vec = self._memory.get((namespace, k))
            if vec is None:
                todo.append(k)
            else:
                found[k] = vec
        if todo:
            sharded = self.shards(namespace).get_many(todo)
            found.update(sharded)
            todo = [k for k in todo if k not in sharded]
        with self._lock:
            for start in range(0, len(todo), 500):
                part = todo[start : start + 500]
                marks = ",".join("?" * len(part))
                try:
                    rows = self._conn.execute(
                        f"SELECT key, dim, vec FROM embeddings WHERE namespace = ? AND key IN ({marks})",
                        [namespace, *part],
                    ).fetchall()
                except sqlite3.Error as exc:
                    raise CacheError(f"cannot read the embedding cache {self.path}: {exc}") from exc
                for key, dim, blob in rows:
                    if len(blob) != 4 * dim:
                        raise CacheError(
                            f"embedding cache {self.path} has a corrupt row ({namespace}, {key}); delete the file"
                        )
                    vec = np.frombuffer(blob, dtype=np.float32)
                    self._memory[(namespace, key)] = vec
                    found[key] = vec
        return found

    def put_many(self, namespace: str, items: Mapping[str, np.ndarray]) -> None:
        """Store vectors in one transaction after checking they are finite, 1-D and of one dimension."""
        if not items:
            return
        rows = []
        dims = set()
        for k, vec in items.items():
            arr = np.ascontiguousarray(vec, dtype=np.float32)
            if arr.ndim != 1 or not np.isfinite(arr).all():
                raise EmbeddingError(f"refusing to cache a non-finite or non-1-D embedding for key {k}")
            dims.add(arr.shape[0])
            rows.append((namespace, k, arr.shape[0], arr.tobytes()))
        if len(dims) != 1:
            raise EmbeddingError(f"refusing to cache embeddings of mixed dimensions {sorted(dims)}")
        with self._lock:
            try:
                with self._conn:
                    self._conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", rows)
            except sqlite3.Error as exc:
                raise CacheError(f"cannot write the embedding cache {self.path}: {exc}") from exc
            for ns, k, _, blob in rows:
                self._memory[(ns, k)] = np.frombuffer(blob, dtype=np.float32)

    def count(self, namespace: str | None = None) -> int:
        """Number of stored vectors (in one namespace, or all)."""
        with self._lock:
            if namespace is None:
                row = self._conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()
            else:
                row = self._conn.execute("SELECT COUNT(*) FROM embeddings WHERE namespace = ?", [namespace]).fetchone()
        return int(row[0])
