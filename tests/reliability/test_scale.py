"""Scale, small: benchmarks/scale.py on 200 classes for one iteration, in its own process.

The full figures (1,000 classes) come from the benchmark itself; this test keeps the properties that
make them possible: memory that does not grow with the run beyond a bound, a graph state of a few
kilobytes per class (no embeddings in checkpoints), and checkpoint growth per iteration that stays in
proportion to the state rather than compounding.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_200_class_run_keeps_memory_and_checkpoints_bounded(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--classes", "200", "--iterations", "1",
           "--k-shot", "2", "--workdir", str(tmp_path), "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    fig = json.loads(out.read_text())
    assert fig["status"] == "completed" and fig["iterations_done"] == 1
    assert fig["feedback_accuracy"][-1] > fig["feedback_accuracy"][0]
    # memory: what the run adds on top of the imports stays small
    assert fig["peak_rss_mb"] - fig["rss_before_run_mb"] < 400, fig
    # state: texts and counters only, a few kB per class
    assert fig["state_json_bytes_final"] < 8_000 * fig["classes"], fig
    marks = fig["per_iteration"]
    assert [m["iteration"] for m in marks] == [0, 1]
    for m in marks:
        assert m["max_checkpoint_bytes"] < 1.5 * m["state_json_bytes"] + 65_536, m
    # checkpoints: each iteration adds about one state per graph step, not more
    growth = [b["checkpoint_data_bytes"] - a["checkpoint_data_bytes"] for a, b in itertools.pairwise(marks)]
    for g, m in zip(growth, marks[1:], strict=True):
        assert 0 < g < 16 * m["max_checkpoint_bytes"], (growth, marks)
    assert fig["checkpoint_db_bytes_final"] < 20 * fig["state_json_bytes_final"] * (fig["iterations_done"] + 1)
