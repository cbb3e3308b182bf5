"""The paper's lambda-confusion feedback as a signal: the classes each class is confused with, and theirs.

Per class (paper Eq. 3-5): its top-m classes by lambda-confusion (near misses included), each with how
many of its images came within lambda of it, and *their* current descriptions, so the LLM can write what
tells them apart; a prose request asks not to mention them. The counts are the scoring session's
(``lam`` and ``top_m`` are its settings), so the signal has none of its own, and nothing to trace: the
iteration records hold the accuracies it is read beside.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from visfeed.tools.feedback.signal import FeedbackSignal, FeedbackView, Reading
from visfeed.tools.feedback.text import FeedbackLayout, bullets, inline, quote


class Confusions(Reading):
    """A class's top-m confused classes, most confused first, with their counts, out of its ``images``."""

    images: int
    confused: list[tuple[str, int]]


class LambdaConfusion(FeedbackSignal):
    """Which classes each class is confused with (lambda-confusion), rendered with their descriptions."""

    name: ClassVar[str] = "lambda_confusion"
    traced: ClassVar[bool] = False

    def read(self, view: FeedbackView, classes: Sequence[int]) -> dict[str, Reading]:
        """Every class of ``classes``, confused or not (a class confused with none says so)."""
        fb, names = view.feedback, view.classnames
        return {
            names[c]: Confusions(
                class_name=names[c],
                images=int(fb.per_class_count[c]),
                confused=[(names[o], int(fb.lam_confusion[c, o])) for o in fb.top_confused[c]],
            )
            for c in classes
        }

    def lines(self, reading: Confusions, view: FeedbackView, layout: FeedbackLayout) -> list[str]:
        """'Confused with: ...' (one line, compact) or one bullet block per confused class (full)."""
        confused = reading.confused[: layout.confused]
        descs = view.descriptions
        if layout.compact:
            parts = [
                f"{quote(other)} ({count} images; described as: {inline(list(descs.get(other, [])), layout.other)})"
                for other, count in confused
            ]
            return ["  Confused with: " + ", ".join(parts) if parts else "  Not confused with other classes."]
        if not confused:
            return ["  Not confused with any other class."]
        lines = ["  Most often confused with (near misses included):"]
        for other, count in confused:
            lines.append(f'  * "{other}" ({count} of {reading.images} images), described as:')
            lines.append(bullets(descs.get(other, []), layout.other))
        return lines

    def prose_avoid(self, reading: Confusions) -> list[str]:
        """The confused classes: "Do not mention a lime." (see ``visfeed.agents.prompting``)."""
        return [other for other, _ in reading.confused]
