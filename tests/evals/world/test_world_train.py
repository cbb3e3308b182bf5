from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from visfeed.cli_world import app
from visfeed.evals.world.train import multi_positive_loss
from visfeed.tools.builtin_models import assemble_checkpoint


def test_multi_positive_loss_rewards_all_positives() -> None:
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    txt = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [0.1, 1.0], [1.0, 0.0]]), dim=-1)
    pos = torch.tensor([[True, False, True], [False, True, False]])
    good = multi_positive_loss(img, txt, pos, torch.tensor(10.0))
    swapped = multi_positive_loss(img, txt, pos[[1, 0]], torch.tensor(10.0))
    assert good < swapped


@pytest.mark.slow
def test_cli_train_tiny_run_writes_a_loadable_tower_and_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISFEED_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "tower.pt"
    res = CliRunner().invoke(
        app,
        [
            "train",
            "--out",
            str(out),
            "--images",
            "512",
            "--batch-size",
            "64",
            "--pool-size",
            "300",
            "--workers",
            "0",
            "--threads",
            "1",
            "--no-eval",
        ],
    )
    assert res.exit_code == 0, res.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["images_seen"] == 512 and record["seed"] == 0
    assert record["command"].startswith("visfeed world train --out")
    state = torch.load(out, weights_only=True)
    assert "logit_scale" in state and all(not k.startswith("text.") for k in state)
    full = assemble_checkpoint(out, tmp_path / "full.pt")
    assert any(k.startswith("text.") for k in torch.load(full, weights_only=True))
