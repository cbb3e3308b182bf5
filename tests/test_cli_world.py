"""``visfeed world train`` / ``train-eyes`` take their defaults from TrainConfig / EyesConfig, not a copy."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from visfeed.cli import world
from visfeed.tools.world.settings import EyesConfig, TrainConfig


@pytest.mark.parametrize(("command", "config"), [(world.train, TrainConfig), (world.train_eyes_command, EyesConfig)])
def test_every_shared_option_defaults_to_the_config(command: Any, config: Any) -> None:
    params = inspect.signature(command).parameters
    shared = [f.name for f in dataclasses.fields(config) if f.name in params]
    assert len(shared) >= 7  # seed, images, batch size, lr, workers, threads and the command's own
    assert {n: params[n].default for n in shared} == {n: getattr(config(), n) for n in shared}
