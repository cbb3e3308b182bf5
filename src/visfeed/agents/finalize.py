"""End of a run: score the best set and the baselines, touching the test split exactly once.

Selection happened on the feedback (and optionally validation) split inside the graph; here the test
embeddings are loaded once and every method (baselines and optimized) is scored on them, on the same
backbone, so ``result.json`` compares like with like.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from visfeed.agents.resources import RunResources
from visfeed.evals.baselines import baseline_prompt_sets, description_prompts, prompt_objective
from visfeed.state.config import RunConfig
from visfeed.state.models import GraphState


class MethodScore(BaseModel):
    """Accuracy of one prompt set on the feedback, validation and test splits."""

    feedback_accuracy: float
    validation_accuracy: float | None = None
    test_accuracy: float | None = None
    prompts_per_class: float = Field(description="Mean number of prompts per class.")


def score_methods(res: RunResources, cfg: RunConfig, state: GraphState) -> dict[str, MethodScore]:
    """Baselines (names, templates, llm_oneshot, waffle) and ``optimized`` on every split; test once."""
    sets = baseline_prompt_sets(res.classnames, state.initial, cfg.template, cfg.seed)
    sets["optimized"] = description_prompts(state.best or state.descriptions, cfg.template)
    test = res.test_loader()
    out: dict[str, MethodScore] = {}
    for name, prompts in sets.items():
        if not all(prompts.get(c) for c in res.classnames):
            continue
        fb = prompt_objective(
            res.encoder, res.classnames, prompts, res.feedback.image_emb, res.feedback.labels, device=cfg.device
        )
        val = (
            prompt_objective(
                res.encoder, res.classnames, prompts, res.validation.image_emb, res.validation.labels, device=cfg.device
            )
            if res.validation is not None
            else None
        )
        te = prompt_objective(res.encoder, res.classnames, prompts, test.image_emb, test.labels, device=cfg.device)
        out[name] = MethodScore(
            feedback_accuracy=fb.accuracy,
            validation_accuracy=val.accuracy if val is not None else None,
            test_accuracy=te.accuracy,
            prompts_per_class=sum(len(v) for v in prompts.values()) / max(1, len(prompts)),
        )
    return out
