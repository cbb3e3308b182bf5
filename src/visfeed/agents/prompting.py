"""Prompt files (package data under ``agents/prompts``) and the compact feedback text built into them.

Prompts are ``string.Template`` files (``$name`` fields) so descriptions containing braces never break
formatting. The feedback shown per class follows the paper (accuracy, current descriptions, top-m
confused classes and their descriptions) in a compact form, because the embedded local model has a
4096-token context and ten classes must fit in one call.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from string import Template

import numpy as np
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from visfeed.state.models import MemoryBank
from visfeed.tools.scoring import Feedback

FOCUSES = (
    "Focus on colors and color patterns.",
    "Focus on shape, size and proportions.",
    "Focus on surface texture and distinctive parts.",
    "Focus on what differs most from the classes it is confused with.",
    "Focus on small details a close look would reveal.",
    "Focus on the overall silhouette and typical arrangement.",
)


@functools.cache
def load_prompt(name: str) -> Template:
    """The prompt template ``prompts/<name>.txt`` shipped with the package."""
    text = resources.files("visfeed.agents").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")
    return Template(text.strip())


def messages(name: str, **fields: object) -> list[BaseMessage]:
    """System prompt plus the named user prompt filled with ``fields``."""
    return [
        SystemMessage(content=load_prompt("system").substitute()),
        HumanMessage(content=load_prompt(name).substitute({k: str(v) for k, v in fields.items()})),
    ]


def quote(name: str) -> str:
    """One class name as a JSON string literal: names are data, and a quote inside one cannot end it early."""
    return json.dumps(name, ensure_ascii=False)


def quoted(names: Sequence[str]) -> str:
    """Class names as a comma-separated list of JSON string literals."""
    return ", ".join(quote(n) for n in names)


def _short(descs: Sequence[str], limit: int) -> str:
    shown = "; ".join(descs[:limit])
    return shown + (f" (+{len(descs) - limit} more)" if len(descs) > limit else "")


def compact_feedback(
    classes: Sequence[int],
    classnames: Sequence[str],
    descriptions: Mapping[str, Sequence[str]],
    fb: Feedback,
    *,
    own_limit: int = 6,
    confused_limit: int = 3,
    other_limit: int = 2,
) -> str:
    """Per class: accuracy, current descriptions, top confused classes with a few of their descriptions."""
    blocks = []
    for c in classes:
        name = classnames[c]
        acc = fb.per_class_accuracy[c]
        n = int(fb.per_class_count[c])
        acc_text = "no labelled images" if np.isnan(acc) else f"{acc:.0%} of {n} images correct"
        lines = [
            f"Class {quote(name)}: {acc_text}.",
            f"  Current: {_short(list(descriptions.get(name, [])), own_limit)}",
        ]
        confused = fb.top_confused[c][:confused_limit]
        if confused:
            parts = [
                f"{quote(classnames[o])} ({int(fb.lam_confusion[c, o])} images; described as: "
                f"{_short(list(descriptions.get(classnames[o], [])), other_limit)})"
                for o in confused
            ]
            lines.append("  Confused with: " + ", ".join(parts))
        else:
            lines.append("  Not confused with other classes.")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def render_banks(banks: Mapping[str, MemoryBank], classes: Sequence[str], shown: int) -> str:
    """Memory shown to the LLM: what helped and what hurt, per class (most recent first)."""
    if shown <= 0:
        return ""
    lines = []
    for name in classes:
        bank = banks.get(name)
        if bank is None:
            continue
        good = [e.text for e in reversed(bank.positive) if e.action != "deleted"][:shown]
        bad = [e.text for e in reversed(bank.negative) if e.action != "deleted"][:shown]
        if good:
            lines.append(f"{quote(name)} helped: {'; '.join(good)}")
        if bad:
            lines.append(f"{quote(name)} hurt (do not reuse): {'; '.join(bad)}")
    return ("\nMemory of earlier edits:\n" + "\n".join(lines) + "\n") if lines else ""
