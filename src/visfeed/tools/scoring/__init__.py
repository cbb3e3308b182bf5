"""Scoring: the math of ensembled descriptions, the incremental engine, sessions, FAISS indexes, the image line."""
