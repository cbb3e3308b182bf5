"""Visual words as a signal: which words of a visual vocabulary fit a class's images and not its confusers'.

The probe is :mod:`visfeed.tools.feedback.visual_words` (the vocabulary ranked against the feedback images, once
per run); this module is how its words reach the loop: a line in each class's feedback, the words a prose
request offers, one no-LLM proposal per mutated class (the control's descriptions against today's
confusers), the sentences of the class's ten best words in its library, the agent's ``visual_words``
tool, the ``visual_words`` control, and a ``visual_words`` trace event per class and iteration that
``visfeed trace --class`` and the report show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from visfeed.tools.feedback.signal import FeedbackSignal, FeedbackView, Reading, RunData
from visfeed.tools.feedback.text import FeedbackLayout, quote
from visfeed.tools.feedback.visual_words import (
    ClassWords,
    WordSource,
    control_descriptions,
    join_words,
    word_sentences,
    words_descriptions,
)
from visfeed.tools.scoring.session import ScoringSession

if TYPE_CHECKING:
    from visfeed.state.config import RunConfig

AGENT_NOTE = (
    "You also have visual_words (what a class's labelled images look like in words, against the classes you name): "
    "build your descriptions from the words that fit the class and not its confusers."
)


@dataclass(frozen=True)
class WordsSettings:
    """``on``: offer the words in the loop; ``count``: words offered per class."""

    on: bool
    count: int


def settings(cfg: RunConfig) -> WordsSettings:
    """The signal's settings: the one line that names RunConfig fields."""
    return WordsSettings(on=cfg.signals.visual_words.enabled, count=cfg.signals.visual_words.count)


def word_source(data: RunData) -> WordSource | None:
    """The visual-word probe of the feedback split (None without a vocabulary)."""
    if data.vocabulary is None:
        return None
    fb = data.feedback
    return WordSource(data.vocabulary, data.encoder, fb.image_emb, fb.labels, list(data.classnames))


class OfferedWords(ClassWords, Reading):
    """The words offered for one class (its trace event: class_name, own, against)."""


def words_line(words: ClassWords) -> str:
    """What a class's images look like: 'Images look: green and round; unlike "lemon", whose images look: yellow.'."""
    text = f"Images look: {join_words(words.own)}"
    others = [f"unlike {quote(o)}, whose images look: {join_words(w)}" for o, w in words.against.items() if w]
    return "; ".join([text, *others]) + "."


class VisualWordsArgs(BaseModel):
    """Arguments of ``visual_words``."""

    class_name: str = Field(description="The class whose images to describe in words.")
    against: list[str] = Field(
        default_factory=list,
        description="Classes to contrast it with (e.g. those it is confused with); empty: all other classes.",
    )
    k: int = Field(default=6, ge=1, le=30, description="How many words to return.")


class VisualWords(FeedbackSignal):
    """The words that fit each class's feedback images and not those of the classes it is confused with."""

    name: ClassVar[str] = "visual_words"
    item_source: ClassVar[str] = "words"
    report_title: ClassVar[str] = "Visual words offered to the LLM"
    report_columns: ClassVar[tuple[str, ...]] = ("its images look", "confused classes' images look")

    def __init__(self, source: WordSource, count: int) -> None:
        self.source, self.count = source, count

    @classmethod
    def start(cls, cfg: RunConfig, data: RunData) -> Self | None:
        """Off when ``visual_words`` is off or the run has no vocabulary."""
        s = settings(cfg)
        source = word_source(data) if s.on else None
        return None if source is None else cls(source, s.count)

    def read(self, view: FeedbackView, classes: Sequence[int]) -> dict[str, Reading]:
        """Each class's words against its top-m confused classes."""
        probe = self.source.probe(view.vocabulary_extra)
        out: dict[str, Reading] = {}
        for c in classes:
            cw = probe.words(c, view.feedback.top_confused[c], k=self.count)
            out[cw.class_name] = OfferedWords(**cw.model_dump())
        return out

    def lines(self, reading: OfferedWords, view: FeedbackView, layout: FeedbackLayout) -> list[str]:
        """One line, when the class has words."""
        return ["  " + words_line(reading)] if reading.own else []

    def prose_words(self, reading: OfferedWords, sample: int) -> list[str]:
        """The words, each sample starting two further on, so the K answers lead with other words."""
        by = 2 * sample % max(1, len(reading.own))
        return reading.own[by:] + reading.own[:by]

    def proposals(self, reading: OfferedWords) -> list[str]:
        """The control's descriptions of the words against today's confusers."""
        return words_descriptions(reading.own)

    def library_items(self, c: int, extra: Sequence[str]) -> list[str]:
        """Sentences of the class's ten best words, ranked on its own images."""
        return word_sentences(self.source.probe(extra), c)

    def tools(self, session: ScoringSession, view: FeedbackView) -> list[BaseTool]:
        """``visual_words(class, against)``: the probe asked by the agent."""
        probe = self.source.probe(view.vocabulary_extra)

        def visual_words(class_name: str, against: list[str] | None = None, k: int = 6) -> tuple[str, dict[str, Any]]:
            others = [session.class_index(o) for o in against or []]
            cw = probe.words(session.class_index(class_name), others, k=k)
            lines = [f"Images of {class_name} look: {join_words(cw.own) or '(no distinctive words)'}."]
            lines += [f"Images of {o} look instead: {join_words(w)}." for o, w in cw.against.items()]
            return "\n".join(lines), cw.model_dump()

        return [
            StructuredTool.from_function(
                func=visual_words,
                name="visual_words",
                description="Ask the image model what a class's labelled images look like: the visual words "
                "(colours, shapes, textures, parts) that fit its images and not those of the classes given in "
                "'against', and the words that fit those classes instead.",
                args_schema=VisualWordsArgs,
                response_format="content_and_artifact",
            )
        ]

    def agent_note(self) -> str:
        """Tells a model that chooses its tools what ``visual_words`` is for."""
        return AGENT_NOTE

    @classmethod
    def control(cls, cfg: RunConfig, data: RunData, extra: Sequence[str]) -> dict[str, list[str]] | None:
        """Descriptions from each class's words alone, no LLM (scored whether or not the signal was on)."""
        source = word_source(data)
        return None if source is None else control_descriptions(source.probe(extra), settings(cfg).count)

    @staticmethod
    def report_row(event: Mapping[str, Any]) -> list[str]:
        """Its words, and the confused classes' words ('lemon: yellow, oval; pear: brown')."""
        against = dict(event.get("against", {}))
        return [", ".join(event.get("own", [])), "; ".join(f"{o}: {', '.join(w)}" for o, w in against.items())]
