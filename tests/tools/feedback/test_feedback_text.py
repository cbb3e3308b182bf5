"""The one feedback renderer (class head, then the signals' lines; here the paper's lambda-confusion alone):
the tool's full layout and the prompts' compact layout, pinned to the byte.

The compact text goes into mutation prompts, and prompts key the runs' response caches: a changed byte
would turn every cached answer of an old run into a miss on resume.
"""

from __future__ import annotations

import numpy as np

from visfeed.tools.feedback.confusion import LambdaConfusion
from visfeed.tools.feedback.render import compact_feedback, read_signals, render_feedback
from visfeed.tools.feedback.signal import FeedbackView
from visfeed.tools.feedback.text import FULL, PROMPT
from visfeed.tools.scoring.measures import Feedback

NAMES = ["lemon", 'say "lime"', "cherry"]
DESCRIPTIONS = {
    "lemon": [f"yellow skin {i}" for i in range(8)],
    'say "lime"': ["green skin", "small round fruit", "thin rind"],
    "cherry": [],
}


def _feedback() -> Feedback:
    lam = np.array([[0, 3, 1], [2, 0, 0], [0, 0, 0]])
    return Feedback(
        accuracy=0.5,
        mean_margin=0.0123,
        per_class_accuracy=np.array([0.25, 0.75, np.nan]),
        per_class_count=np.array([4, 4, 0]),
        confusion=np.zeros((3, 3)),
        lam_confusion=lam,
        top_confused=[[1, 2], [0], []],
        n_correct=4,
    )


SIGNALS = [LambdaConfusion()]


def _view() -> FeedbackView:
    return FeedbackView(NAMES, _feedback(), DESCRIPTIONS)


def test_prompt_layout_is_the_text_mutation_prompts_always_had() -> None:
    view = _view()
    assert compact_feedback(SIGNALS, view, [0, 1, 2], read_signals(SIGNALS, view, [0, 1, 2])) == (
        'Class "lemon": 25% of 4 images correct.\n'
        "  Current: yellow skin 0; yellow skin 1; yellow skin 2; yellow skin 3; yellow skin 4; yellow skin 5 (+2 more)\n"
        '  Confused with: "say \\"lime\\"" (3 images; described as: green skin; small round fruit (+1 more)), '
        '"cherry" (1 images; described as: )\n'
        'Class "say \\"lime\\"": 75% of 4 images correct.\n'
        "  Current: green skin; small round fruit; thin rind\n"
        '  Confused with: "lemon" (2 images; described as: yellow skin 0; yellow skin 1 (+6 more))\n'
        'Class "cherry": no labelled images.\n'
        "  Current: \n"
        "  Not confused with other classes."
    )
    assert compact_feedback(SIGNALS, view, [1], read_signals(SIGNALS, view, [1])) == render_feedback(
        SIGNALS, view, [1], PROMPT
    )


def test_full_layout_opens_with_the_overall_accuracy_and_lists_every_confused_class() -> None:
    text = render_feedback(SIGNALS, _view(), [0, 2], FULL)
    assert text == (
        "Overall accuracy on the feedback images: 50.0% (mean margin +0.0123).\n\n"
        'Class "lemon": 25% of 4 images correct.\n'
        "  Current descriptions:\n"
        + "\n".join(f"    - yellow skin {i}" for i in range(8))
        + "\n  Most often confused with (near misses included):\n"
        '  * "say "lime"" (3 of 4 images), described as:\n'
        "    - green skin\n    - small round fruit\n    - thin rind\n"
        '  * "cherry" (1 of 4 images), described as:\n\n\n'
        'Class "cherry": no feedback images.\n'
        "  Current descriptions:\n\n"
        "  Not confused with any other class."
    )
