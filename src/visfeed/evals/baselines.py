"""Baselines every report carries, scored on the same backbone and split as the optimized descriptions.

- ``names``: the class name alone, ``"a photo of a {c}."`` (vanilla CLIP).
- ``templates``: open_clip's 80 OpenAI ImageNet templates, ensembled.
- ``llm_oneshot``: the run's initial LLM descriptions (CuPL/DCLIP style), with the run's template.
- ``waffle``: the WaffleCLIP control: the class name plus random words or random characters, as many
  prompts per class as the one-shot descriptions, seeded. It separates the effect of real description
  semantics from the mere ensembling of many prompts.
- ``visual_words``: the no-LLM control: descriptions composed from the visual words that fit each class's
  feedback images (``visfeed.tools.visual_words``). It separates what the LLM adds from what the words say.

All functions return prompt sets in CuPL format (class name -> list of full prompt sentences); scoring is
:func:`prompt_accuracy`, the same description-ensembling as the optimizer (DESIGN.md section 2).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence

import numpy as np
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from visfeed.state.models import Objective
from visfeed.tools.session import ScoringSession, TextEncoder, render_prompt

PromptSet = dict[str, list[str]]

# Common English words with no colour, shape, size or texture meaning, for the WaffleCLIP control.
WAFFLE_WORDS = [
    "agenda",
    "answer",
    "anyway",
    "archive",
    "because",
    "before",
    "belief",
    "button",
    "cabinet",
    "calendar",
    "chapter",
    "citizen",
    "clause",
    "comment",
    "concept",
    "context",
    "council",
    "credit",
    "debate",
    "decade",
    "default",
    "detail",
    "device",
    "effort",
    "engine",
    "episode",
    "estate",
    "evening",
    "factor",
    "figure",
    "format",
    "forum",
    "friday",
    "future",
    "gallery",
    "garage",
    "harbor",
    "history",
    "holiday",
    "idea",
    "income",
    "index",
    "inquiry",
    "journal",
    "justice",
    "keyboard",
    "kingdom",
    "ladder",
    "language",
    "lawyer",
    "lecture",
    "legend",
    "letter",
    "library",
    "license",
    "manner",
    "market",
    "method",
    "minute",
    "moment",
    "monday",
    "morning",
    "museum",
    "notice",
    "number",
    "office",
    "opinion",
    "option",
    "outcome",
    "palace",
    "parent",
    "period",
    "permit",
    "person",
    "phrase",
    "planet",
    "policy",
    "portal",
    "pottery",
    "practice",
    "premium",
    "process",
    "program",
    "project",
    "protocol",
    "quarter",
    "question",
    "railway",
    "reason",
    "record",
    "region",
    "report",
    "request",
    "result",
    "review",
    "ribbon",
    "salary",
    "schedule",
    "science",
    "season",
    "section",
    "senate",
    "service",
    "session",
    "signal",
    "station",
    "status",
    "student",
    "subject",
    "summary",
    "system",
    "teacher",
    "theory",
    "ticket",
    "topic",
    "travel",
    "treaty",
    "tuesday",
    "update",
    "useful",
    "valley",
    "version",
    "village",
    "volume",
    "weekend",
    "window",
    "winter",
    "worker",
    "yearly",
]


def names_prompts(classnames: Sequence[str]) -> PromptSet:
    """Vanilla CLIP: one prompt per class."""
    return {c: [f"a photo of a {c}."] for c in classnames}


def template_prompts(classnames: Sequence[str]) -> PromptSet:
    """The 80-template ImageNet ensemble."""
    return {c: [t(c) for t in OPENAI_IMAGENET_TEMPLATES] for c in classnames}


def description_prompts(descriptions: Mapping[str, Sequence[str]], template: str) -> PromptSet:
    """Descriptions joined with the class name by ``template`` (CuPL format, sentences end with a period)."""
    return {c: [render_prompt(template, c, d) + "." for d in ds] for c, ds in descriptions.items()}


def waffle_prompts(counts: Mapping[str, int], rng: np.random.Generator, *, words_per_prompt: int = 2) -> PromptSet:
    """WaffleCLIP: per class ``counts[c]`` prompts, alternately random words and random character strings."""
    letters = np.array(list(string.ascii_lowercase + string.digits + "!#$%&"))
    out: PromptSet = {}
    for c, n in counts.items():
        prompts = []
        for i in range(max(1, n)):
            if i % 2 == 0:
                noise = " ".join(rng.choice(WAFFLE_WORDS, size=words_per_prompt))
            else:
                noise = " ".join(
                    "".join(rng.choice(letters, size=int(rng.integers(3, 8)))) for _ in range(words_per_prompt)
                )
            prompts.append(f"a photo of a {c}, which has {noise}.")
        out[c] = prompts
    return out


def baseline_prompt_sets(
    classnames: Sequence[str],
    initial: Mapping[str, Sequence[str]],
    template: str,
    seed: int,
    visual_words: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, PromptSet]:
    """The baselines (names, templates, llm_oneshot, waffle, and visual_words when given) as prompt sets.

    ``visual_words``: the control's descriptions (:func:`visfeed.tools.visual_words.control_descriptions`).
    """
    rng = np.random.default_rng([seed, 7])
    sets = {
        "names": names_prompts(classnames),
        "templates": template_prompts(classnames),
        "llm_oneshot": description_prompts(initial, template),
        "waffle": waffle_prompts({c: len(initial.get(c, [])) for c in classnames}, rng),
    }
    if visual_words is not None:
        sets["visual_words"] = description_prompts(visual_words, template)
    return sets


def prompt_objective(
    encoder: TextEncoder,
    classnames: Sequence[str],
    prompts: Mapping[str, Sequence[str]],
    image_emb: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    device: str = "auto",
) -> Objective:
    """Accuracy (and mean margin) of full prompt sentences on one split, by description ensembling."""
    session = prompt_session(encoder, classnames, prompts, image_emb, labels, device=device)
    n, margin = session.objective()
    return Objective(n_correct=n, mean_margin=margin, n_images=session.n_images)


def prompt_session(
    encoder: TextEncoder,
    classnames: Sequence[str],
    prompts: Mapping[str, Sequence[str]],
    image_emb: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    device: str = "auto",
) -> ScoringSession:
    """A scoring session holding full prompt sentences (no template), for objective or full feedback."""
    session = ScoringSession(encoder, classnames, image_emb, labels, template="{description}", device=device)
    session.set_descriptions({c: list(prompts[c]) for c in classnames})
    return session
