"""The synthetic market world as a dataset: spec, vocabulary, renderer and rendered splits.

``load_dataset("world", spec_path)`` (or ``--dataset world``) renders the splits on demand; the world's
text tower, its gates and the ceiling study live in :mod:`visfeed.evals.world`.
"""
