"""Parts a test needs that may be missing on a developer's machine but never in CI.

Locally, a test whose part is missing (Debian's chromium, the ``local`` extra) is skipped with a reason
that says how to get it. Under CI (``CI=true``) or with ``VISFEED_REQUIRE_ALL=1`` the same test fails, so
a CI machine that lost a part cannot pass by silently running fewer tests.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def require_all() -> bool:
    """Whether every required part must be present (CI, or asked for explicitly)."""
    return os.environ.get("CI", "").lower() in ("true", "1") or os.environ.get("VISFEED_REQUIRE_ALL") == "1"


def missing_part(reason: str) -> NoReturn:
    """Skip the running test for a missing part, or fail it where every part is required."""
    if require_all():
        pytest.fail(f"required part missing (CI=true or VISFEED_REQUIRE_ALL=1): {reason}", pytrace=False)
    pytest.skip(reason)
