import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from visfeed.errors import CacheError, EmbeddingError
from visfeed.tools.embedding.cache import EmbeddingCache, text_key

WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from visfeed.tools.embedding.cache import EmbeddingCache
    cache = EmbeddingCache(sys.argv[1])
    tag, n = sys.argv[2], int(sys.argv[3])
    for i in range(n):
        # the vector encodes its own key, so a reader can tell a right vector from a wrong one
        items = {f"{tag}-{i}-{j}": np.full(64, float(i * 1000 + j), dtype=np.float32) for j in range(50)}
        cache.put_many("ns", items)
    print("done", flush=True)
    """
)


def _check_rows(path: Path) -> int:
    cache = EmbeddingCache(path)
    rows = cache._conn.execute("SELECT key FROM embeddings").fetchall()
    keys = [r[0] for r in rows]
    found = cache.get_many("ns", keys)
    for key, vec in found.items():
        _, i, j = key.rsplit("-", 2)
        assert vec.shape == (64,)
        assert np.all(vec == float(int(i) * 1000 + int(j))), key
    return len(keys)


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "emb.sqlite"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, "40"], stdout=subprocess.PIPE, text=True)
        for tag in ("a", "b")
    ]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0 and "done" in out
    assert _check_rows(path) == 2 * 40 * 50


def test_killed_writer_never_leaves_wrong_vectors(tmp_path: Path) -> None:
    path = tmp_path / "emb.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "k", "100000"])
    deadline = time.time() + 60
    while time.time() < deadline and (not path.exists() or EmbeddingCache(path).count() < 500):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n = _check_rows(path)
    assert n >= 500 and n % 50 == 0  # whole transactions only
    cache = EmbeddingCache(path)
    cache.put_many("ns", {"after-0-0": np.zeros(64, dtype=np.float32)})  # still writable
    assert cache.count() == n + 1


def test_refuses_bad_vectors_and_detects_corruption(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "emb.sqlite")
    with pytest.raises(EmbeddingError, match="non-finite"):
        cache.put_many("ns", {"x": np.array([np.nan, 1.0])})
    with pytest.raises(EmbeddingError, match="mixed dimensions"):
        cache.put_many("ns", {"x": np.ones(3), "y": np.ones(4)})
    assert cache.count() == 0
    cache.put_many("ns", {text_key("hello"): np.ones(4)})
    cache._conn.execute("UPDATE embeddings SET dim = 5")
    cache._conn.commit()
    fresh = EmbeddingCache(tmp_path / "emb.sqlite")
    with pytest.raises(CacheError, match="corrupt row"):
        fresh.get_many("ns", [text_key("hello")])


def test_unopenable_cache_names_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CacheError, match="file/emb.sqlite"):
        EmbeddingCache(blocker / "emb.sqlite")
