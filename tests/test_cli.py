import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from support.tiny_world import tiny_world
from visfeed.cli import app
from visfeed.cli.common import console, out

runner = CliRunner()
out.width = console.width = 250  # rich would wrap table cells at the runner's default 80 columns
PROVIDER = "support.scripted_provider:make"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    return tiny_world(tmp_path_factory.mktemp("cli"))


def optimize_args(world: dict, run_dir: Path, *extra: str) -> list[str]:
    return [
        "optimize", "-q", "-d", "imagefolder", "--root", str(world["images"]), "--backbone", world["backbone"],
        "-p", PROVIDER, "--run-dir", str(run_dir), "--k-shot", "3", "--max-iterations", "2", "--seed", "1",
        "--set", "method.n_init=4", "--set", "backbone.device=cpu", "--set", f"backbone.embedding_cache={world['cache']}",
        "--set", "method.mutate_scope=all", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(world: dict) -> Path:
    run_dir = world["base"] / "runs" / "r1"
    res = runner.invoke(app, optimize_args(world, run_dir))
    assert res.exit_code == 0, res.output
    return run_dir


def test_optimize_writes_a_complete_run_directory(finished_run: Path) -> None:
    for name in (
        "config.yaml",
        "checkpoints.sqlite",
        "trace.jsonl",
        "descriptions.json",
        "result.json",
        "evaluation.json",
    ):
        assert (finished_run / name).is_file(), name
    result = json.loads((finished_run / "result.json").read_text())
    assert result["status"] == "completed"
    assert set(result["baselines"]) == {
        "names", "templates", "llm_oneshot", "waffle", "visual_words", "searched_words", "proapo", "proapo_words",
        "image_prototypes",
        "linear_probe",
    }  # fmt: skip
    image_line = {k for k, v in result["baselines"].items() if v["uses_images"]}
    assert image_line == {"image_prototypes", "linear_probe"}
    assert all(result["baselines"][m]["test_accuracy"] is not None for m in image_line)
    assert result["optimized"]["test_accuracy"] is not None
    assert len(result["history"]) >= 1


def test_runs_trace_and_lineage(finished_run: Path) -> None:
    res = runner.invoke(app, ["runs", str(finished_run.parent)])
    assert res.exit_code == 0 and "completed" in res.output and "r1" in res.output
    size_mb = (finished_run / "checkpoints.sqlite").stat().st_size / 1e6
    assert "checkpoints" in res.output and f"{size_mb:.1f} MB" in res.output
    res = runner.invoke(app, ["trace", str(finished_run)])
    assert res.exit_code == 0
    assert "node_start" in res.output and "llm_call" in res.output and "feedback accuracy" in res.output
    res = runner.invoke(app, ["trace", str(finished_run), "--node", "mutate", "-i", "0"])
    assert res.exit_code == 0 and "initialize" not in res.output
    res = runner.invoke(app, ["trace", str(finished_run), "--messages", "--event", "llm_call"])
    assert res.exit_code == 0 and "response" in res.output and "Class:" in res.output
    res = runner.invoke(app, ["trace", str(finished_run), "--class", "lime"])
    assert res.exit_code == 0 and "lineage of 'lime'" in res.output
    assert any(source in res.output for source in ("oneshot", "words", '"lime"')), res.output  # its items at 0
    res = runner.invoke(app, ["trace", str(finished_run), "--class", "durian"])
    assert res.exit_code == 2 and "durian" in res.output


def test_a_finished_run_can_keep_only_its_last_checkpoint(world: dict, tmp_path: Path) -> None:
    run_dir = tmp_path / "kept"
    res = runner.invoke(app, [*optimize_args(world, run_dir), "--max-iterations", "1"])
    assert res.exit_code == 0, res.output
    before = (run_dir / "checkpoints.sqlite").stat().st_size
    res = runner.invoke(app, ["resume", "-q", str(run_dir), "--keep-checkpoints", "last"])
    assert res.exit_code == 0 and "kept the last" in res.output, res.output
    con = sqlite3.connect(run_dir / "checkpoints.sqlite")
    try:
        assert con.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 1
    finally:
        con.close()
    assert (run_dir / "checkpoints.sqlite").stat().st_size < before
    res = runner.invoke(app, ["resume", "-q", str(run_dir), "--keep-checkpoints", "keep-some"])
    assert res.exit_code == 2 and "keep-some" in res.output


def test_report_and_export_round_trip(finished_run: Path, world: dict, tmp_path: Path) -> None:
    res = runner.invoke(app, ["report", str(finished_run)])
    assert res.exit_code == 0, res.output
    html = (finished_run / "report.html").read_text()
    assert html.count('class="plot"') == 3 and "llm_oneshot" in html
    exported = tmp_path / "best.json"
    res = runner.invoke(app, ["export", str(finished_run), "--out", str(exported)])
    assert res.exit_code == 0
    cupl = json.loads(exported.read_text())
    assert set(cupl) == {"cherry", "lime", "lemon"} and all(cupl.values())
    # scored again through `visfeed eval` on the same split, it gives the run's own test accuracy
    scored = tmp_path / "eval.json"
    res = runner.invoke(app, [
        "eval", "-D", str(exported), "-d", "imagefolder", "--root", str(world["images"]), "--backbone",
        world["backbone"], "--seeds", "1", "--set", "data.k_shot=3", "--set", "backbone.device=cpu",
        "--set", f"backbone.embedding_cache={world['cache']}", "--out", str(scored),
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    methods = json.loads(scored.read_text())["methods"]
    result = json.loads((finished_run / "result.json").read_text())
    assert methods[str(exported)]["mean"] == pytest.approx(100 * result["optimized"]["test_accuracy"])
    assert methods["names"]["mean"] == pytest.approx(100 * result["baselines"]["names"]["test_accuracy"])
    # the image line too: fitted on the same feedback images, so the same figure
    probe = 100 * result["baselines"]["image_prototypes"]["test_accuracy"]
    assert methods["image_prototypes (labelled images)"]["mean"] == pytest.approx(probe)


def test_usage_errors_exit_2_and_write_nothing(world: dict, tmp_path: Path) -> None:
    run_dir = tmp_path / "bad"
    cases = [
        (["--set", "lam=1.5"], "lam"),
        (["--set", "no_such_field=1"], "no_such_field"),
        (["--set", "oops"], "KEY=VALUE"),
        (["-p", "no_such_provider"], "no_such_provider"),
    ]
    for extra, needle in cases:
        res = runner.invoke(app, optimize_args(world, run_dir, *extra))
        assert res.exit_code == 2, (extra, res.output)
        assert needle in res.output
        assert not run_dir.exists()
    res = runner.invoke(app, ["optimize", "-q", "-d", "imagefolder", "--root", str(tmp_path / "missing"),
                              "--run-dir", str(run_dir)])  # fmt: skip
    assert res.exit_code == 2 and "missing" in res.output and not run_dir.exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = runner.invoke(app, optimize_args(world, blocker / "run"))
    assert res.exit_code == 2 and "is a file" in res.output
    for cmd in (
        ["resume", str(tmp_path)],
        ["report", str(tmp_path)],
        ["export", str(tmp_path)],
        ["trace", str(tmp_path)],
    ):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 2 and "not a run directory" in res.output
    res = runner.invoke(app, ["eval", "-D", str(tmp_path / "none.json")])
    assert res.exit_code == 2 and "none.json" in res.output


def test_every_command_has_help_with_examples() -> None:
    for cmd in ("optimize", "resume", "runs", "trace", "eval", "report", "export", "datasets", "world"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output, cmd
    assert "visfeed optimize -c run.yaml" in runner.invoke(app, ["optimize", "--help"]).output
    res = runner.invoke(app, ["datasets"])
    assert res.exit_code == 0 and "flowers102" in res.output
