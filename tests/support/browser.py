"""Headless Chromium for the HTML report tests: a screenshot and the DOM after scripts ran, offline."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image
from tests.support.required import missing_part

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
]


def render(page: Path, workdir: Path, *, height: int = 2400) -> tuple[np.ndarray, str]:
    """(screenshot as an RGB array, DOM after the load handlers) of a local page; no network reachable."""
    if CHROMIUM is None:
        missing_part("Debian's chromium is not installed (make test installs it)")
    shot = workdir / "shot.png"
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={workdir / 'profile'}", f"--window-size=1200,{height}"]
    subprocess.run([*common, f"--screenshot={shot}", page.as_uri()], check=True, timeout=120, capture_output=True)
    dom = subprocess.run(
        [*common, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout
    return np.asarray(Image.open(shot).convert("RGB")), dom
