"""``visfeed doctor`` on this machine: every required part works, so it must say so and exit 0."""

from __future__ import annotations

import pytest

from support.required import missing_part
from visfeed.tools.doctor import Check, healthy, run_checks
from visfeed.tools.llm.local_server import missing_local_modules


@pytest.mark.slow
def test_doctor_passes_where_the_main_job_can_run() -> None:
    if missing_local_modules():
        missing_part("the 'local' extra is not installed (`make install`)")
    checks = run_checks()
    by_name = {c.name: c for c in checks}
    assert healthy(checks), [c for c in checks if not c.ok]
    assert "answered a completion" in by_name["local LLM server"].detail
    assert "embedded a sentence" in by_name["embedded backbone"].detail


def test_only_required_checks_decide() -> None:
    ok = Check(name="a", ok=True, required=True, detail="")
    warn = Check(name="b", ok=False, required=False, detail="")
    fail = Check(name="c", ok=False, required=True, detail="")
    assert healthy([ok, warn]) and not healthy([ok, warn, fail])
