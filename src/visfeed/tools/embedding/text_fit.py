"""Texts cut to what a text tower accepts: by whole words, counted by the tower's own tokenizer.

An MLLM's answer about a picture is free text of any length; the embedding side cuts it before it is
embedded, the way the authors of "What do you see?" (arXiv 2405.15668) did.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from visfeed.errors import EmbeddingError

MAX_WORDS = 100
"""The authors cut MLLM text to 100 words first, then shorter until the tokenizer accepts it."""


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
