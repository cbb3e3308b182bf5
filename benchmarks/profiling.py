"""cProfile output shared by the scale benchmarks: the raw profile and a text summary beside it."""

from __future__ import annotations

import cProfile
import io
import pstats
from pathlib import Path


def write_profile(prof: cProfile.Profile, path: Path) -> None:
    """The raw profile (``.prof``, for snakeviz/pstats) and its top functions by own and cumulative time (``.txt``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prof.dump_stats(str(path))
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs()
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(60)
    path.with_suffix(".txt").write_text(buf.getvalue(), encoding="utf-8")
