"""End of a run: score the best set and the baselines, touching the test split exactly once.

Selection happened on the feedback (and optionally validation) split inside the graph; here the test
embeddings are loaded once and every method (baselines and optimized) is scored on them, on the same
backbone, so ``result.json`` compares like with like.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from visfeed.agents.resources import (
    EmbeddedSplit,
    RunResources,
    image_line,
    proapo_lines,
    searched_words,
)
from visfeed.errors import DataError
from visfeed.evals.image_side import ImageSideResult, image_side_grid, open_mllm, projected, selection_split
from visfeed.state.config import RunConfig
from visfeed.state.image_side import ImageSide
from visfeed.state.models import GraphState
from visfeed.state.rundir import MethodScore
from visfeed.state.templates import PromptSet
from visfeed.tools.feedback.baselines import baseline_prompt_sets, description_prompts, prompt_objective, prompt_session
from visfeed.tools.feedback.registry import signal_controls
from visfeed.tools.scoring.image_line import accuracy
from visfeed.tools.search.items import ItemLibrary, SearchResult, accuracy_of

log = logging.getLogger(__name__)

#: Most classes for which the per-class test confusion matrix is stored (it grows with the square).
CONFUSION_LIMIT = 200


def score_methods(
    res: RunResources, cfg: RunConfig, state: GraphState
) -> tuple[dict[str, MethodScore], dict[str, Any]]:
    """Every method on every split: the baselines, ``optimized`` and the image line; test once, at the end.

    Baselines: names, templates, llm_oneshot, waffle, the signals' controls (visual_words), searched_words.

    Also returns the per-class test accuracy and test confusion of the initial (``llm_oneshot``) and
    optimized descriptions, for the report's before/after plots.
    """
    controls = signal_controls(cfg, res, state.vocabulary_extra)
    sets = baseline_prompt_sets(res.classnames, state.initial, cfg.resolved_template, cfg.seed, controls)
    best = state.best or state.descriptions
    sets["optimized"] = description_prompts(state.prompts_of(best), cfg.session_template)
    test = res.test_loader()
    out: dict[str, MethodScore] = {}
    details: dict[str, Any] = {"split": "test", "classnames": list(res.classnames)}
    for name, prompts in sets.items():
        if not all(prompts.get(c) for c in res.classnames):
            continue
        fb = prompt_objective(
            res.encoder,
            res.classnames,
            prompts,
            res.feedback.image_emb,
            res.feedback.labels,
            device=cfg.backbone.device,
        )
        val = (
            prompt_objective(
                res.encoder,
                res.classnames,
                prompts,
                res.validation.image_emb,
                res.validation.labels,
                device=cfg.backbone.device,
            )
            if res.validation is not None
            else None
        )
        te_session = prompt_session(
            res.encoder, res.classnames, prompts, test.image_emb, test.labels, device=cfg.backbone.device
        )
        # Accuracies from the per-image margins alone: the full feedback would also build the lambda
        # confusion, which for near-tied baselines (class names alone) holds almost every (image, class)
        # pair: 14 GB at 21,000 classes, and nothing here reads it.
        correct = (te_session.engine.margins() > 0).cpu().numpy()
        te_acc = float(correct.mean())
        if name in ("llm_oneshot", "optimized"):
            labels = np.asarray(test.labels)
            count = np.bincount(labels, minlength=len(res.classnames))
            per_class = np.bincount(labels[correct], minlength=len(res.classnames)) / np.maximum(count, 1)
            small = len(res.classnames) <= CONFUSION_LIMIT
            details[name] = {
                "accuracy": te_acc,
                "per_class_accuracy": [None if n == 0 else float(a) for a, n in zip(per_class, count, strict=True)],
                "confusion": te_session.feedback().confusion.tolist() if small else [],
            }
        out[name] = MethodScore(
            feedback_accuracy=fb.accuracy,
            validation_accuracy=val.accuracy if val is not None else None,
            test_accuracy=te_acc,
            prompts_per_class=sum(len(v) for v in prompts.values()) / max(1, len(prompts)),
        )
    t0 = time.perf_counter()
    searched_s: dict[str, float] = {}  # seconds of each searched line (not in the scores: a resumed run repeats them)
    searched = searched_words(res, state.vocabulary_extra)
    if searched is not None:
        out["searched_words"] = score_searched(*searched, res, test)
        searched_s["searched_words"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lines = proapo_lines(res, cfg, state.initial, state.vocabulary_extra)
    for method, found in lines.items():
        log.info("%s: templates %s; snapshot %d picked on %s", method, found.templates.templates,
                 found.found.round_picked, found.found.picked_on)  # fmt: skip
        out[method] = score_vectors(found.library.vectors(found.found.chosen), found.found.chosen, res, test)
        searched_s[method] = found.seconds
    details["search_s"] = searched_s
    out.update(score_image_line(res, cfg, test))
    side = cfg.resolved_image_side
    if side is not None:
        details["image_side"] = score_image_side(res, cfg, sets, test, side).model_dump(mode="json")
    return out, details


def score_searched(library: ItemLibrary, found: SearchResult, res: RunResources, test: EmbeddedSplit) -> MethodScore:
    """The searched-words line on every split (its set was picked on validation; the test is scored here once)."""
    log.info("searched words: round %d picked on %s", found.round_picked, found.picked_on)
    return score_vectors(library.vectors(found.chosen), found.chosen, res, test)


def score_vectors(
    vec: np.ndarray, chosen: Sequence[Sequence[int]], res: RunResources, test: EmbeddedSplit
) -> MethodScore:
    """A searched line's class vectors on every split (chosen on feedback/validation; the test scored once)."""
    val = res.validation
    return MethodScore(
        feedback_accuracy=accuracy_of(vec, res.feedback.image_emb, res.feedback.labels),
        validation_accuracy=accuracy_of(vec, val.image_emb, val.labels) if val is not None else None,
        test_accuracy=accuracy_of(vec, test.image_emb, test.labels),
        prompts_per_class=sum(map(len, chosen)) / max(1, len(chosen)),
    )


def score_image_line(res: RunResources, cfg: RunConfig, test: EmbeddedSplit) -> dict[str, MethodScore]:
    """The image line (prototypes, linear probe) on every split; empty for a single class."""
    line = image_line(res, cfg.seed)
    if line is None:
        return {}
    val = res.validation
    log.info("linear probe: C = %g (%s)", line.probe_c, line.probe_c_source)
    return {
        method: MethodScore(
            feedback_accuracy=accuracy(line.predict(method, res.feedback.image_emb), res.feedback.labels),
            validation_accuracy=accuracy(line.predict(method, val.image_emb), val.labels) if val is not None else None,
            test_accuracy=accuracy(line.predict(method, test.image_emb), test.labels),
            prompts_per_class=0.0,
            uses_images=True,
        )
        for method in line.methods  # prototypes alone where the probe was too large to fit
    }


def score_image_side(
    res: RunResources, cfg: RunConfig, sets: dict[str, PromptSet], test: EmbeddedSplit, side: ImageSide
) -> ImageSideResult:
    """Every method on the test split with the image alone and with the configured fusion (one MLLM pass, cached)."""
    from visfeed.tools.embedding.builtin_models import visfeed_cache_dir

    if test.paths is None:
        raise DataError("the image side needs the test split's image files; this dataset gives none")
    handle, client = open_mllm(
        cfg.image_side.mllm,
        base_url=cfg.image_side.mllm_base_url,
        cache_path=cfg.llm.cache_file or visfeed_cache_dir(os.environ) / "mllm_cache.sqlite",
        seed=cfg.seed,
        max_concurrency=cfg.llm.max_concurrency,
    )
    with handle:
        log.info("image side (%s): %s", cfg.image_side.mllm, projected(handle, len(test.paths), side, res.classnames))
        return image_side_grid(
            client, res.encoder, res.classnames, sets, test.paths, test.image_emb, test.labels,
            [ImageSide(parts=("image",)), side], device=cfg.backbone.device,
            selection=selection_split(res.validation, res.feedback) if side.auto else None,
        )  # fmt: skip
