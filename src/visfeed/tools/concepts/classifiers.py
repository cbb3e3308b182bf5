"""The concept classifiers as scikit-learn estimators, and feature selection on the validation split.

- :class:`PartVoteClassifier`: Hi-CoDe's model, one multinomial logistic regression per part (per group of
  columns), each part votes for its most probable class; a tie goes to the tied class with the largest
  probability summed over the parts (Hi-CoDe's code falls to the lowest class index, which favours classes
  by their position in the label list).
- ``logistic``: one flat logistic regression on all columns; ``forest``: a Random Forest (the article's).

Every model standardises its inputs (the similarities of different clues live on different scales) and
keeps the clue texts as ``feature_names_in_`` when fitted on a DataFrame, which is what makes importances
and SHAP values readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from visfeed.errors import ConfigError

ClassifierKind = Literal["part_vote", "logistic", "forest"]
CLASSIFIERS: tuple[ClassifierKind, ...] = get_args(ClassifierKind)
"""Every classifier kind, in the order fitted and reported: the type's own list, so the two cannot drift."""


def logistic(C: float = 1.0, max_iter: int = 2000) -> Pipeline:
    """Standardise, then a multinomial logistic regression (lbfgs: multinomial for several classes)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))


class PartVoteClassifier(ClassifierMixin, BaseEstimator):
    """One logistic regression per part; majority vote, ties broken by summed probability.

    ``groups``: the part of each column (same length as the columns). ``predict_proba`` is the mean of the
    parts' probabilities; ``predict`` is the vote, so the two can disagree when parts split their votes.
    """

    def __init__(self, groups: Sequence[str] = (), C: float = 1.0, max_iter: int = 2000) -> None:
        self.groups = groups
        self.C = C
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any) -> PartVoteClassifier:
        """Fit one regression per part on that part's columns."""
        X, y = validate_data(self, X, y)
        groups = list(self.groups)
        if len(groups) != X.shape[1]:
            raise ConfigError(f"groups names {len(groups)} columns but X has {X.shape[1]}")
        self.classes_ = unique_labels(y)
        self.parts_ = list(dict.fromkeys(groups))
        self.columns_ = [np.flatnonzero(np.asarray(groups) == p) for p in self.parts_]
        self.estimators_ = [logistic(self.C, self.max_iter).fit(X[:, cols], y) for cols in self.columns_]
        return self

    def part_proba(self, X: Any) -> np.ndarray:
        """(parts, N, classes): each part's class probabilities."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return np.stack(
            [est.predict_proba(X[:, cols]) for est, cols in zip(self.estimators_, self.columns_, strict=True)]
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        """Mean of the parts' probabilities."""
        return self.part_proba(X).mean(axis=0)

    def predict(self, X: Any) -> np.ndarray:
        """The majority vote of the parts (ties: largest summed probability among the tied classes)."""
        return self.classes_[vote(self.part_proba(X))]


def vote(part_proba: np.ndarray) -> np.ndarray:
    """Indices of the voted classes from (parts, N, classes) probabilities (see :class:`PartVoteClassifier`)."""
    n_images, n_classes = int(part_proba.shape[1]), int(part_proba.shape[2])
    votes = np.zeros((n_images, n_classes), dtype=np.int64)
    for part_choice in part_proba.argmax(axis=2):  # one vote per part and image
        votes[np.arange(n_images), part_choice] += 1
    tied = votes == votes.max(axis=1, keepdims=True)
    return np.where(tied, part_proba.sum(axis=0), -np.inf).argmax(axis=1)


def make_classifier(kind: ClassifierKind, groups: Sequence[str], seed: int) -> Any:
    """An unfitted estimator of ``kind`` for columns of ``groups``."""
    if kind == "part_vote":
        return PartVoteClassifier(groups=list(groups))
    if kind == "logistic":
        return logistic()
    if kind == "forest":
        return RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    raise ConfigError(f"unknown classifier {kind!r}; choose one of {', '.join(CLASSIFIERS)}")


def permutation_scores(model: Any, X: pd.DataFrame, y: np.ndarray, *, seed: int, n_repeats: int = 3) -> np.ndarray:
    """Mean drop of accuracy when each column is shuffled (scikit-learn's permutation importance)."""
    result = permutation_importance(model, X, y, scoring="accuracy", n_repeats=n_repeats, random_state=seed, n_jobs=1)
    return np.asarray(result["importances_mean"])


def select_columns(
    estimator: Any,
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_val: pd.DataFrame,
    y_val: np.ndarray,
    *,
    seed: int,
    min_keep: int = 5,
) -> list[int]:
    """Columns worth keeping, judged on the validation split only (the test split is never passed here).

    Fit ``estimator`` (a model over every column) on the training split, shuffle each column of the
    validation split, keep the columns whose shuffling costs accuracy (at least the ``min_keep`` most
    important ones).
    """
    all_cols = list(range(X_train.shape[1]))
    model = clone(estimator).fit(X_train, y_train)
    scores = permutation_scores(model, X_val, y_val, seed=seed)
    order = np.argsort(-scores, kind="stable")
    keep = [int(i) for i in order if scores[i] > 0]
    if len(keep) < min(min_keep, len(all_cols)):
        keep = [int(i) for i in order[: min(min_keep, len(all_cols))]]
    return sorted(keep)
