"""``visfeed eval --image-side`` against a loopback OpenAI-compatible server: one table, cache, clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.support.fault_server import Action, FaultServer, reply, status
from typer.testing import CliRunner

from support.tiny_world import write_images, write_model
from visfeed.cli import app
from visfeed.cli.common import console, out

runner = CliRunner()
out.width = console.width = 250

NO_CLASS_SIDE = {
    "searched_words",
    "proapo",
    "proapo_words",
    "image_prototypes (labelled images)",
    "linear_probe (labelled images)",
}
"""Rows of eval with no class prompts to fuse with the MLLM's answers."""


def answers(label: str, description: str) -> Callable[[dict[str, Any]], Action]:
    """A vision server that says ``description`` of every picture and guesses ``label`` under the schema."""

    def respond(body: dict[str, Any]) -> Action:
        if "response_format" in body:  # the label question, constrained to the class names
            return reply(json.dumps({"label": label}))
        return reply(description)

    return respond


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("image-side")
    return {
        "images": str(write_images(base / "images", per_class=6)),
        "backbone": write_model(base / "model"),
        "cache": str(base / "emb.sqlite"),
        "llm_cache": str(base / "mllm.sqlite"),
    }


def _eval(
    world: dict[str, str],
    url: str,
    to: Path,
    side: str = "image,description,label",
    *,
    cache: Path | None = None,
    mllm: str = "openai-compatible:vision-1",
    weights: str = "equal",
) -> list[str]:
    return [
        "eval", "-d", "imagefolder", "--root", world["images"], "--backbone", world["backbone"], "--seeds", "0",
        "--set", "data.k_shot=2", "--set", "backbone.device=cpu", "--set", f"backbone.embedding_cache={world['cache']}",
        "--set", f"llm.cache_file={cache or world['llm_cache']}", "--image-side", side, "--image-weights", weights,
        "--mllm", mllm, "--mllm-base-url", url, "--out", str(to),
    ]  # fmt: skip


def test_eval_fuses_every_method_and_a_second_eval_makes_no_call(
    world: dict[str, str], fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.answer_by_body = answers("lemon", "a lemon")  # every picture is "a lemon", by description and by label
    res = runner.invoke(app, _eval(world, fault_server.url, tmp_path / "a.json"))
    assert res.exit_code == 0, res.output
    sent = fault_server.request_count
    data = json.loads((tmp_path / "a.json").read_text())
    n_test = sent // 2  # one description and one label question per test picture
    assert sent == 2 * n_test and n_test > 0
    for method in ("names", "templates", "waffle"):
        row = data["methods"][method]
        assert row["fused"]["side"] == "image+description+label" and 0 <= row["fused"]["mean"] <= 100
    # the guess names the true class exactly for the lemon pictures: a third of a balanced test split
    assert data["image_side"]["label_accuracy_per_seed"] == [pytest.approx(100 / 3)]
    assert "image+description+label mean" in res.output and "label accuracy: 33.3" in res.output
    assert "at most" in res.output  # the projected cost came first
    # the same eval again: every answer comes from the response cache
    res = runner.invoke(app, _eval(world, fault_server.url, tmp_path / "b.json"))
    assert res.exit_code == 0, res.output
    assert fault_server.request_count == sent and "calls sent 0" in res.output
    assert json.loads((tmp_path / "b.json").read_text())["methods"] == data["methods"]


def test_image_alone_asks_nothing_and_equals_the_plain_score(
    world: dict[str, str], fault_server: FaultServer, tmp_path: Path
) -> None:
    res = runner.invoke(app, _eval(world, fault_server.url, tmp_path / "c.json", side="image"))
    assert res.exit_code == 0, res.output
    assert fault_server.request_count == 0
    methods = json.loads((tmp_path / "c.json").read_text())["methods"]
    assert {n for n, row in methods.items() if "fused" not in row} == NO_CLASS_SIDE
    for name in methods.keys() - NO_CLASS_SIDE:
        assert methods[name]["fused"]["mean"] == pytest.approx(methods[name]["mean"])


def test_a_provider_that_rejects_images_exits_2_naming_it(
    world: dict[str, str], fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.default = status(400, message="image input is not supported; provide the mmproj")
    res = runner.invoke(
        app, _eval(world, fault_server.url, tmp_path / "d.json", "image,label", cache=tmp_path / "n.db")
    )
    assert res.exit_code == 2
    assert "openai-compatible:vision-1 rejected an image" in res.output
    assert not (tmp_path / "d.json").exists()
    res = runner.invoke(app, _eval(world, fault_server.url, tmp_path / "e.json", mllm="local"))
    assert res.exit_code == 2 and "does not take images" in res.output


def test_a_run_with_the_image_side_records_it_and_reports_it(
    world: dict[str, str], fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.answer_by_body = answers("cherry", "a cherry")
    run_dir = tmp_path / "run"
    res = runner.invoke(app, [
        "optimize", "-q", "-d", "imagefolder", "--root", world["images"], "--backbone", world["backbone"],
        "-p", "support.scripted_provider:make", "--run-dir", str(run_dir), "--k-shot", "2", "--max-iterations", "1",
        "--set", "method.n_init=3", "--set", "backbone.device=cpu", "--set", f"backbone.embedding_cache={world['cache']}",
        "--set", "image_side.parts=image,label", "--set", "image_side.mllm=openai-compatible:vision-1",
        "--set", f"image_side.mllm_base_url={fault_server.url}",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    result = json.loads((run_dir / "result.json").read_text())
    side = result["image_side"]
    assert side["mllm"] == "openai-compatible:vision-1" and side["label_accuracy"] == pytest.approx(100 / 3)
    # one label question per test and per validation picture (the auto weights are chosen there), no description
    assert side["selected_on"] == "validation" and side["selection_images"] > 0
    assert fault_server.request_count == side["n_images"] + side["selection_images"]
    for method in ("names", "optimized"):
        row = side["scores"][method]
        assert set(row) == {"image", "image+label auto"}
        chosen = row["image+label auto"]
        assert set(chosen["weights"]) == {"image", "label"} and sum(chosen["weights"].values()) == pytest.approx(1)
        assert 0 <= chosen["selection_accuracy"] <= 100 and chosen["selection_image_accuracy"] is not None
        plain = result["optimized"] if method == "optimized" else result["baselines"][method]
        assert row["image"]["accuracy"] == pytest.approx(100 * plain["test_accuracy"])
    res = runner.invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "r.html").read_text()
    assert "Image side" in page and "its own label accuracy 33.3 %" in page and "auto weights" in page


def test_auto_weights_are_chosen_on_validation_and_shown(
    world: dict[str, str], fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.answer_by_body = answers("lemon", "a lemon")
    res = runner.invoke(app, _eval(world, fault_server.url, tmp_path / "f.json", "image,description", weights="auto"))
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "f.json").read_text())
    assert data["image_side"]["side"]["weights"] == "auto"
    for name, row in data["methods"].items():
        if name in NO_CLASS_SIDE:
            continue
        fused = row["fused"]
        assert fused["side"] == "image+description auto" and fused["selected_on"] == "validation"
        (weights,) = fused["weights_per_seed"]
        assert set(weights) == {"image", "description"} and sum(weights.values()) == pytest.approx(1)
        # the image alone is on the grid, so the choice is never worse there
        assert fused["selection_accuracy_per_seed"][0] >= fused["selection_image_accuracy_per_seed"][0]
    assert "weights per seed (validation)" in res.output and "validation pictures" in res.output


def test_the_label_question_sends_the_class_names_as_an_enum_and_an_unlisted_answer_counts_as_none(
    world: dict[str, str], fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.answer_by_body = answers("banana", "a banana")  # a name that is not a class, whatever the schema says
    res = runner.invoke(
        app, _eval(world, fault_server.url, tmp_path / "g.json", "image,label", cache=tmp_path / "g.db")
    )
    assert res.exit_code == 0, res.output
    labelled = [r.body for r in fault_server.requests if r.body and "response_format" in r.body]
    assert labelled
    assert sorted(labelled[0]["response_format"]["schema"]["properties"]["label"]["enum"]) == [
        "cherry",
        "lemon",
        "lime",
    ]
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["image_side"]["label_accuracy_per_seed"] == [0.0]  # never one of the classes: no guess
