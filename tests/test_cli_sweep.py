"""``visfeed sweep`` and ``visfeed embed`` through the CLI: bad specs (exit 2, naming cell and field), a tiny
sweep end to end and again (everything skipped), Ray absent from the default install."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from support.tiny_world import COLOURS, write_images, write_model
from visfeed.agents.sweep import LocalExecutor
from visfeed.agents.sweep.cells import EXECUTOR_FILE
from visfeed.cli import app
from visfeed.cli.common import console, out
from visfeed.state.rundir import load_result, read_trace
from visfeed.state.sweep import expand, load_spec

runner = CliRunner()
out.width = console.width = 250


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    base = tmp_path_factory.mktemp("cli-sweep")
    return {"base": base, "images": write_images(base / "images"), "backbone": write_model(base / "model")}


def spec_file(world: dict, name: str = "spec.yaml", **changes: object) -> Path:
    spec = {
        "name": "tiny",
        "datasets": [{"name": "shapes", "dataset": "imagefolder", "root": "images"}],
        "backbones": [{"name": "tiny", "backbone": world["backbone"]}],
        "providers": ["support.scripted_provider:make"],
        "seeds": [3],
        "config": {"k_shot": 3, "max_iterations": 1, "n_init": 4, "device": "cpu", "mutate_scope": "all",
                   "embedding_cache": "emb.sqlite"},
    }  # fmt: skip
    spec.update(changes)
    path = world["base"] / name
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"datasets": [{"name": "shapes", "rooot": "images"}]}, "datasets.0.rooot: unknown field"),
        ({"seeds": []}, "seeds: List should have at least 1 item"),
        ({"backbones": [{"name": "t", "set": {"patience": 0}}]}, "cell shapes__t__support.scripted_provider-make__s3"),
        ({"config": {"seed": 1}}, "config: the grid axes"),
        ({"methods": ["optimised"]}, "methods.0: Input should be"),
        (
            {
                "datasets": [
                    {"name": "s", "dataset": "imagefolder", "root": "images", "descriptions": {"names": "d.json"}}
                ]
            },
            "the built-in methods' rows",
        ),
        (
            {
                "datasets": [
                    {"name": "s", "dataset": "imagefolder", "root": "images", "descriptions": {"p": "nope.json"}}
                ]
            },
            "nope.json does not exist",
        ),
    ],
)
def test_a_bad_spec_is_a_usage_error_naming_the_field(world: dict, changes: dict, expected: str) -> None:
    res = runner.invoke(app, ["sweep", str(spec_file(world, "bad.yaml", **changes)), "-o", str(world["base"] / "bad")])
    assert res.exit_code == 2, res.output
    assert expected in res.output
    if "cell" in expected:
        assert "patience" in res.output
    assert not (world["base"] / "bad").exists()  # nothing written


def test_a_missing_spec_file_is_a_usage_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["sweep", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "nope.yaml does not exist" in res.output


def test_ray_missing_is_a_usage_error_that_says_how_to_install(world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    res = runner.invoke(app, ["sweep", str(spec_file(world)), "--ray", "-o", str(world["base"] / "noray")])
    assert res.exit_code == 2 and "pip install 'visfeed[ray]'" in res.output
    assert not (world["base"] / "noray").exists()


def test_the_default_install_never_imports_ray() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from visfeed.cli import app; "
        "import visfeed.agents.sweep, visfeed.tools.embedding.job, visfeed.evals.sweep_report; "
        "r = CliRunner().invoke(app, ['sweep', '--help']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip() == "[]"


def test_sweep_runs_summarizes_and_skips_done_cells_when_run_again(world: dict) -> None:
    spec = spec_file(world)
    target = world["base"] / "sweep"
    res = runner.invoke(app, ["sweep", str(spec), "-o", str(target), "-q"])
    assert res.exit_code == 0, res.output
    assert "shapes__tiny__support.scripted_provider-make__s3: completed" in res.output
    summary = json.loads((target / "summary.json").read_text())
    assert summary["columns"] == ["shapes × tiny"]
    assert summary["accuracy"]["optimized"]["shapes × tiny"]["n"] == 1
    assert (target / "summary.csv").read_text().startswith("row,column,mean,std,n")
    assert 'class="plot"' in (target / "summary.html").read_text()
    assert (target / "sweep.yaml").read_text() == spec.read_text()
    res = runner.invoke(app, ["sweep", str(spec), "-o", str(target), "-q"])
    assert res.exit_code == 0 and "completed (already done)" in res.output
    res = runner.invoke(app, ["sweep", str(spec_file(world, "changed.yaml", seeds=[3], config={
        "k_shot": 2, "max_iterations": 1, "n_init": 4, "device": "cpu", "mutate_scope": "all",
        "embedding_cache": "emb.sqlite"})), "-o", str(target), "-q"])  # fmt: skip
    assert res.exit_code == 2 and "k_shot: 3 -> 2" in res.output


def test_published_sets_are_rows_scored_on_each_cells_test_split_as_eval_scores_them(world: dict) -> None:
    (world["base"] / "pub.json").write_text(json.dumps({c: [f"a {c} disc", "round"] for c in COLOURS}))
    shapes = {"name": "shapes", "dataset": "imagefolder", "root": "images", "descriptions": {"pub": "dclip:pub.json"}}
    spec = spec_file(world, "published.yaml", datasets=[shapes])
    target = world["base"] / "published"
    res = runner.invoke(app, ["sweep", str(spec), "-o", str(target), "-q"])
    assert res.exit_code == 0, res.output
    summary = json.loads((target / "summary.json").read_text())
    assert summary["methods"][-1] == "pub" and summary["accuracy"]["pub"]["shapes × tiny"]["n"] == 1
    scored = world["base"] / "pub-eval.json"
    source = f"dclip:{world['base'] / 'pub.json'}"
    res = runner.invoke(app, ["eval", "-d", "imagefolder", "--root", str(world["images"]), "--backbone",
                              str(world["backbone"]), "--seeds", "3", "--set", "data.k_shot=3", "--set", "backbone.device=cpu",
                              "--set", f"backbone.embedding_cache={world['base'] / 'emb.sqlite'}", "-D", source,
                              "--out", str(scored)])  # fmt: skip
    assert res.exit_code == 0, res.output
    expected = json.loads(scored.read_text())["methods"][source]["mean"]
    assert summary["accuracy"]["pub"]["shapes × tiny"]["mean"] == pytest.approx(expected)
    cell = next((target / "cells").iterdir())
    before = (cell / "published.json").stat().st_mtime_ns
    res = runner.invoke(app, ["sweep", str(spec), "-o", str(target), "-q"])  # done cell, set already scored
    assert res.exit_code == 0 and (cell / "published.json").stat().st_mtime_ns == before


def test_embed_fills_the_cache_then_finds_everything_cached(world: dict) -> None:
    args = ["embed", "-d", "imagefolder", "--root", str(world["images"]), "--backbone", str(world["backbone"]),
            "--split", "all", "--shard-size", "8", "--set", "backbone.device=cpu",
            "--set", f"backbone.embedding_cache={world['base'] / 'embed.sqlite'}"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "30 images (all): 30 embedded in 4 shard(s)" in res.output
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "0 embedded in 0 shard(s)" in res.output and "30 already cached" in res.output


def test_a_cell_that_cannot_start_fails_the_sweep_with_exit_1_and_a_resume_hint(world: dict) -> None:
    spec = spec_file(world, "broken.yaml", providers=["support.scripted_provider:no_such_factory"])
    target = world["base"] / "broken"
    res = runner.invoke(app, ["sweep", str(spec), "-o", str(target), "-q"])
    assert res.exit_code == 1, res.output
    assert "no_such_factory" in res.output and "1 cell(s) did not finish" in res.output
    assert f"visfeed sweep {spec} --out {target}" in res.output.replace("\n", "")
    assert json.loads((target / "summary.json").read_text())["accuracy"]["optimized"]


def test_a_local_worker_killed_mid_cell_is_reported_and_the_next_sweep_resumes_it(
    world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_spec(spec_file(world, "killed.yaml"))
    (cell,) = expand(spec, world["base"] / "killed", base=world["base"])
    monkeypatch.setenv("VISFEED_TEST_LLM_DELAY", "0.3")  # the spawned worker answers slowly enough to be killed
    killed: list[int] = []

    def kill_after_first_call() -> None:
        while not killed:
            if read_trace(cell.run_dir, events={"llm_call"}):
                pid = json.loads((cell.run_dir / EXECUTOR_FILE).read_text())["attempts"][0]["pid"]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    threading.Thread(target=kill_after_first_call, daemon=True).start()
    (first,) = LocalExecutor(spec.limits).run([cell], lambda o: None)
    assert killed and first.status.startswith("failed: worker died")
    assert load_result(cell.run_dir).status == "running"  # the run itself never got to say anything
    (second,) = LocalExecutor(spec.limits).run([cell], lambda o: None)
    assert second.status == "completed" and not second.skipped
    assert read_trace(cell.run_dir, events={"resume"})
