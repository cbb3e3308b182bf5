"""Concept classifiers on the tiny fruit world: estimator conventions, the vote's tie rule, honest selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tests.agents.conftest import ATTRS, CLASSES, CountingTest, SyntheticEncoder, make_split

from visfeed.agents.resources import EmbeddedSplit
from visfeed.evals.concepts.experiment import Experiment, explain_model, fit_models, score_on_test
from visfeed.state.concepts import ConceptTree, merge_values
from visfeed.tools.concepts.classifiers import PartVoteClassifier, vote
from visfeed.tools.concepts.explain import class_importance, explain_rows, positive_top, shap_values
from visfeed.tools.concepts.features import description_space, select_space, tree_space

PARTS = {"skin": 0, "body": 1, "detail": 2}


def fruit_tree() -> ConceptTree:
    answers = [(part, "look", c, ATTRS[c][i]) for c in CLASSES for part, i in PARTS.items()]
    return ConceptTree(
        domain="fruit",
        classnames=CLASSES,
        template="{value}",
        parts=[{"name": p, "attributes": ["look"]} for p in PARTS],
        values=merge_values(answers, CLASSES),
    )


def experiment(test: EmbeddedSplit | None = None) -> tuple[Experiment, CountingTest]:
    loader = CountingTest(test if test is not None else make_split(10, seed=3))
    exp = Experiment(
        encoder=SyntheticEncoder(), classnames=CLASSES, train=make_split(8, seed=1),
        validation=make_split(8, seed=2), test_loader=loader, scale=10.0, device="cpu",
    )  # fmt: skip
    return exp, loader


def test_tie_goes_to_the_larger_summed_probability_not_the_lower_index() -> None:
    # two parts, three classes: part 0 votes class 2 (0.5), part 1 votes class 0 (0.4); class 2 sums 0.5 + 0.35
    p = np.array([[[0.2, 0.3, 0.5]], [[0.4, 0.25, 0.35]]])
    assert vote(p).tolist() == [2]
    p_flipped = p[:, :, ::-1]  # the same case with the class order reversed: still the class with more mass
    assert vote(p_flipped).tolist() == [0]
    three = np.array([[[0.6, 0.4, 0.0]], [[0.6, 0.4, 0.0]], [[0.1, 0.2, 0.7]]])
    assert vote(three).tolist() == [0]  # a clear majority wins even against a more confident single part


def test_part_vote_follows_estimator_conventions() -> None:
    space = tree_space(fruit_tree())
    exp, _ = experiment()
    from visfeed.tools.concepts.features import clue_features

    X = space.frame(clue_features(exp.encoder, space, exp.train.image_emb, scale=10.0, device="cpu"))
    model = PartVoteClassifier(groups=list(space.groups)).fit(X, exp.train.labels)
    assert list(model.feature_names_in_) == list(space.texts)
    assert model.get_params()["groups"] == list(space.groups)
    assert model.predict_proba(X).shape == (len(X), len(CLASSES))
    assert clone(model).get_params() == model.get_params()
    assert (model.predict(X) == exp.train.labels).mean() > 0.5
    with pytest.raises(ValueError, match="feature names"):
        model.predict(X.rename(columns={X.columns[0]: "something else"}))


def test_selection_never_sees_the_test_split() -> None:
    spaces = {"tree": tree_space(fruit_tree())}
    exp, loader = experiment()
    fitted = fit_models(exp, spaces, ["part_vote", "logistic"], seed=0)
    assert loader.calls == 0  # nothing fitted or selected so far has loaded the test split
    # the same fit with a test split whose labels are scrambled: every selection and validation score equal
    scrambled = make_split(10, seed=3)
    scrambled.labels = np.random.default_rng(0).permutation(scrambled.labels)
    exp2, loader2 = experiment(scrambled)
    fitted2 = fit_models(exp2, spaces, ["part_vote", "logistic"], seed=0)
    assert [f.space.texts for f in fitted] == [f.space.texts for f in fitted2]
    assert [f.score.val_accuracy for f in fitted] == [f.score.val_accuracy for f in fitted2]
    base, _ = score_on_test(exp, fitted)
    assert loader.calls == 1 and loader2.calls == 0
    assert all(f.score.test_accuracy is not None for f in fitted)
    assert set(base) == {"zero_shot_names", "zero_shot_templates", "linear_probe"}
    assert max(f.score.test_accuracy or 0 for f in fitted) > 100 / len(CLASSES) + 20


def test_explanations_name_clues_parts_and_classes() -> None:
    tree = fruit_tree()
    prompts = {c: [f"a {' '.join(ATTRS[c])} fruit"] for c in CLASSES}
    spaces = {"both": select_space("both", tree, prompts)}
    assert len(spaces["both"]) == len(tree_space(tree)) + len(description_space(prompts))
    exp, _ = experiment()
    fitted = fit_models(exp, spaces, ["logistic", "forest", "part_vote"], seed=0, select=False)
    _, test = score_on_test(exp, fitted)
    ex = explain_model(fitted[0], exp, test, seed=0)
    assert set(ex.by_part) == {*PARTS, *(f"descriptions/{c}" for c in CLASSES)}
    assert set(ex.per_class) == set(CLASSES)
    assert np.asarray(ex.confusion).sum() == len(test.labels)
    # the clues that matter for 'banana' include its own words
    banana = [clue for clue, _ in ex.per_class["banana"]]
    assert any(w in clue for clue in banana for w in ("long", "curved", "yellow"))
    for f in fitted:  # linear SHAP (logistic, each part of the vote) and tree SHAP (forest)
        rows = f.val.iloc[:3]
        out = explain_rows(f.model, f.train, rows, images=["a", "b", "c"], classnames=CLASSES, true=[0, 0, 0])
        assert [e.image for e in out] == ["a", "b", "c"]
        assert all(e.for_predicted and all(c.shap > 0 for c in e.for_predicted) for e in out)
        assert all(c.shap < 0 for e in out for c in e.against_true)


def signal_frame(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Three classes; column k is high exactly on class k's rows; two more columns are noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.standard_normal((n, 5)) * 0.3
    X[np.arange(n), y] += 2.0
    return pd.DataFrame(X, columns=["own 0", "own 1", "own 2", "noise a", "noise b"]), y


def test_class_importance_columns_follow_the_model_classes() -> None:
    X, y = signal_frame()
    model = LogisticRegression(max_iter=500).fit(X, y)
    imp = class_importance(model, X, y, seed=0)
    assert imp.shape == (5, 3)
    assert [int(np.argmax(imp[:, k])) for k in range(3)] == [0, 1, 2]  # class k's most important clue: column k
    # positive evidence: the clue that is high on the class's rows (here each class's own column), first
    assert [top[0] for top in positive_top(imp, X, y, list(model.classes_), k=2)] == [0, 1, 2]


def test_every_fitted_class_is_explained_by_its_own_clues() -> None:
    exp, _ = experiment()
    fitted = fit_models(exp, {"tree": tree_space(fruit_tree())}, ["logistic"], seed=0, select=False)
    _, test = score_on_test(exp, fitted)
    ex = explain_model(fitted[0], exp, test, seed=0)
    for c in CLASSES:  # the top positive clue of every class names one of its own words
        clue = ex.per_class_positive[c][0][0]
        assert clue in ATTRS[c], (c, ex.per_class_positive[c])


@pytest.mark.parametrize("kind", ["logistic", "forest", "part_vote"])
def test_shap_values_sit_on_the_clue_they_explain(kind: str) -> None:
    X, y = signal_frame()
    space_groups = ["a", "a", "a", "a", "b"]  # one part holds every signal; the other votes on noise
    model = {
        "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        "forest": lambda: RandomForestClassifier(n_estimators=50, random_state=0),
        "part_vote": lambda: PartVoteClassifier(groups=space_groups),
    }[kind]().fit(X, y)
    values = shap_values(model, X.iloc[:100], X.iloc[100:160])
    assert values.shape == (60, 5, 3)
    weight = np.abs(values).mean(axis=0)  # (clues, classes)
    # the clue of class k carries class k's explanation; the noise columns carry the least
    assert [int(np.argmax(weight[:3, k])) for k in range(3)] == [0, 1, 2]
    assert weight[3:].max() < weight[:3].max(axis=0).min()
    rows = X.iloc[100:106]
    out = explain_rows(model, X.iloc[:100], rows, images=list("abcdef"), classnames=["x", "y", "z"], k=1)
    for e, true in zip(out, y[100:106], strict=True):  # each row is explained by its own class's clue
        assert e.predicted == "xyz"[true] and e.for_predicted[0].clue == f"own {true}"
