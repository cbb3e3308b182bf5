"""The two shipped feedback signals on their own: which run switches them on, what they say and propose."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from visfeed.state.config import RunConfig
from visfeed.tools.feedback.confusion import LambdaConfusion
from visfeed.tools.feedback.registry import SIGNALS, signal_controls, start_signals
from visfeed.tools.feedback.signal import FeedbackView
from visfeed.tools.feedback.text import PROMPT
from visfeed.tools.feedback.visual_words import Vocabulary, words_descriptions
from visfeed.tools.feedback.words import VisualWords
from visfeed.tools.scoring.measures import Feedback

NAMES = ["lemon", "lime"]
WORDS = ("yellow", "green", "oval", "round", "waxy", "matte", "big", "small")


class AxisEncoder:
    """Each vocabulary word is one axis; a text is the normalized sum of its words' axes."""

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(WORDS)), dtype=np.float32)
        for i, t in enumerate(texts):
            tokens = set(t.replace(".", "").split())
            out[i] = [w in tokens for w in WORDS]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


@dataclass
class Split:
    image_emb: np.ndarray
    labels: np.ndarray


@dataclass
class Data:
    classnames: list[str] = field(default_factory=lambda: list(NAMES))
    encoder: AxisEncoder = field(default_factory=AxisEncoder)
    feedback: Split = field(
        default_factory=lambda: Split(
            np.eye(len(WORDS), dtype=np.float32)[[0, 2, 4, 6, 1, 3, 5, 7]], np.array([0, 0, 0, 0, 1, 1, 1, 1])
        )
    )
    vocabulary: Vocabulary | None = field(default_factory=lambda: Vocabulary(WORDS, ("words",) * len(WORDS), "test"))


def _cfg(tmp_path, **changes) -> RunConfig:
    return RunConfig(run_dir=tmp_path / "run", llm={"provider": "scripted"}, backbone={"model": "synthetic"}, **changes)


def _view() -> FeedbackView:
    fb = Feedback(
        accuracy=0.5, mean_margin=0.0, per_class_accuracy=np.array([0.5, 1.0]), per_class_count=np.array([4, 4]),
        confusion=np.zeros((2, 2)), lam_confusion=np.array([[0, 2], [0, 0]]), top_confused=[[1], []], n_correct=4,
    )  # fmt: skip
    return FeedbackView(NAMES, fb, {"lemon": ["a fruit"], "lime": ["a fruit"]}, iteration=1)


def test_registry_order_is_the_order_of_the_lines() -> None:
    assert list(SIGNALS) == ["visual_words", "lambda_confusion"]


def test_words_follow_their_settings_and_the_vocabulary(tmp_path) -> None:
    assert [s.name for s in start_signals(_cfg(tmp_path), Data())] == ["visual_words", "lambda_confusion"]
    assert [s.name for s in start_signals(_cfg(tmp_path, visual_words=False), Data())] == ["lambda_confusion"]
    assert [s.name for s in start_signals(_cfg(tmp_path), Data(vocabulary=None))] == ["lambda_confusion"]
    # the control is the baseline whether or not the words were offered, and needs a vocabulary
    assert set(signal_controls(_cfg(tmp_path, visual_words=False), Data())) == {"visual_words"}
    assert signal_controls(_cfg(tmp_path), Data(vocabulary=None)) == {}


def test_words_read_render_propose_and_rotate(tmp_path) -> None:
    (words, _) = start_signals(_cfg(tmp_path, visual_words_count=4), Data())
    assert isinstance(words, VisualWords)
    reading = words.read(_view(), [0])["lemon"]
    assert reading.own and set(reading.own) <= {"yellow", "oval", "waxy", "big"}
    assert reading.against and set(reading.against["lime"]) <= {"green", "round", "matte", "small"}
    (line,) = words.lines(reading, _view(), PROMPT)
    assert line.startswith("  Images look: ") and 'unlike "lime", whose images look: ' in line
    assert words.proposals(reading) == words_descriptions(reading.own)
    own = reading.own
    assert words.prose_words(reading, 0) == own and words.prose_words(reading, 1) == own[2:] + own[:2]
    assert words.library_items(0, ()) and all(t.endswith("thing") for t in words.library_items(0, ()))
    event = {"own": ["yellow", "oval"], "against": {"lime": ["green"]}}
    assert VisualWords.report_row(event) == ["yellow, oval", "lime: green"]


def test_confusion_reads_every_class_and_asks_prose_not_to_mention_the_confusers(tmp_path) -> None:
    said = LambdaConfusion().read(_view(), [0, 1])
    assert said["lemon"].confused == [("lime", 2)] and said["lime"].confused == []
    assert LambdaConfusion().prose_avoid(said["lemon"]) == ["lime"]
    assert LambdaConfusion.control(None, Data(), ()) is None  # type: ignore[arg-type]
