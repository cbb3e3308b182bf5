"""One honest concept-classifier experiment on embedded splits.

Order, and why: features of the training (feedback) and validation splits; per classifier and feature
source, the columns are chosen by permutation importance on the validation split and the model refitted on
the training split; validation accuracies are recorded; only then is the test split loaded, once, and every
model and baseline scored on it. The baselines sit on the same splits: zero-shot class names and the 80
templates (no training), and a linear probe on the raw image embeddings (training split only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.base import clone
from sklearn.metrics import confusion_matrix

from visfeed.tools.concepts.classifiers import (
    ClassifierKind,
    logistic,
    make_classifier,
    permutation_scores,
    select_columns,
)
from visfeed.tools.concepts.explain import aggregate, class_importance, positive_top, shared_top
from visfeed.tools.concepts.features import FeatureSpace, clue_features
from visfeed.tools.feedback.baselines import names_prompts, prompt_objective, template_prompts
from visfeed.tools.scoring.session import TextEncoder

log = logging.getLogger(__name__)


class Embedded(Protocol):
    """A split as the data loader embedded it (``EmbeddedSplit``): image embeddings and labels."""

    image_emb: np.ndarray
    labels: np.ndarray


class ModelScore(BaseModel):
    """One classifier on one feature source: sizes, validation and test accuracy (percent)."""

    classifier: str
    source: str
    n_features: int
    n_selected: int
    val_accuracy: float | None = None
    test_accuracy: float | None = None


class Explained(BaseModel):
    """Explanations of one fitted model (validation split), ready for the report."""

    importance: dict[str, float] = Field(description="Clue -> permutation importance (accuracy drop).")
    by_part: dict[str, float]
    by_attribute: dict[str, float]
    per_class: dict[str, list[tuple[str, float]]] = Field(description="Class -> its most important clues.")
    per_class_positive: dict[str, list[tuple[str, float]]] = Field(
        default_factory=dict, description="Class -> its most important clues that are higher on its images."
    )
    confused_pairs: list[dict[str, Any]] = Field(default_factory=list, description="Test pairs and shared top clues.")
    confusion: list[list[int]] = Field(default_factory=list, description="Test confusion (rows true).")


@dataclass
class Fitted:
    """A fitted model with the columns it uses."""

    score: ModelScore
    model: Any
    space: FeatureSpace
    train: pd.DataFrame = field(repr=False)
    val: pd.DataFrame = field(repr=False)


@dataclass
class Experiment:
    """Inputs of :func:`run_experiment` (the test split only behind ``test_loader``)."""

    encoder: TextEncoder
    classnames: list[str]
    train: Embedded
    validation: Embedded
    test_loader: Callable[[], Embedded]
    scale: float
    device: str = "auto"


def _frame(exp: Experiment, space: FeatureSpace, split: Embedded) -> pd.DataFrame:
    return space.frame(clue_features(exp.encoder, space, split.image_emb, scale=exp.scale, device=exp.device))


def _accuracy(model: Any, X: Any, y: np.ndarray) -> float:
    return 100.0 * float((model.predict(X) == y).mean())


def fit_models(
    exp: Experiment,
    spaces: Mapping[str, FeatureSpace],
    kinds: Sequence[ClassifierKind],
    *,
    seed: int,
    select: bool = True,
) -> list[Fitted]:
    """Fit every (source, classifier), selecting columns on validation; the test split is not touched."""
    fitted = []
    for source, space in spaces.items():
        tr_all, va_all = _frame(exp, space, exp.train), _frame(exp, space, exp.validation)
        for kind in kinds:
            keep = list(range(len(space)))
            if select:
                keep = select_columns(
                    make_classifier(kind, space.groups, seed),
                    tr_all, exp.train.labels, va_all, exp.validation.labels, seed=seed,
                )  # fmt: skip
            sub = space.subset(keep)
            tr, va = tr_all.iloc[:, keep], va_all.iloc[:, keep]
            model = clone(make_classifier(kind, sub.groups, seed)).fit(tr, exp.train.labels)
            score = ModelScore(
                classifier=kind, source=source, n_features=len(space), n_selected=len(keep),
                val_accuracy=_accuracy(model, va, exp.validation.labels),
            )  # fmt: skip
            log.info(
                "%s on %s: %d/%d columns, validation %.1f%%", kind, source, len(keep), len(space), score.val_accuracy
            )
            fitted.append(Fitted(score=score, model=model, space=sub, train=tr, val=va))
    return fitted


def score_on_test(exp: Experiment, fitted: Sequence[Fitted]) -> tuple[dict[str, float], Embedded]:
    """Load the test split once; score every fitted model (into its ``score``) and the baselines."""
    test = exp.test_loader()
    for f in fitted:
        f.score.test_accuracy = _accuracy(f.model, _frame(exp, f.space, test), test.labels)
    return baselines(exp, test), test


def baselines(exp: Experiment, test: Embedded) -> dict[str, float]:
    """Zero-shot names and templates, and the linear probe on image embeddings (fitted on training only)."""
    out = {}
    for name, prompts in (
        ("zero_shot_names", names_prompts(exp.classnames)),
        ("zero_shot_templates", template_prompts(exp.classnames)),
    ):
        obj = prompt_objective(exp.encoder, exp.classnames, prompts, test.image_emb, test.labels, device=exp.device)
        out[name] = 100.0 * obj.accuracy
    probe = logistic().fit(exp.train.image_emb, exp.train.labels)
    out["linear_probe"] = _accuracy(probe, test.image_emb, test.labels)
    return out


def explain_model(f: Fitted, exp: Experiment, test: Embedded, *, seed: int, top_k: int = 5) -> Explained:
    """Importance on validation (global, per part, per attribute, per class) and the test confusions."""
    names = list(f.space.texts)
    imp = permutation_scores(f.model, f.val, exp.validation.labels, seed=seed)
    per_class = class_importance(f.model, f.val, exp.validation.labels, seed=seed)
    classes = list(f.model.classes_)
    per_class_top = {
        exp.classnames[int(c)]: [(names[i], float(per_class[i, ci])) for i in np.argsort(-per_class[:, ci])[:top_k]]
        for ci, c in enumerate(classes)
    }
    positive = positive_top(per_class, f.val, exp.validation.labels, classes, k=top_k)
    per_class_positive = {
        exp.classnames[int(c)]: [(names[i], float(per_class[i, ci])) for i in positive[ci]]
        for ci, c in enumerate(classes)
    }
    pred = f.model.predict(_frame(exp, f.space, test))
    conf = confusion_matrix(test.labels, pred, labels=list(range(len(exp.classnames))))
    off = conf.copy()
    np.fill_diagonal(off, 0)
    pairs = []
    for flat in np.argsort(-off, axis=None)[:3]:
        a, b = np.unravel_index(int(flat), off.shape)
        if off[a, b] == 0 or a not in classes or b not in classes:
            continue
        shared = shared_top(per_class, classes.index(a), classes.index(b), names, k=top_k)
        pairs.append(
            {"true": exp.classnames[a], "predicted": exp.classnames[b], "count": int(off[a, b]), "shared": shared}
        )
    return Explained(
        importance=dict(sorted(zip(names, map(float, imp), strict=True), key=lambda kv: -kv[1])),
        by_part=aggregate(imp, f.space.groups),
        by_attribute=aggregate(imp, f.space.attributes),
        per_class=per_class_top,
        per_class_positive=per_class_positive,
        confused_pairs=pairs,
        confusion=conf.tolist(),
    )
