from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from visfeed.cli.world import app
from visfeed.errors import ModelError
from visfeed.tools.embedding.builtin_models import MINILM_PREFIX, assemble_checkpoint
from visfeed.tools.world.train import build_model, encode_texts, multi_positive_loss


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
    # what training learned travels (image tower, text projection, scale); frozen MiniLM never does
    assert "logit_scale" in state and any(k.startswith("text.proj.") for k in state)
    assert not any(k.startswith(MINILM_PREFIX) for k in state)
    full = assemble_checkpoint(out, tmp_path / "full.pt")
    assert any(k.startswith(MINILM_PREFIX) for k in torch.load(full, weights_only=True))
    # a tower without the projection (an older layout) is refused by name, not loaded half-random
    state = {k: v for k, v in state.items() if not k.startswith("text.proj.")}
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(ModelError, match=r"text\.proj\."):
        assemble_checkpoint(tmp_path / "old.pt", tmp_path / "full2.pt")


def test_training_text_path_matches_open_clip_encode_text(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Cached pooled MiniLM features + the projection give exactly what open_clip's encode_text gives."""
    monkeypatch.setenv("VISFEED_CACHE_DIR", str(tmp_path / "cache"))
    model, tokenizer = build_model(torch.device("cpu"))
    model.eval()
    texts = ["a red round fruit", "The vegetable has green skin and is long.", "tiny"]
    ours = encode_texts(model, tokenizer, texts)
    with torch.no_grad():
        ref = model.encode_text(tokenizer(texts), normalize=True).numpy()
    assert ours.shape == (3, model.text.output_dim)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
