"""The scoring engine as LangChain tools, so graph nodes and tool-calling LLMs use the same thing.

Each tool returns ``(text, artifact)``: the text is what an LLM reads, the artifact the structured result
(pydantic-dumped dict) that nodes, traces and tests read. Tools are thin wrappers over
:class:`~visfeed.tools.scoring.session.ScoringSession`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from visfeed.tools.feedback.confusion import LambdaConfusion
from visfeed.tools.feedback.render import class_block, read_signals, render_feedback
from visfeed.tools.feedback.signal import FeedbackView
from visfeed.tools.feedback.text import FULL
from visfeed.tools.scoring.session import ScoringSession

FEEDBACK = [LambdaConfusion()]
"""What the tools' text shows of each class besides its accuracy: the paper's confusions (the agent's first
message carries every enabled signal's lines; a signal's own tools are its :meth:`FeedbackSignal.tools`)."""


class VisualFeedbackArgs(BaseModel):
    """Arguments of ``visual_feedback``."""

    class_names: list[str] | None = Field(default=None, description="Classes to report on; omit for all classes.")


class ScoreDescriptionsArgs(BaseModel):
    """Arguments of ``score_descriptions``."""

    class_name: str = Field(description="The class whose descriptions to try.")
    descriptions: list[str] = Field(min_length=1, description="Candidate descriptions for that class.")


class NearestDescriptionsArgs(BaseModel):
    """Arguments of ``nearest_descriptions``."""

    text: str = Field(min_length=1, description="A description to compare.")
    class_names: list[str] = Field(min_length=1, description="Classes whose current descriptions to search.")
    k: int = Field(default=5, ge=1, le=50, description="How many neighbours to return.")


class ScoreResult(BaseModel):
    """What a trial description set would do, compared with the current one."""

    class_name: str
    accuracy: float
    class_accuracy: float
    mean_margin: float
    accuracy_change: float
    class_accuracy_change: float
    confused_with: list[str]


def make_scoring_tools(session: ScoringSession) -> list[BaseTool]:
    """The scoring tools bound to ``session`` (which holds the current descriptions)."""

    def visual_feedback(class_names: list[str] | None = None) -> tuple[str, dict[str, Any]]:
        fb = session.feedback()
        idx = None if class_names is None else [session.class_index(c) for c in class_names]
        text = render_feedback(FEEDBACK, FeedbackView(session.classnames, fb, session.current), idx)
        classes = range(len(session.classnames)) if idx is None else idx
        artifact = {
            "accuracy": fb.accuracy,
            "mean_margin": fb.mean_margin,
            "per_class": {
                session.classnames[c]: {
                    "accuracy": float(fb.per_class_accuracy[c]),
                    "confused_with": [session.classnames[o] for o in fb.top_confused[c]],
                }
                for c in classes
            },
        }
        return text, artifact

    def score_descriptions(class_name: str, descriptions: list[str]) -> tuple[str, dict[str, Any]]:
        c = session.class_index(class_name)
        before = session.feedback()
        after = session.trial_feedback(class_name, descriptions)
        result = ScoreResult(
            class_name=class_name,
            accuracy=after.accuracy,
            class_accuracy=float(after.per_class_accuracy[c]),
            mean_margin=after.mean_margin,
            accuracy_change=after.accuracy - before.accuracy,
            class_accuracy_change=float(after.per_class_accuracy[c] - before.per_class_accuracy[c]),
            confused_with=[session.classnames[o] for o in after.top_confused[c]],
        )
        trial = dict(session.current)
        trial[class_name] = descriptions
        view = FeedbackView(session.classnames, after, trial)
        text = (
            f"With these descriptions overall accuracy would be {after.accuracy:.1%} "
            f"({result.accuracy_change:+.1%}), class accuracy {result.class_accuracy:.0%} "
            f"({result.class_accuracy_change:+.0%}).\n"
            + class_block(c, FEEDBACK, view, read_signals(FEEDBACK, view, [c]), FULL)
        )
        return text, result.model_dump()

    def nearest_descriptions(text: str, class_names: list[str], k: int = 5) -> tuple[str, dict[str, Any]]:
        hits = session.nearest([text], class_names, k)[0]
        rows = [
            {"class_name": session.classnames[h.class_index], "text": h.text, "similarity": h.similarity} for h in hits
        ]
        lines = [f"{r['similarity']:.3f}  [{r['class_name']}] {r['text']}" for r in rows] or ["(no descriptions)"]
        return "\n".join(lines), {"neighbours": rows}

    tools: list[BaseTool] = [
        StructuredTool.from_function(
            func=visual_feedback,
            name="visual_feedback",
            description="Accuracy on the labelled feedback images, per class, with the classes each one is "
            "confused with and their descriptions.",
            args_schema=VisualFeedbackArgs,
            response_format="content_and_artifact",
        ),
        StructuredTool.from_function(
            func=score_descriptions,
            name="score_descriptions",
            description="Try a candidate description list for one class: returns the accuracy it would give "
            "and the confusions it would cause, without changing anything.",
            args_schema=ScoreDescriptionsArgs,
            response_format="content_and_artifact",
        ),
        StructuredTool.from_function(
            func=nearest_descriptions,
            name="nearest_descriptions",
            description="Find the current descriptions of the given classes that are most similar to a text "
            "(to avoid descriptions that also fit a confused class).",
            args_schema=NearestDescriptionsArgs,
            response_format="content_and_artifact",
        ),
    ]
    return tools
