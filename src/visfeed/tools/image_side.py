"""Ask a multimodal LLM about a split's pictures, embed its answers, and score fused queries.

The glue between :mod:`visfeed.tools.llm.vision` (the questions, through the cached, budgeted client),
:mod:`visfeed.tools.fusion` (truncation and the fused query) and the scoring engine: a class side (any
prompt set: names, templates, one-shot or optimized descriptions, a CuPL file) is scored against the
fused queries exactly as against image embeddings, so every class-side method gets the image side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from visfeed.state.image_side import ImageSide
from visfeed.tools.baselines import prompt_session
from visfeed.tools.fusion import fuse, match_label
from visfeed.tools.llm.client import LLMClient
from visfeed.tools.llm.vision import CLASSIFY_PROMPT, DESCRIBE_PROMPT, ask_about_images
from visfeed.tools.session import TextEncoder


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
        await ask_about_images(client, paths, classify_prompt(classnames), task="image_label")
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


def correct_per_image(
    encoder: TextEncoder,
    classnames: Sequence[str],
    prompts: Mapping[str, Sequence[str]],
    queries: np.ndarray,
    labels: np.ndarray,
    *,
    device: str = "auto",
) -> np.ndarray:
    """Per query: is the class side's best class the true one (description ensembling, the engine's scores)."""
    session = prompt_session(encoder, classnames, prompts, queries, labels, device=device)
    right: torch.Tensor = session.engine.margins() > 0
    return np.asarray(right.cpu().numpy(), dtype=bool)


def fused_correct(
    encoder: TextEncoder,
    classnames: Sequence[str],
    prompts: Mapping[str, Sequence[str]],
    views: ImageViews,
    labels: np.ndarray,
    side: ImageSide,
    *,
    device: str = "auto",
) -> np.ndarray:
    """Per picture: correct under the fused query of ``side`` against the class side ``prompts``."""
    return correct_per_image(encoder, classnames, prompts, fuse(views.parts, side), labels, device=device)
