"""Baselines every report carries, scored on the same backbone and split as the optimized descriptions.

- ``names``: the class name alone, ``"a photo of a {c}."`` (vanilla CLIP).
- ``templates``: open_clip's 80 OpenAI ImageNet templates, ensembled.
- ``llm_oneshot``: the run's initial LLM descriptions (CuPL/DCLIP style), with the run's template.
- ``waffle``: the WaffleCLIP control: the class name plus random words or random characters, as many
  prompts per class as the one-shot descriptions, seeded. It separates the effect of real description
  semantics from the mere ensembling of many prompts.
- ``visual_words``: the no-LLM control: descriptions composed from the visual words that fit each class's
  feedback images (``visfeed.tools.feedback.visual_words``). It separates what the LLM adds from what the words say.

All functions return prompt sets in CuPL format (class name -> list of full prompt sentences); scoring is
:func:`prompt_objective`, the same description-ensembling as the optimizer (DESIGN.md section 2).
"""

from __future__ import annotations

import functools
import importlib.util
import string
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from visfeed.state.models import Objective
from visfeed.state.templates import NAMELESS_TEMPLATE, PromptSet, render_prompt
from visfeed.tools.scoring.session import ScoringSession, TextEncoder

#: The WaffleCLIP control's word list (package data): common English words with no colour, shape, size
#: or texture meaning.
WAFFLE_WORDS_FILE = "waffle_words.txt"


@functools.cache
def waffle_words() -> tuple[str, ...]:
    """The control's words, read once from the package's assets."""
    text = resources.files("visfeed").joinpath("assets", WAFFLE_WORDS_FILE).read_text(encoding="utf-8")
    return tuple(w for w in (line.strip() for line in text.splitlines()) if w)


@functools.cache
def imagenet_templates() -> tuple[Callable[[str], str], ...]:
    """open_clip's 80 OpenAI ImageNet templates, read from its ``zero_shot_metadata`` module alone.

    Why not ``from open_clip.zero_shot_metadata import ...``: importing a submodule runs open_clip's
    ``__init__``, which loads its model code (torchvision, timm, transformers: about 240 MB of resident
    memory) that a run on cached or synthetic embeddings never uses. That module is data with no imports,
    so it is executed on its own from the installed package; a process that imported open_clip uses it.
    """
    loaded = sys.modules.get("open_clip.zero_shot_metadata")
    if loaded is None:
        spec = importlib.util.find_spec("open_clip")  # locates the package without running it
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("open_clip is not installed; install visfeed's dependencies")
        path = Path(next(iter(spec.submodule_search_locations))) / "zero_shot_metadata.py"
        file_spec = importlib.util.spec_from_file_location("_visfeed_open_clip_templates", path)
        if file_spec is None or file_spec.loader is None:
            raise ModuleNotFoundError(f"open_clip's templates module is missing: {path}")
        loaded = importlib.util.module_from_spec(file_spec)
        file_spec.loader.exec_module(loaded)
    return tuple(loaded.OPENAI_IMAGENET_TEMPLATES)


def names_prompts(classnames: Sequence[str]) -> PromptSet:
    """Vanilla CLIP: one prompt per class."""
    return {c: [f"a photo of a {c}."] for c in classnames}


def template_prompts(classnames: Sequence[str]) -> PromptSet:
    """The 80-template ImageNet ensemble."""
    return {c: [t(c) for t in imagenet_templates()] for c in classnames}


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
                noise = " ".join(rng.choice(waffle_words(), size=words_per_prompt))
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
    controls: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> dict[str, PromptSet]:
    """The baselines (names, templates, llm_oneshot, waffle, then the signals' controls) as prompt sets.

    ``controls``: method name -> each class's descriptions of a feedback signal's no-LLM control
    (:func:`visfeed.tools.feedback.registry.signal_controls`; visual words: ``visual_words``).
    """
    rng = np.random.default_rng([seed, 7])
    sets = {
        "names": names_prompts(classnames),
        "templates": template_prompts(classnames),
        "llm_oneshot": description_prompts(initial, template),
        "waffle": waffle_prompts({c: len(initial.get(c, [])) for c in classnames}, rng),
    }
    for name, descriptions in (controls or {}).items():
        sets[name] = description_prompts(descriptions, template)
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
    session = ScoringSession(encoder, classnames, image_emb, labels, template=NAMELESS_TEMPLATE, device=device)
    session.set_descriptions({c: list(prompts[c]) for c in classnames})
    return session
