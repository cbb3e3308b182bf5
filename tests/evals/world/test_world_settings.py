"""The training settings' defaults are the ones the shipped checkpoints were trained with (their run records)."""

from __future__ import annotations

import json
from dataclasses import asdict
from importlib import resources
from typing import Any

from visfeed.evals.world.settings import EyesConfig, TrainConfig


def shipped_record(name: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(resources.files("visfeed").joinpath("assets", name).read_text("utf-8"))
    return record


def test_the_eyes_defaults_are_the_shipped_eyes_run_but_bf16() -> None:
    """The shipped eyes trained under bfloat16 autocast (this CPU has AMX); the default is off (slower without)."""
    shipped = shipped_record("market_eyes.json")["config"]
    assert shipped["bf16"] is True
    assert {**asdict(EyesConfig()), "widths": list(EyesConfig().widths)} == {**shipped, "bf16": False}


def test_the_tower_defaults_are_the_shipped_tower_run_but_its_partial_checkpoints() -> None:
    """The shipped run wrote a partial checkpoint every 400 steps (no effect on the weights); the default writes none."""
    shipped = shipped_record("market_vlm.json")["config"]
    assert shipped["checkpoint_every"] == 400
    assert asdict(TrainConfig()) == {**shipped, "checkpoint_every": 0}
