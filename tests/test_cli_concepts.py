"""``visfeed concepts`` end to end on a tiny ImageFolder world: build (scripted LLM), fit, explain, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.support.browser import render
from typer.testing import CliRunner

from support.tiny_world import tiny_world
from visfeed.cli import app
from visfeed.cli.common import console, out

runner = CliRunner()
out.width = console.width = 250
PROVIDER = "support.scripted_provider:make"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    return tiny_world(tmp_path_factory.mktemp("concepts"))


def data_args(world: dict) -> list[str]:
    return ["-d", "imagefolder", "--root", str(world["images"]), "--seed", "1",
            "--set", "backbone.device=cpu", "--set", f"backbone.embedding_cache={world['cache']}", "--set", "data.k_shot=3"]  # fmt: skip


@pytest.fixture(scope="module")
def built(world: dict) -> Path:
    folder = world["base"] / "tree"
    res = runner.invoke(
        app,
        ["concepts", "build", "-o", str(folder), "-p", PROVIDER, "--domain", "fruit", "--backbone", world["backbone"],
         *data_args(world)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "clues on parts" in res.output and "dropped" in res.output and "values by origin" in res.output
    return folder


@pytest.fixture(scope="module")
def fitted(world: dict, built: Path) -> Path:
    folder = world["base"] / "model"
    res = runner.invoke(
        app,
        ["concepts", "fit", "--tree", str(built / "tree.json"), "-o", str(folder), "--backbone", world["backbone"],
         *data_args(world)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return folder


def test_build_writes_an_editable_tree_and_a_trace(built: Path) -> None:
    tree = json.loads((built / "tree.json").read_text())
    assert tree["classnames"] == ["cherry", "lemon", "lime"] and tree["values"]
    build = json.loads((built / "build.json").read_text())
    assert build["clues"] == len(tree["values"]) and build["llm"]["calls"] > 0
    # grounded by default: every (class, part, attribute) value says where it came from
    assert build["grounded"] and build["structure"] == "llm" and sum(build["origins"].values()) == len(tree["sources"])
    assert {s["origin"] for s in tree["sources"]} <= {"images", "both", "llm_overruled"}
    res = runner.invoke(app, ["trace", str(built), "--event", "llm_call"])
    assert res.exit_code == 0 and "value:" in res.output


def test_fit_scores_models_and_baselines(fitted: Path) -> None:
    scores = json.loads((fitted / "scores.json").read_text())
    assert {m["classifier"] for m in scores["models"]} == {"part_vote", "logistic", "forest"}
    assert all(m["test_accuracy"] is not None and 1 <= m["n_selected"] <= m["n_features"] for m in scores["models"])
    assert "Values and where they came from" in (fitted / "report.html").read_text()  # the grounded tree's origins
    assert set(scores["baselines"]) == {"zero_shot_names", "zero_shot_templates", "linear_probe"}
    assert (fitted / "model.joblib").is_file() and (fitted / "report.html").is_file()


def test_explain_prints_and_writes_clues(world: dict, fitted: Path, tmp_path: Path) -> None:
    image = next((Path(world["images"]) / "lime").glob("*.png"))
    res = runner.invoke(
        app, ["concepts", "explain", str(image), "-m", str(fitted), "--json", str(tmp_path / "why.json")]
    )
    assert res.exit_code == 0, res.output
    why = json.loads((tmp_path / "why.json").read_text())
    assert why[0]["image"] == str(image) and why[0]["predicted"] in {"cherry", "lemon", "lime"}
    assert why[0]["predicted"] in res.output
    assert all(c["clue"] in res.output for c in why[0]["for_predicted"])


def test_bad_input_exits_2_and_writes_nothing(world: dict, built: Path, fitted: Path, tmp_path: Path) -> None:
    target = tmp_path / "never"
    cases = [
        ["concepts", "fit", "--tree", str(built / "tree.json"), "-o", str(target), "--source", "pixels"],
        ["concepts", "fit", "-o", str(target), "--source", "descriptions", "--backbone", world["backbone"], *data_args(world)],
        ["concepts", "explain", str(tmp_path / "missing.png"), "-m", str(fitted)],
        ["concepts", "explain", str(next((Path(world["images"]) / "lime").glob("*.png"))), "-m", str(target)],
        ["concepts", "build", "-o", str(built), "-p", PROVIDER, *data_args(world)],
    ]  # fmt: skip
    for args in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert "error:" in res.output
    assert not target.exists()
    other = json.loads((built / "tree.json").read_text()) | {"classnames": ["plum", "fig", "kiwi"], "values": []}
    (tmp_path / "other.json").write_text(json.dumps(other))
    res = runner.invoke(app, ["concepts", "fit", "--tree", str(tmp_path / "other.json"), "-o", str(target),
                              "--backbone", world["backbone"], *data_args(world)])  # fmt: skip
    assert res.exit_code == 2 and "other classes" in res.output and not target.exists()


def test_concept_report_renders_in_headless_chromium(fitted: Path, tmp_path: Path) -> None:
    img, dom = render(fitted / "report.html", tmp_path, height=3000)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50
    assert 'data-plots-loaded="5"' in dom  # tree, parts, attributes, clues, confusion
    assert 'id="plot-tree"' in dom and "Most confused pairs" in dom
    assert "Values and where they came from" in dom


def test_a_hand_edited_tree_is_fitted_again(world: dict, built: Path, tmp_path: Path) -> None:
    tree = json.loads((built / "tree.json").read_text())
    tree["values"][0]["value"] = "violet"  # a person fixes a value the LLM got wrong
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(tree))
    folder = tmp_path / "refit"
    res = runner.invoke(app, ["concepts", "fit", "--tree", str(edited), "-o", str(folder), "--no-selection",
                              "--classifier", "logistic", "--backbone", world["backbone"], *data_args(world)])  # fmt: skip
    assert res.exit_code == 0, res.output
    clues = json.loads((folder / "scores.json").read_text())["explained"]["importance"]
    assert any(c.endswith(" is violet") for c in clues) and len(clues) == len(tree["values"])
