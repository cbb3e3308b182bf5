"""Questions about pictures to multimodal chat models, through the same client as every text call.

Why no second client: caching, budgets, retries, bounded concurrency and accounting must hold for image
calls exactly as for text, so a picture is just a content block (:mod:`visfeed.tools.llm.images`, which
the client and the cache use too) in a message sent by :class:`~visfeed.tools.llm.client.LLMClient`.
What this module adds on top of the client: the paper's two questions, one clear error when a provider
turns pictures away, the label question as structured output whose schema is an enum of the class names
(OpenAI's json_schema, llama.cpp's grammar from ``json_object`` + schema), so the guess is always one of
them, and the worst-case cost of a pass before any call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from visfeed.errors import ConfigError, ProviderError
from visfeed.tools.llm.accounting import ModelPrice, estimate_cost, estimate_tokens
from visfeed.tools.llm.client import LLMClient
from visfeed.tools.llm.handle import ProviderHandle
from visfeed.tools.llm.images import IMAGE_TOKENS, image_message
from visfeed.tools.llm.structured import StructuredOutputError, message_text

log = logging.getLogger(__name__)

DESCRIBE_PROMPT = "What do you see? Describe any object precisely, including its type or class."
CLASSIFY_PROMPT = (
    "You are given an image and a list of class labels. Classify the image given the class labels. "
    "Answer using a single word if possible. Here are the class labels: {classes}"
)
"""The two questions of "What do you see?" (arXiv 2405.15668), word for word."""

_REJECT_STATUS = frozenset({400, 404, 415, 422, 500, 501})
_REJECT_WORDS = ("image", "vision", "multimodal", "mmproj", "content type", "image_url")


def check_accepts_images(handle: ProviderHandle) -> None:
    """Refuse, before any call, a provider declared text-only."""
    if handle.accepts_images is False:
        raise ConfigError(
            f"provider {handle.provider}:{handle.model} does not take images; the image side needs a multimodal "
            "model: 'eyes' (the embedded stand-in), 'openai:gpt-4o-mini', or 'openai-compatible:MODEL' with "
            "--base-url of a vision server (llama-server --mmproj, vLLM, Ollama, LM Studio)"
        )


def rejected_images(exc: ProviderError) -> bool:
    """Whether a failed call looks like the server refusing pictures rather than a transient fault."""
    text = str(exc).lower()
    return exc.status in _REJECT_STATUS and any(w in text for w in _REJECT_WORDS)


async def ask_about_images(
    client: LLMClient, paths: Sequence[str], prompt: str, *, task: str, max_chars: int | None = None
) -> list[str]:
    """``prompt`` about each picture, concurrently (the client's semaphore bounds it); the answers' text.

    A provider that turns pictures away raises :class:`ConfigError` (exit code 2) naming it.
    """
    check_accepts_images(client.handle)

    async def one(path: str) -> str:
        reply = await client.ainvoke([image_message(path, prompt)], task=task)
        text = message_text(reply).strip()
        return text[:max_chars] if max_chars else text

    return await _gather(client, [one(p) for p in paths])


def label_schema(classnames: Sequence[str]) -> type[BaseModel]:
    """A one-field schema whose ``label`` must be one of ``classnames`` (a JSON-schema enum)."""
    names = tuple(dict.fromkeys(classnames))
    choice: Any = Literal[names]  # a Literal built from run-time values: an enum in the JSON schema
    return create_model("ClassLabel", label=(choice, Field(description="The class label of the image, as listed.")))


async def ask_labels(
    client: LLMClient, paths: Sequence[str], classnames: Sequence[str], prompt: str, *, task: str
) -> list[str]:
    """The label question about each picture, answered as one of ``classnames`` (constrained decoding).

    A provider that cannot be constrained (schema in the prompt only) and gives no valid name within the
    client's repair rounds gets an empty answer for that picture (logged), not a failed evaluation.
    """
    check_accepts_images(client.handle)
    schema = label_schema(classnames)

    async def one(path: str) -> str:
        try:
            answer = await client.astructured([image_message(path, prompt)], schema, task=task)
        except StructuredOutputError as exc:
            log.warning("no valid label for %s: %s", path, exc)
            return ""
        return str(getattr(answer, "label"))  # noqa: B009 - a field of a schema built at run time

    return await _gather(client, [one(p) for p in paths])


async def _gather(client: LLMClient, calls: Sequence[Awaitable[str]]) -> list[str]:
    """The answers, concurrently; a provider that turns pictures away raises :class:`ConfigError` naming it."""
    try:
        return list(await asyncio.gather(*calls))
    except ProviderError as exc:
        if rejected_images(exc):
            h = client.handle
            raise ConfigError(
                f"provider {h.provider}:{h.model} rejected an image ({exc}); use a multimodal model "
                "(for llama.cpp start llama-server with --mmproj) or --mllm eyes"
            ) from exc
        raise


class CostProjection(BaseModel):
    """What asking questions about pictures will cost at most, before any call (cache hits make it less)."""

    calls: int = Field(description="Calls to send (one per picture and question).")
    prompt_tokens: int = Field(description="Estimated prompt tokens, pictures included.")
    completion_tokens: int = Field(description="Worst-case completion tokens (the per-call cap).")
    cost_usd: float | None = Field(description="From the price table; None when the model has no price.")

    def describe(self) -> str:
        """One line for the CLI and logs."""
        cost = "unknown (no price for this model)" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        return (
            f"at most {self.calls} calls, ~{self.prompt_tokens} prompt + {self.completion_tokens} completion tokens, "
            f"cost {cost}"
        )


def project_cost(
    handle: ProviderHandle,
    n_images: int,
    prompts: Sequence[str],
    *,
    max_tokens: int,
    prices: dict[str, ModelPrice] | None = None,
) -> CostProjection:
    """Worst case of ``len(prompts)`` questions about ``n_images`` pictures on ``handle``."""
    calls = n_images * len(prompts)
    prompt_tokens = n_images * sum(estimate_tokens(p) + IMAGE_TOKENS for p in prompts)
    completion = calls * max_tokens
    cost = estimate_cost(handle.model, prompt_tokens, completion, prices, free=handle.free)
    return CostProjection(calls=calls, prompt_tokens=prompt_tokens, completion_tokens=completion, cost_usd=cost)
