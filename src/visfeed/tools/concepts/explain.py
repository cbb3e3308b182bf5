"""Explanations of a fitted concept classifier, all computed on the validation split or on given images.

- global: scikit-learn's permutation importance per column, summed per part and per attribute;
- per class: the drop in the true class's mean probability, over that class's images, when a column is
  shuffled (one pass of permutations serves every class), and the positive evidence among those columns
  (the clues that are higher on the class's images, not the ones that matter by their absence);
- a confused pair: the columns important to both classes (where the model looks when it mixes them up);
- per prediction: SHAP values (shap's linear explainer on the standardised inputs of the logistic models,
  its tree explainer for the forest), with the clues that push for and against a class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import shap
from pydantic import BaseModel
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from visfeed.errors import ConfigError
from visfeed.tools.concepts.classifiers import PartVoteClassifier


def aggregate(scores: np.ndarray, keys: Sequence[str]) -> dict[str, float]:
    """Sum of ``scores`` per key (a part or an attribute), largest first."""
    out: dict[str, float] = {}
    for k, s in zip(keys, scores, strict=True):
        out[k] = out.get(k, 0.0) + float(s)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def class_importance(model: Any, X: pd.DataFrame, y: np.ndarray, *, seed: int, n_repeats: int = 3) -> np.ndarray:
    """(columns, classes): mean drop in the true class's probability on that class's images when a column is shuffled."""
    rng = np.random.default_rng(seed)
    classes = list(model.classes_)
    idx = np.asarray([classes.index(v) for v in y])
    n_classes = len(classes)

    def per_class(frame: pd.DataFrame) -> np.ndarray:
        p = model.predict_proba(frame)[np.arange(len(y)), idx]
        sums = np.bincount(idx, weights=p, minlength=n_classes)
        counts = np.maximum(np.bincount(idx, minlength=n_classes), 1)
        return sums / counts

    base = per_class(X)
    out = np.zeros((X.shape[1], n_classes))
    values = X.to_numpy()
    for j in range(X.shape[1]):
        for _ in range(n_repeats):
            shuffled = values.copy()
            shuffled[:, j] = rng.permutation(shuffled[:, j])
            out[j] += base - per_class(pd.DataFrame(shuffled, columns=X.columns))
    return out / n_repeats


def positive_top(
    per_class: np.ndarray, X: pd.DataFrame, y: np.ndarray, classes: Sequence[Any], k: int = 5
) -> list[list[int]]:
    """Per class (in ``classes`` order): up to ``k`` columns of positive evidence, most important first.

    A column is positive evidence for a class when shuffling it hurts that class (importance > 0) and it is
    higher on the class's images than on the others' (mean standardised value): the clue speaks *for* the
    class. Permutation importance alone also ranks clues that matter because they are absent ("not red"),
    which say nothing about what the class looks like.
    """
    values = X.to_numpy()
    z = (values - values.mean(axis=0)) / np.maximum(values.std(axis=0), 1e-12)
    out = []
    for ci, c in enumerate(classes):
        mine = np.asarray(y) == c
        lift = z[mine].mean(axis=0) - z[~mine].mean(axis=0) if mine.any() and (~mine).any() else np.zeros(z.shape[1])
        keep = [int(i) for i in np.argsort(-per_class[:, ci], kind="stable") if per_class[i, ci] > 0 and lift[i] > 0]
        out.append(keep[:k])
    return out


def shared_top(per_class: np.ndarray, a: int, b: int, names: Sequence[str], k: int = 5) -> list[str]:
    """Columns among the ``k`` most important of both class ``a`` and class ``b`` (a confused pair)."""
    top_a = {int(i) for i in np.argsort(-per_class[:, a])[:k]}
    top_b = [int(i) for i in np.argsort(-per_class[:, b])[:k]]
    return [names[i] for i in top_b if i in top_a]


def shap_values(model: Any, background: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """(rows, columns, classes) SHAP values of ``model``'s class scores (log-odds or probabilities)."""
    if isinstance(model, RandomForestClassifier):
        return np.asarray(shap.TreeExplainer(model)(rows.to_numpy()).values)
    if isinstance(model, Pipeline):
        return _linear_shap(model, background, rows)
    if isinstance(model, PartVoteClassifier):
        out = np.zeros((len(rows), rows.shape[1], len(model.classes_)))
        for est, cols in zip(model.estimators_, model.columns_, strict=True):
            out[:, cols, :] = _linear_shap(est, background.to_numpy()[:, cols], rows.to_numpy()[:, cols])
        return out
    raise ConfigError(f"no SHAP explainer for {type(model).__name__}")


def _linear_shap(pipe: Pipeline, background: Any, rows: Any) -> np.ndarray:
    """Linear SHAP of a standardise + logistic-regression pipeline, in the regression's standardised space."""
    scaler, lr = pipe[0], pipe[-1]
    explainer = shap.LinearExplainer(lr, shap.maskers.Independent(scaler.transform(background)))
    values = np.asarray(explainer(scaler.transform(rows)).values)
    if values.ndim == 2:  # two classes: one logit, for the second class
        values = np.stack([-values, values], axis=2)
    return values


class ClueContribution(BaseModel):
    """One clue's SHAP value for one class in one prediction."""

    clue: str
    shap: float


class Explanation(BaseModel):
    """One image's prediction and the clues that pushed for and against the predicted and the true class."""

    image: str
    predicted: str
    probability: float
    true: str | None = None
    for_predicted: list[ClueContribution]
    against_predicted: list[ClueContribution]
    for_true: list[ClueContribution] = []
    against_true: list[ClueContribution] = []


def explain_rows(
    model: Any,
    background: pd.DataFrame,
    rows: pd.DataFrame,
    *,
    images: Sequence[str],
    classnames: Sequence[str],
    true: Sequence[int | None] | None = None,
    k: int = 5,
) -> list[Explanation]:
    """Prediction plus the top ``k`` clues for and against the predicted (and true) class of each row."""
    values = shap_values(model, background, rows)
    proba = model.predict_proba(rows)
    pred = model.predict(rows)
    classes = list(model.classes_)
    names = list(rows.columns)

    def top(v: np.ndarray, sign: int) -> list[ClueContribution]:
        order = np.argsort(-sign * v)[:k]
        return [ClueContribution(clue=names[i], shap=float(v[i])) for i in order if sign * v[i] > 0]

    out = []
    for r, img in enumerate(images):
        p = classes.index(pred[r])
        t = None if true is None else true[r]
        ex = Explanation(
            image=img,
            predicted=classnames[int(pred[r])],
            probability=float(proba[r, p]),
            true=None if t is None else classnames[t],
            for_predicted=top(values[r, :, p], 1),
            against_predicted=top(values[r, :, p], -1),
        )
        if t is not None and t in classes:
            ti = classes.index(t)
            ex.for_true, ex.against_true = top(values[r, :, ti], 1), top(values[r, :, ti], -1)
        out.append(ex)
    return out
