"""Visual feedback rendered as text for the LLM (and for humans reading traces): the parts every signal shares.

Per class, as in the paper: its accuracy on the feedback images and its current descriptions (here), then
each feedback signal's lines (the top-m confused classes with *their* descriptions, the visual words: see
:mod:`visfeed.tools.feedback`). Two layouts: :data:`FULL` (the ``visual_feedback`` tool: bullets, every
confused class) and :data:`PROMPT` (mutation prompts: one line per field, JSON-quoted names, few
descriptions). The prompt layout's text is part of the response cache keys, so it must not change by a byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from visfeed.tools.scoring.measures import Feedback


@dataclass(frozen=True)
class FeedbackLayout:
    """How much feedback is written, and how: ``compact`` puts each field on one line."""

    compact: bool = False
    own: int = 12  # descriptions shown of the class itself
    confused: int | None = None  # confused classes shown (None: all of the top m)
    other: int = 6  # descriptions shown of each confused class


FULL = FeedbackLayout()
PROMPT = FeedbackLayout(compact=True, own=6, confused=3, other=2)


def quote(name: str) -> str:
    """One class name as a JSON string literal: names are data, and a quote inside one cannot end it early."""
    return json.dumps(name, ensure_ascii=False)


def bullets(descriptions: Sequence[str], limit: int) -> str:
    """Descriptions as indented bullets, the ones past ``limit`` counted."""
    shown = list(descriptions)[:limit]
    more = f"\n    (+{len(descriptions) - limit} more)" if len(descriptions) > limit else ""
    return "\n".join(f"    - {d}" for d in shown) + more


def inline(descriptions: Sequence[str], limit: int) -> str:
    """Descriptions on one line, the ones past ``limit`` counted."""
    shown = "; ".join(descriptions[:limit])
    return shown + (f" (+{len(descriptions) - limit} more)" if len(descriptions) > limit else "")


def class_head(
    c: int, classnames: Sequence[str], descriptions: Mapping[str, Sequence[str]], fb: Feedback, layout: FeedbackLayout
) -> list[str]:
    """The start of a class's block, before any signal's lines: its accuracy and its current descriptions."""
    name = classnames[c]
    acc = fb.per_class_accuracy[c]
    correct = f"{acc:.0%} of {int(fb.per_class_count[c])} images correct"
    own = list(descriptions.get(name, []))
    if layout.compact:
        return [
            f"Class {quote(name)}: {'no labelled images' if np.isnan(acc) else correct}.",
            f"  Current: {inline(own, layout.own)}",
        ]
    return [
        f'Class "{name}": {"no feedback images" if np.isnan(acc) else correct}.',
        "  Current descriptions:",
        bullets(own, layout.own),
    ]


def overall_line(fb: Feedback) -> str:
    """The line the full layout opens with."""
    return f"Overall accuracy on the feedback images: {fb.accuracy:.1%} (mean margin {fb.mean_margin:+.4f})."
