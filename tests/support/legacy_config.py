"""A nested config dump written back in the flat form of the release before sections (for old-file tests)."""

from __future__ import annotations

from typing import Any

from visfeed.state.config import LEGACY_KEYS, RunConfig
from visfeed.state.llm import LLMTransport


def flat_dump(cfg: RunConfig) -> dict[str, Any]:
    """``cfg`` as that release's config.yaml: flat keys, the transport knobs in an ``llm`` block."""
    old_name = {new: old for old, new in LEGACY_KEYS.items()}
    out: dict[str, Any] = {}
    llm: dict[str, Any] = {}
    for path, value in cfg.flat().items():
        leaf = path.removeprefix("llm.")
        if leaf in LLMTransport.model_fields and path.startswith("llm."):
            llm[leaf] = value
        else:
            out[old_name.get(path, path)] = value
    return {**out, "llm": llm}
