import logging
from collections.abc import Sequence

import numpy as np
import pytest

from visfeed.errors import ConfigError, DataError
from visfeed.state.templates import check_template
from visfeed.tools.feedback.lc_tools import make_scoring_tools
from visfeed.tools.scoring.session import ScoringSession, resolve_logit_scale


class WordEncoder:
    """Text -> normalized sum of fixed random word vectors; counts the texts it embeds."""

    def __init__(self, dim: int = 32) -> None:
        self.rng = np.random.default_rng(0)
        self.words: dict[str, np.ndarray] = {}
        self.dim = dim
        self.calls = 0

    def word(self, w: str) -> np.ndarray:
        if w not in self.words:
            self.words[w] = self.rng.normal(size=self.dim)
        return self.words[w]

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += len(texts)
        out = np.stack([sum(self.word(w) for w in t.replace(",", " ").split()) for t in texts])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


CLASSES = ["lemon", "lime", "cherry"]


def _session() -> tuple[ScoringSession, WordEncoder]:
    enc = WordEncoder()
    # images look like their class's colour word plus noise
    colour = {"lemon": "yellow", "lime": "green", "cherry": "red"}
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 4)
    x = np.stack([enc.word(colour[CLASSES[y]]) + 0.8 * rng.normal(size=32) for y in labels])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    session = ScoringSession(enc, CLASSES, x, labels, template="{description}", device="cpu")
    return session, enc


def test_session_rescoring_is_incremental_and_tools_agree() -> None:
    session, enc = _session()
    session.set_descriptions({"lemon": ["green round"], "lime": ["green small"], "cherry": ["red round"]})
    before = session.feedback()
    assert before.per_class_accuracy[2] == 1.0
    calls = enc.calls
    session.set_descriptions({"lemon": ["yellow oval"], "lime": ["green small"], "cherry": ["red round"]})
    assert enc.calls == calls + 1  # only lemon re-embedded
    after = session.feedback()
    assert after.accuracy > before.accuracy

    tools = {t.name: t for t in make_scoring_tools(session)}
    msg = tools["score_descriptions"].invoke(
        {
            "type": "tool_call",
            "id": "1",
            "name": "score_descriptions",
            "args": {"class_name": "lemon", "descriptions": ["green round"]},
        }
    )
    assert msg.artifact["accuracy"] == pytest.approx(before.accuracy)
    assert msg.artifact["accuracy_change"] == pytest.approx(before.accuracy - after.accuracy)
    assert "lemon" in msg.content
    assert session.feedback().accuracy == pytest.approx(after.accuracy)  # trial left state unchanged

    fb_msg = tools["visual_feedback"].invoke(
        {"type": "tool_call", "id": "2", "name": "visual_feedback", "args": {"class_names": ["lime"]}}
    )
    assert set(fb_msg.artifact["per_class"]) == {"lime"}
    assert 'Class "lime"' in fb_msg.content and "Overall accuracy" in fb_msg.content

    near = tools["nearest_descriptions"].invoke(
        {
            "type": "tool_call",
            "id": "3",
            "name": "nearest_descriptions",
            "args": {"text": "red", "class_names": ["cherry", "lime"], "k": 1},
        }
    )
    assert near.artifact["neighbours"][0]["text"] == "red round"

    sweep = session.evaluate_sets("lemon", [["green round"], ["yellow oval"], ["yellow oval", "green small"]])
    assert sweep.best() == 1
    assert sweep.n_correct[1] == session.objective()[0]


def test_session_errors_name_the_culprit() -> None:
    session, _ = _session()
    with pytest.raises(DataError, match="no descriptions for classes"):
        session.set_descriptions({"lemon": ["x"]})
    with pytest.raises(DataError, match="unknown class 'kiwi'"):
        session.class_index("kiwi")
    with pytest.raises(DataError, match="empty description list"):
        session.set_descriptions({"lemon": [], "lime": ["a"], "cherry": ["b"]})
    with pytest.raises(ConfigError, match="must contain"):
        check_template("a photo of a {classname}")
    with pytest.raises(ConfigError, match="invalid"):
        check_template("{description} {colour}")


def test_logit_scale_comes_from_the_user_then_the_backbone_then_clip(caplog: pytest.LogCaptureFixture) -> None:
    assert resolve_logit_scale(50.0, 25.7) == (50.0, "config")
    assert resolve_logit_scale(None, 25.7) == (25.7, "backbone")
    with caplog.at_level(logging.INFO, logger="visfeed.tools.scoring.session"):
        assert resolve_logit_scale(None, None) == (100.0, "fallback")
    assert "no learned logit scale" in caplog.text


def test_a_wide_change_rescans_once_and_scores_as_class_by_class_changes() -> None:
    enc = WordEncoder(dim=16)
    rng = np.random.default_rng(2)
    names = [f"c{i}" for i in range(24)]
    x = rng.normal(size=(96, 16)).astype(np.float32)
    labels = np.repeat(np.arange(24), 4)
    words = ["red", "round", "dull", "long", "soft", "striped"]
    start = {c: [f"{words[i % 6]} {c}", f"plain {c}"] for i, c in enumerate(names)}
    end = {c: [f"{words[(i + 2) % 6]} {c}"] if i % 5 == 0 else start[c] for i, c in enumerate(names)}
    stepwise = ScoringSession(enc, names, x, labels, template="{description}", device="cpu")
    stepwise.set_descriptions(start)
    for c in names:  # one class at a time: the per-class upkeep
        stepwise.set_descriptions({c: end[c]})
    wide = ScoringSession(enc, names, x, labels, template="{description}", device="cpu")
    wide.set_descriptions(end)  # every class at once: columns, then one rescan
    assert stepwise.engine.scores.equal(wide.engine.scores)
    assert stepwise.engine.margins().equal(wide.engine.margins())
    assert stepwise.objective() == wide.objective()
    assert stepwise.feedback().confusion.tolist() == wide.feedback().confusion.tolist()
    assert wide.current == end
