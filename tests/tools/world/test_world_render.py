from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from visfeed.cli.world import app
from visfeed.tools.world.render import render
from visfeed.tools.world.spec import load_spec


def test_rendering_is_deterministic_for_a_seed() -> None:
    spec = load_spec()
    for ci in range(len(spec.classes)):
        a = np.asarray(render(spec.classes[ci].sample(np.random.default_rng([5, ci])), np.random.default_rng([5, ci])))
        b = np.asarray(render(spec.classes[ci].sample(np.random.default_rng([5, ci])), np.random.default_rng([5, ci])))
        assert a.shape == (64, 64, 3) and a.dtype == np.uint8
        assert np.array_equal(a, b)
    c = np.asarray(render(spec.classes[0].sample(np.random.default_rng(6)), np.random.default_rng(6)))
    assert not np.array_equal(
        c, np.asarray(render(spec.classes[0].sample(np.random.default_rng(7)), np.random.default_rng(7)))
    )


def test_attributes_change_the_picture() -> None:
    base = {
        "color": "red",
        "shape": "round",
        "pattern": "smooth",
        "top": "none",
        "size": "large",
        "count": "single",
        "cut": "whole",
        "inside": "white",
    }
    red = np.asarray(render(base, np.random.default_rng(1)), dtype=float)
    blue = np.asarray(render({**base, "color": "blue"}, np.random.default_rng(1)), dtype=float)
    diff = np.abs(red - blue).sum(-1) > 60
    assert diff.mean() > 0.1  # the item itself changed colour, a large share of the picture


def test_cli_render_writes_an_image_folder(tmp_path: Path) -> None:
    spec = tmp_path / "two.yaml"
    spec.write_text(
        "classes:\n  - {name: red ball, color: red, shape: round}\n  - {name: blue stick, color: blue, shape: long}\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    for out in (tmp_path / "a", tmp_path / "b"):
        res = runner.invoke(app, ["render", "--spec", str(spec), "--out", str(out), "--per-class", "3", "--seed", "4"])
        assert res.exit_code == 0, res.output
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert [str(f) for f in files] == [f"{c}/{i:04d}.png" for c in ("blue_stick", "red_ball") for i in range(3)]
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_cli_render_reports_spec_errors(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("classes:\n  - {name: x, colour: red, shape: round}\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["render", "--spec", str(spec), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "unknown attribute 'colour'" in res.output
