"""The torch device a run embeds and scores on."""

from __future__ import annotations

import torch


def pick_device(device: str = "auto") -> torch.device:
    """Resolve ``auto`` to CUDA when torch sees a GPU, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
