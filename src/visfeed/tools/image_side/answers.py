"""Ask a multimodal LLM about a split's pictures, embed its answers, and score fused queries.

The glue between :mod:`visfeed.tools.llm.vision` (the questions, through the cached, budgeted client),
:mod:`visfeed.tools.image_side.fusion` (truncation and the fused query) and the scoring engine: a class side (any
prompt set: names, templates, one-shot or optimized descriptions, a CuPL file) is scored against the
fused queries exactly as against image embeddings, so every class-side method gets the image side.

The label question is asked with the class names as an enum (:func:`~visfeed.tools.llm.vision.ask_labels`):
the answer is one of them, or empty when a provider that cannot be constrained gives none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from visfeed.state.image_side import ImageSide
from visfeed.tools.feedback.baselines import prompt_session
from visfeed.tools.image_side.fusion import match_label
from visfeed.tools.llm.client import LLMClient
from visfeed.tools.llm.vision import CLASSIFY_PROMPT, DESCRIBE_PROMPT, ask_about_images, ask_labels
from visfeed.tools.scoring.measures import margins
from visfeed.tools.scoring.session import TextEncoder


@dataclass
class ImageViews:
    """What the MLLM said about each picture of a split, and the embeddings of every part."""

    descriptions: list[str]
    label_answers: list[str]
    guessed: np.ndarray  # class index the label answer names, -1 when it names none
    parts: dict[str, np.ndarray]

    def label_correct(self, labels: np.ndarray) -> np.ndarray:
        """Per picture, whether the MLLM's label guess names the true class."""
        return np.asarray(self.guessed == np.asarray(labels), dtype=bool)


def classify_prompt(classnames: Sequence[str]) -> str:
    """The label question with the label list filled in."""
    return CLASSIFY_PROMPT.format(classes=", ".join(classnames))


async def ask_mllm(
    client: LLMClient, paths: Sequence[str], classnames: Sequence[str], side: ImageSide
) -> tuple[list[str], list[str]]:
    """(descriptions, label answers) for ``paths``; a part the side does not use is not asked for."""
    empty = [""] * len(paths)
    desc = (
        await ask_about_images(client, paths, DESCRIBE_PROMPT, task="image_describe")
        if "description" in side.parts
        else empty
    )
    label = (
        await ask_labels(client, paths, classnames, classify_prompt(classnames), task="image_label")
        if "label" in side.parts
        else empty
    )
    return desc, label


def view_images(
    client: LLMClient | None,
    encoder: TextEncoder,
    paths: Sequence[str],
    image_emb: np.ndarray,
    classnames: Sequence[str],
    side: ImageSide,
    *,
    fit: Callable[[str], str] | None = None,
) -> ImageViews:
    """Ask the MLLM (when the side needs it) and embed its answers, cut by ``fit`` to the text tower."""
    if side.asks_mllm:
        if client is None:
            raise ValueError("the image side uses MLLM text but no client was given")
        desc, label = client.run(ask_mllm(client, paths, classnames, side))
    else:
        desc, label = [""] * len(paths), [""] * len(paths)
    cut = fit or (lambda t: t)
    parts = {"image": np.asarray(image_emb, dtype=np.float32)}
    for name, texts in (("description", desc), ("label", label)):
        if name in side.parts:
            parts[name] = encoder.embed_texts([cut(t) for t in texts])
    guessed = np.asarray([match_label(a, classnames) for a in label], dtype=np.int64)
    return ImageViews(descriptions=desc, label_answers=label, guessed=guessed, parts=parts)


def class_matrix(
    encoder: TextEncoder,
    classnames: Sequence[str],
    prompts: Mapping[str, Sequence[str]],
    image_emb: np.ndarray,
    labels: np.ndarray,
    *,
    device: str = "auto",
) -> np.ndarray:
    """(K, d) rows a class side scores queries with: the engine's description centroids (``query @ rows.T``)."""
    session = prompt_session(encoder, classnames, prompts, image_emb, labels, device=device)
    return np.asarray(session.engine.centroids.float().cpu().numpy())


def correct_against(queries: np.ndarray, rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per query: is its best class under ``queries @ rows.T`` the true one (ties count as wrong, as in the engine)."""
    scores = torch.as_tensor(np.asarray(queries, dtype=np.float32)) @ torch.as_tensor(rows, dtype=torch.float32).T
    right: torch.Tensor = margins(scores, torch.as_tensor(np.asarray(labels), dtype=torch.long)) > 0
    return np.asarray(right.numpy(), dtype=bool)
