"""The feedback signals a run may use, in the order their lines appear in a class's feedback.

One line per signal. The order is part of the prompts (and so of the response cache's keys): the words
line has always come before the confusions. A test adds its own signal with
``monkeypatch.setitem(SIGNALS, Toy.name, Toy)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from visfeed.tools.feedback.confusion import LambdaConfusion
from visfeed.tools.feedback.signal import FeedbackSignal, RunData
from visfeed.tools.feedback.words import VisualWords

if TYPE_CHECKING:
    from visfeed.state.config import RunConfig

SIGNALS: dict[str, type[FeedbackSignal]] = {
    VisualWords.name: VisualWords,
    LambdaConfusion.name: LambdaConfusion,
}


def start_signals(cfg: RunConfig, data: RunData) -> list[FeedbackSignal]:
    """The signals switched on for this run, bound to its data, in registry order."""
    return [s for cls in SIGNALS.values() if (s := cls.start(cfg, data)) is not None]


def signal_controls(cfg: RunConfig, data: RunData, extra: Sequence[str] = ()) -> dict[str, dict[str, list[str]]]:
    """Every registered signal's no-LLM control (method name -> class -> descriptions), on or off in the run.

    ``extra``: entries the LLM added to the vocabulary in a run (``GraphState.vocabulary_extra``).
    """
    return {name: found for name, cls in SIGNALS.items() if (found := cls.control(cfg, data, extra)) is not None}
