"""LLM access for the optimizer: providers, the embedded local server, the robust client, budget, cache.

Typical use (:class:`~visfeed.state.llm.LLMSettings` lives in ``state``: a run's config holds it)::

    with resolve_provider("local") as handle:
        client = LLMClient(handle, LLMSettings(), cache=ResponseCache(path), budget=Budget(max_calls=200))
        answer = await client.astructured(messages, MySchema, task="mutate")
        totals = client.totals  # calls, tokens and cost so far
"""

from visfeed.tools.llm.accounting import (
    DEFAULT_PRICES,
    Budget,
    LLMCallRecord,
    ModelPrice,
    UsageTotals,
    estimate_cost,
    estimate_tokens,
)
from visfeed.tools.llm.cache import ResponseCache
from visfeed.tools.llm.client import LLMClient, OnCall
from visfeed.tools.llm.local_server import LocalLLMServer, find_local_model
from visfeed.tools.llm.providers import ENTRY_POINT_GROUP, ProviderHandle, resolve_provider
from visfeed.tools.llm.structured import StructuredMode, StructuredOutputError

__all__ = [
    "DEFAULT_PRICES",
    "ENTRY_POINT_GROUP",
    "Budget",
    "LLMCallRecord",
    "LLMClient",
    "LocalLLMServer",
    "ModelPrice",
    "OnCall",
    "ProviderHandle",
    "ResponseCache",
    "StructuredMode",
    "StructuredOutputError",
    "UsageTotals",
    "estimate_cost",
    "estimate_tokens",
    "find_local_model",
    "resolve_provider",
]
