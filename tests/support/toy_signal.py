"""A test-only feedback signal: one module, registered by one line (``monkeypatch.setitem(SIGNALS, ...)``).

It says a made-up "shade" per class and iteration, proposes one description from it, adds one item to each
class's library and has a report table, so a test can see it reach the prompt, the trace, the library and
the report through the seam alone (no node, prompt or report code names it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from visfeed.tools.feedback.signal import FeedbackSignal, FeedbackView, Reading
from visfeed.tools.feedback.text import FeedbackLayout


class Shade(Reading):
    """The toy's reading of one class."""

    shade: str


class ToyShade(FeedbackSignal):
    """Per class: 'shade <class index> at <iteration>'."""

    name: ClassVar[str] = "toy_shade"
    item_source: ClassVar[str] = "toy"
    report_title: ClassVar[str] = "Toy shades"
    report_columns: ClassVar[tuple[str, ...]] = ("shade",)

    def read(self, view: FeedbackView, classes: Sequence[int]) -> dict[str, Reading]:
        return {
            view.classnames[c]: Shade(class_name=view.classnames[c], shade=f"tint{c}x{view.iteration}") for c in classes
        }

    def lines(self, reading: Shade, view: FeedbackView, layout: FeedbackLayout) -> list[str]:
        return [f"  Toy shade: {reading.shade}."]

    def proposals(self, reading: Shade) -> list[str]:
        return [f"a toy thing of {reading.shade}"]

    def library_items(self, c: int, extra: Sequence[str]) -> list[str]:
        return [f"a toy item of class {c}"]

    @staticmethod
    def report_row(event: Mapping[str, Any]) -> list[str]:
        return [str(event["shade"])]
