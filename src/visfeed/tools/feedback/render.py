"""The host side of the seam: read every signal once per iteration, and write each class's feedback block.

A block is the class's accuracy and current descriptions (:func:`visfeed.tools.feedback.text.class_head`),
then each signal's lines in registry order. Nodes, the agent and the scoring tools all write feedback
through here, so a new signal shows up in every one of them without touching any.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from visfeed.tools.feedback.signal import FeedbackSignal, FeedbackView, Reading
from visfeed.tools.feedback.text import FULL, PROMPT, FeedbackLayout, class_head, overall_line

Readings = dict[str, dict[str, Reading]]
"""Signal name -> class name -> that signal's reading of the class."""

Emit = Callable[..., None]


def read_signals(
    signals: Sequence[FeedbackSignal], view: FeedbackView, classes: Sequence[int], emit: Emit | None = None
) -> Readings:
    """Every signal's readings of ``classes``; with ``emit`` (the tracer's), each traced signal's per class."""
    out: Readings = {}
    for s in signals:
        out[s.name] = found = s.read(view, classes)
        if emit is not None and s.traced:
            for reading in found.values():
                emit(s.name, iteration=view.iteration, **reading.model_dump(mode="json"))
    return out


def class_block(
    c: int, signals: Sequence[FeedbackSignal], view: FeedbackView, readings: Readings, layout: FeedbackLayout
) -> str:
    """One class's feedback: its head, then the lines of every signal that has a reading of it."""
    name = view.classnames[c]
    lines = class_head(c, view.classnames, view.descriptions, view.feedback, layout)
    for s in signals:
        reading = readings.get(s.name, {}).get(name)
        if reading is not None:
            lines += s.lines(reading, view, layout)
    return "\n".join(lines)


def render_feedback(
    signals: Sequence[FeedbackSignal],
    view: FeedbackView,
    classes: Sequence[int] | None = None,
    layout: FeedbackLayout = FULL,
    readings: Readings | None = None,
) -> str:
    """One block per class of ``classes`` (default: all); the full layout opens with the overall accuracy.

    ``readings``: the iteration's, when the caller read (and traced) them already; else read here.
    """
    idx = list(range(len(view.classnames)) if classes is None else classes)
    found = read_signals(signals, view, idx) if readings is None else readings
    blocks = [class_block(c, signals, view, found, layout) for c in idx]
    if layout.compact:
        return "\n".join(blocks)
    return "\n\n".join([overall_line(view.feedback), *blocks])


def compact_feedback(
    signals: Sequence[FeedbackSignal], view: FeedbackView, classes: Sequence[int], readings: Readings
) -> str:
    """The feedback a mutation prompt shows: the :data:`PROMPT` layout of ``classes``."""
    return render_feedback(signals, view, classes, PROMPT, readings)


def merged(
    signals: Sequence[FeedbackSignal], readings: Readings, names: Sequence[str], hook: Callable[..., list[str]]
) -> dict[str, list[str]]:
    """Class -> what ``hook(signal, reading)`` gives, over every signal in order; classes with nothing left out."""
    out: dict[str, list[str]] = {}
    for n in names:
        got = [x for s in signals if (r := readings.get(s.name, {}).get(n)) is not None for x in hook(s, r)]
        if got:
            out[n] = got
    return out
