"""Safe persistence: atomic file writes (a reader sees the old file or the new one) and WAL SQLite files."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object], *, mode: int | None = None) -> Path:
    """Let ``write`` fill a temporary file in the same folder, fsync it, then rename it over ``path``.

    A reader sees the old file or the new one, never a torn one; on any failure the temporary file is
    removed. ``mode`` sets permissions first (temporary files are private, 0600, by default).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Bytes version of :func:`write_atomic`."""
    return write_atomic(path, lambda f: f.write(data))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """UTF-8 text version of :func:`write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Pretty JSON version of :func:`write_bytes_atomic` (non-ASCII kept readable)."""
    return write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def connect_sqlite(path: str | Path, schema: str, *, timeout_s: float) -> sqlite3.Connection:
    """Open (creating) a SQLite file in WAL mode with ``schema`` applied.

    WAL plus one transaction per write is what makes the caches crash-safe and shareable between two
    processes; raises ``sqlite3.Error`` or ``OSError`` for the caller to turn into a message naming the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=timeout_s, check_same_thread=False)
    _enable_wal(conn, timeout_s)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(schema)
    conn.commit()
    return conn


def _enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch to WAL, waiting out another process that is creating the same file.

    SQLite answers "database is locked" to this pragma at once, without its busy timeout, while a second
    connection holds the new file's lock, so two processes opening one new cache together need the wait here.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB blocks (keys caches by content, not by path)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
