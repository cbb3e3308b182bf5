"""Visual feedback rendered as text for the LLM (and for humans reading traces).

Per class, as in the paper: its accuracy on the feedback images, its current descriptions, and its top-m
most confused classes with *their* descriptions, so the LLM can write what tells them apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from visfeed.tools.scoring import Feedback


def _bullets(descriptions: Sequence[str], limit: int) -> str:
    shown = list(descriptions)[:limit]
    more = f"\n    (+{len(descriptions) - limit} more)" if len(descriptions) > limit else ""
    return "\n".join(f"    - {d}" for d in shown) + more


def class_feedback(
    c: int,
    classnames: Sequence[str],
    descriptions: Mapping[str, Sequence[str]],
    fb: Feedback,
    *,
    max_descriptions: int = 12,
) -> str:
    """Feedback block of one class: accuracy, its descriptions, confused classes and theirs."""
    name = classnames[c]
    acc = fb.per_class_accuracy[c]
    n = int(fb.per_class_count[c])
    acc_text = "no feedback images" if np.isnan(acc) else f"{acc:.0%} of {n} images correct"
    lines = [
        f'Class "{name}": {acc_text}.',
        "  Current descriptions:",
        _bullets(descriptions.get(name, []), max_descriptions),
    ]
    confused = fb.top_confused[c]
    if confused:
        lines.append("  Most often confused with (near misses included):")
        for o in confused:
            other = classnames[o]
            lines.append(f'  * "{other}" ({int(fb.lam_confusion[c, o])} of {n} images), described as:')
            lines.append(_bullets(descriptions.get(other, []), max_descriptions // 2))
    else:
        lines.append("  Not confused with any other class.")
    return "\n".join(lines)


def render_feedback(
    classnames: Sequence[str],
    descriptions: Mapping[str, Sequence[str]],
    fb: Feedback,
    classes: Sequence[int] | None = None,
    *,
    max_descriptions: int = 12,
) -> str:
    """Overall accuracy plus one block per requested class (default: all)."""
    head = f"Overall accuracy on the feedback images: {fb.accuracy:.1%} (mean margin {fb.mean_margin:+.4f})."
    idx = range(len(classnames)) if classes is None else classes
    blocks = [class_feedback(c, classnames, descriptions, fb, max_descriptions=max_descriptions) for c in idx]
    return "\n\n".join([head, *blocks])
