"""Concept-classifier experiments: fit with selection on validation, score the test split once, explain, report."""
