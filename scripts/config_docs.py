"""Rewrite docs/config.md from the run config's models (tests/state/test_config_files.py fails when it drifts)."""

from pathlib import Path

from visfeed.state.config.table import render

if __name__ == "__main__":
    (Path(__file__).resolve().parents[1] / "docs" / "config.md").write_text(render(), encoding="utf-8")
