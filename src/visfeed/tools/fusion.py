"""The image side of zero-shot classification: fuse the picture with what a multimodal LLM says about it.

"What do you see?" (arXiv 2405.15668): the image embedding, the embedding of the MLLM's description of the
image and the embedding of its label guess are each L2-normalised, summed (equal weights by default,
nothing learned), renormalised, and the fused query is scored against the class side exactly as an image
embedding would be. Any subset of the three parts may be used. Texts longer than the VLM's text tower
accepts are cut by word, by the tower's own tokenizer, before they are embedded.

Pure functions here; asking the MLLM is :func:`visfeed.tools.llm.vision.ask_about_images`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from visfeed.errors import EmbeddingError
from visfeed.state.image_side import ImageSide

MAX_WORDS = 100
"""The authors cut MLLM text to 100 words first, then shorter until the tokenizer accepts it."""


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not np.all(norms > 0):
        raise EmbeddingError("cannot fuse a zero embedding")
    out: np.ndarray = x / norms
    return out


def fuse(parts: Mapping[str, np.ndarray], side: ImageSide) -> np.ndarray:
    """The fused queries (N, d): normalised weighted sum of the normalised parts ``side`` names."""
    missing = [p for p in side.parts if p not in parts]
    if missing:
        raise EmbeddingError(f"no embeddings for part(s) {', '.join(missing)}")
    shapes = {parts[p].shape for p in side.parts}
    if len(shapes) != 1:
        raise EmbeddingError(f"parts have different shapes: {sorted(shapes)}")
    total = sum(side.weight(p) * _unit(np.asarray(parts[p], dtype=np.float64)) for p in side.parts)
    return _unit(np.asarray(total)).astype(np.float32)


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """Tokens a text takes in an open_clip tokenizer, start and end tokens included.

    ``HFTokenizer`` wraps a Hugging Face tokenizer (``.tokenizer``); the CLIP ``SimpleTokenizer`` has
    ``.encode`` and adds two special tokens.
    """
    inner = getattr(tokenizer, "tokenizer", None)
    if inner is not None and callable(inner):
        return lambda text: len(inner(text)["input_ids"])
    if hasattr(tokenizer, "encode"):
        return lambda text: len(tokenizer.encode(text)) + 2
    raise EmbeddingError(f"cannot count tokens with a {type(tokenizer).__name__}")


def fit_text(text: str, count: Callable[[str], int], limit: int, *, max_words: int = MAX_WORDS) -> str:
    """``text`` cut by whole words to at most ``max_words`` and to what fits ``limit`` tokens.

    Longest prefix that fits, by bisection over the word count (tokens grow with words).
    """
    words = re.split(r"\s+", text.strip())[:max_words]
    if count(" ".join(words)) <= limit:
        return " ".join(words)
    lo, hi = 0, len(words)  # words[:lo] fits, words[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(" ".join(words[:mid])) <= limit:
            lo = mid
        else:
            hi = mid
    return " ".join(words[:lo])


def match_label(answer: str, classnames: Sequence[str]) -> int:
    """Index of the class an MLLM's free-text label answer names, or -1.

    The longest class name found as whole words wins (so "green apple" beats "apple"); case-insensitive.
    """
    text = f" {re.sub(r'[^a-z0-9]+', ' ', answer.lower())} "
    best, best_len = -1, 0
    for i, name in enumerate(classnames):
        key = re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()
        if key and (f" {key} " in text or f" {key}s " in text) and len(key) > best_len:
            best, best_len = i, len(key)
    return best
