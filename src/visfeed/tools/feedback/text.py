"""Visual feedback rendered as text for the LLM (and for humans reading traces).

Per class, as in the paper: its accuracy on the feedback images, its current descriptions, and its top-m
most confused classes with *their* descriptions, so the LLM can write what tells them apart. One
renderer, two layouts: :data:`FULL` (the ``visual_feedback`` tool: bullets, every confused class) and
:data:`PROMPT` (mutation prompts: one line per field, JSON-quoted names, few descriptions). The prompt
layout's text is part of the response cache keys, so it must not change by a byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from visfeed.tools.feedback.visual_words import ClassWords, join_words
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


def words_line(words: ClassWords) -> str:
    """What a class's images look like: 'Images look: green and round; unlike "lemon", whose images look: yellow.'."""
    text = f"Images look: {join_words(words.own)}"
    others = [f"unlike {quote(o)}, whose images look: {join_words(w)}" for o, w in words.against.items() if w]
    return "; ".join([text, *others]) + "."


def _bullets(descriptions: Sequence[str], limit: int) -> str:
    shown = list(descriptions)[:limit]
    more = f"\n    (+{len(descriptions) - limit} more)" if len(descriptions) > limit else ""
    return "\n".join(f"    - {d}" for d in shown) + more


def _inline(descriptions: Sequence[str], limit: int) -> str:
    shown = "; ".join(descriptions[:limit])
    return shown + (f" (+{len(descriptions) - limit} more)" if len(descriptions) > limit else "")


def class_feedback(
    c: int,
    classnames: Sequence[str],
    descriptions: Mapping[str, Sequence[str]],
    fb: Feedback,
    layout: FeedbackLayout = FULL,
    words: ClassWords | None = None,
) -> str:
    """Feedback block of one class: accuracy, its descriptions, its images in words, confused classes and theirs.

    ``words`` (from the visual-word probe) adds one line after the class's descriptions; without it the
    text is what it was before the probe existed, byte for byte.
    """
    name = classnames[c]
    seen = ["  " + words_line(words)] if words is not None and words.own else []
    acc = fb.per_class_accuracy[c]
    n = int(fb.per_class_count[c])
    own = list(descriptions.get(name, []))
    confused = [(classnames[o], int(fb.lam_confusion[c, o])) for o in fb.top_confused[c][: layout.confused]]
    correct = f"{acc:.0%} of {n} images correct"
    if layout.compact:
        lines = [f"Class {quote(name)}: {'no labelled images' if np.isnan(acc) else correct}."]
        lines.append(f"  Current: {_inline(own, layout.own)}")
        lines += seen
        parts = [
            f"{quote(other)} ({count} images; described as: {_inline(list(descriptions.get(other, [])), layout.other)})"
            for other, count in confused
        ]
        lines.append("  Confused with: " + ", ".join(parts) if parts else "  Not confused with other classes.")
        return "\n".join(lines)
    lines = [
        f'Class "{name}": {"no feedback images" if np.isnan(acc) else correct}.',
        "  Current descriptions:",
        _bullets(own, layout.own),
        *seen,
    ]
    if confused:
        lines.append("  Most often confused with (near misses included):")
        for other, count in confused:
            lines.append(f'  * "{other}" ({count} of {n} images), described as:')
            lines.append(_bullets(descriptions.get(other, []), layout.other))
    else:
        lines.append("  Not confused with any other class.")
    return "\n".join(lines)


def render_feedback(
    classnames: Sequence[str],
    descriptions: Mapping[str, Sequence[str]],
    fb: Feedback,
    classes: Sequence[int] | None = None,
    layout: FeedbackLayout = FULL,
    words: Mapping[str, ClassWords] | None = None,
) -> str:
    """One block per requested class (default: all); the full layout opens with the overall accuracy."""
    idx = range(len(classnames)) if classes is None else classes
    seen = words or {}
    blocks = [class_feedback(c, classnames, descriptions, fb, layout, seen.get(classnames[c])) for c in idx]
    if layout.compact:
        return "\n".join(blocks)
    head = f"Overall accuracy on the feedback images: {fb.accuracy:.1%} (mean margin {fb.mean_margin:+.4f})."
    return "\n\n".join([head, *blocks])


def compact_feedback(
    classes: Sequence[int],
    classnames: Sequence[str],
    descriptions: Mapping[str, Sequence[str]],
    fb: Feedback,
    words: Mapping[str, ClassWords] | None = None,
) -> str:
    """The feedback a mutation prompt shows: the :data:`PROMPT` layout of ``classes``, with their words."""
    return render_feedback(classnames, descriptions, fb, classes, PROMPT, words)
