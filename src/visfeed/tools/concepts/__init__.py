"""Interpretable classifiers on concept features: clue similarities, scikit-learn estimators, explanations."""
