"""Fixtures of the reliability tests: one tiny on-disk world (images, random tiny CLIP, embedding cache)."""

from __future__ import annotations

from typing import Any

import pytest

from support.tiny_world import write_images, write_model


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """ImageFolder of 3 classes, a ``local-dir:`` backbone and a private embedding cache, shared by the folder."""
    base = tmp_path_factory.mktemp("reliability")
    return {
        "base": base,
        "images": write_images(base / "images"),
        "backbone": write_model(base / "model"),
        "cache": base / "emb.sqlite",
    }
