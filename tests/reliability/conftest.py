"""Fixtures of the reliability tests: one tiny on-disk world (images, random tiny CLIP, embedding cache)."""

from __future__ import annotations

from typing import Any

import pytest

from support.tiny_world import tiny_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """ImageFolder of 3 classes, a ``local-dir:`` backbone and a private embedding cache, shared by the folder."""
    return tiny_world(tmp_path_factory.mktemp("reliability"))
