"""The feedback-signal seam: the hooks a signal of the loop's feedback implements, and when each is called.

Why: the loop's feedback grows signals (the paper's lambda-confusion, visual words, next the image side's
words or concept clues). Each used to be spread over config, context, nodes, prompts, tools, baselines
and the report. Here a signal is one class with a few hooks; the host (mutate node, mutation agent,
library start, finalizer, report) calls every enabled signal's hooks and knows none by name, the way
pytest calls whatever plug-ins implement a hook. A new signal is one module plus one line in
:data:`visfeed.tools.feedback.registry.SIGNALS`.

Hooks, in the order a run calls them (every one but :meth:`FeedbackSignal.read` has a no-op default, so a
signal implements only what it offers):

- ``start(cfg, data)`` (class method, once per run, when the run context is built): the signal bound to the
  run's feedback split, or None when its settings switch it off. A signal reads its settings through one
  ``settings(cfg)`` function of its own module, the only place that names RunConfig fields.
- ``library_items(c, extra)``: item texts a class's library starts with (source :attr:`item_source`), so
  an item source of the library crossover plugs in like any signal.
- ``read(view, classes)`` (once per iteration, in ``mutate``, for the classes to mutate): one reading
  per class, a pydantic model with ``class_name``; traced as an event named :attr:`name` when
  :attr:`traced` (the reading's fields are the event's).
- ``lines(reading, view, layout)``: the class's lines in the feedback text (prompts and the agent's first
  message), after its accuracy and descriptions, in registry order.
- ``prose_words`` / ``prose_avoid``: what a plain-prose request (weak local models) offers and forbids.
- ``proposals(reading)``: descriptions proposed with no LLM (origin :attr:`name`); they join the library
  like the LLM's and, in library mode, even when the LLM's items are withheld.
- ``tools(session, view)`` and ``agent_note()``: what the tool-calling agent gets.
- ``control(cfg, data, extra)`` (class method, at the end, whether or not the signal was on): the no-LLM
  control it implies, scored as the baseline named :attr:`name`.
- ``report_row(event)`` (static, from the trace): the report's table :attr:`report_title` (columns
  class, iteration, then :attr:`report_columns`); no title, no table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

import numpy as np
from pydantic import BaseModel

from visfeed.tools.feedback.text import FeedbackLayout
from visfeed.tools.scoring.measures import Feedback
from visfeed.tools.scoring.session import ScoringSession, TextEncoder

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from visfeed.state.config import RunConfig
    from visfeed.tools.feedback.visual_words import Vocabulary


class SplitData(Protocol):
    """One embedded split as a signal reads it."""

    @property
    def image_emb(self) -> np.ndarray:
        """Normalized (N, d) image embeddings."""
        ...

    @property
    def labels(self) -> np.ndarray:
        """(N,) class indices."""
        ...


class RunData(Protocol):
    """What a run's signals may read of its data (``ScoringData`` of the agents layer is one)."""

    @property
    def classnames(self) -> list[str]:
        """The label set, in class-index order."""
        ...

    @property
    def encoder(self) -> TextEncoder:
        """The backbone's text side (through its embedding cache)."""
        ...

    @property
    def feedback(self) -> SplitData:
        """The few-shot feedback split (selection reads only it and validation)."""
        ...

    @property
    def vocabulary(self) -> Vocabulary | None:
        """The visual vocabulary, if the run has one."""
        ...


@dataclass(frozen=True)
class FeedbackView:
    """One iteration's scoring as the signals see it: the feedback of the current sets and their texts."""

    classnames: Sequence[str]
    feedback: Feedback
    descriptions: Mapping[str, Sequence[str]]
    iteration: int = 0
    vocabulary_extra: Sequence[str] = ()  # entries the LLM added to the visual vocabulary (graph state)


class Reading(BaseModel):
    """What a signal found for one class in one iteration (its fields are the trace event's)."""

    class_name: str


class FeedbackSignal:
    """A signal of the loop's feedback (see the module's docstring for when each hook is called)."""

    name: ClassVar[str]
    traced: ClassVar[bool] = True
    item_source: ClassVar[str] = ""  # LibraryItem.source of its library items ("" : the signal's name)
    report_title: ClassVar[str] = ""
    report_columns: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def start(cls, cfg: RunConfig, data: RunData) -> Self | None:
        """The signal for one run (None: off); the default needs nothing of the run."""
        return cls()

    def read(self, view: FeedbackView, classes: Sequence[int]) -> dict[str, Reading]:
        """One reading per class of ``classes`` that the signal has something to say about."""
        raise NotImplementedError

    def lines(self, reading: Any, view: FeedbackView, layout: FeedbackLayout) -> list[str]:
        """Lines of the class's feedback block (indented two spaces)."""
        return []

    def prose_words(self, reading: Any, sample: int) -> list[str]:
        """Words a prose request about the class offers (``sample``: which of the K requests)."""
        return []

    def prose_avoid(self, reading: Any) -> list[str]:
        """Class names a prose request asks not to mention."""
        return []

    def proposals(self, reading: Any) -> list[str]:
        """Descriptions the signal proposes for the class with no LLM."""
        return []

    def library_items(self, c: int, extra: Sequence[str]) -> list[str]:
        """Item texts class ``c``'s library starts with (each its own prompt)."""
        return []

    def tools(self, session: ScoringSession, view: FeedbackView) -> list[BaseTool]:
        """Tools the tool-calling agent gets."""
        return []

    def agent_note(self) -> str:
        """A line for the agent's system prompt about the signal's tools ("" : none)."""
        return ""

    @classmethod
    def control(cls, cfg: RunConfig, data: RunData, extra: Sequence[str]) -> dict[str, list[str]] | None:
        """The no-LLM control's descriptions per class, chosen on the feedback split (None: no control)."""
        return None

    @staticmethod
    def report_row(event: Mapping[str, Any]) -> list[str]:
        """The report's cells of one trace event after its class and iteration."""
        return []
