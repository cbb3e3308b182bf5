"""Fixtures for the scoring tools: a tiny random-weight open_clip model saved as a real checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY = "visfeed-test-tiny"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Register the tiny config with open_clip and save random weights the way a real checkpoint is saved."""
    open_clip.add_model_config(FIXTURES / f"{TINY}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY, pretrained=None)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


@pytest.fixture()
def image_files(tmp_path: Path) -> list[str]:
    """Twelve small random PNGs (two of them identical in content)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(12):
        arr = rng.integers(0, 255, size=(40, 40, 3), dtype=np.uint8) if i != 11 else None
        p = tmp_path / f"img{i}.png"
        Image.fromarray(arr if arr is not None else np.asarray(Image.open(paths[0]))).save(p)
        paths.append(str(p))
    return paths
