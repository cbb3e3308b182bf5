"""Per-call records, run totals, prices and the hard LLM budget.

Why here and not in the graph: the budget must be checked *before* each request, at the one place every
request passes through (the client), and concurrent calls must not overrun it together; so calls reserve
their share under a lock and settle it with the real usage afterwards. Cache hits never touch the budget.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from langchain_core.messages import AIMessage
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from visfeed.errors import BudgetExceeded, ConfigError
from visfeed.tools.llm.structured import message_text


class LLMCallRecord(BaseModel):
    """What one logical LLM call cost (a repair round is its own call; retries are attempts)."""

    model_config = ConfigDict(frozen=True)

    task: str = Field(description="Caller's label, e.g. 'init', 'mutate', 'crossover', 'agent'.")
    provider: str = Field(description="Provider kind: local, openai, openai-compatible or a plug-in name.")
    model: str = Field(description="Model name as sent to the provider.")
    prompt_tokens: int = Field(default=0, ge=0, description="Input tokens billed (0 on a cache hit).")
    completion_tokens: int = Field(default=0, ge=0, description="Output tokens billed (0 on a cache hit).")
    tokens_estimated: bool = Field(default=False, description="True when the provider gave no usage and we estimated.")
    cost_usd: float = Field(default=0.0, ge=0, description="Cost from the price table (0 when free or unknown).")
    latency_s: float = Field(default=0.0, ge=0, description="Wall time of the call including retries and waits.")
    cache_hit: bool = Field(default=False, description="Answered from the response cache; no request was sent.")
    attempts: int = Field(default=0, ge=0, description="HTTP attempts made (1 + retries); 0 on a cache hit.")
    repair_round: int = Field(default=0, ge=0, description="0 for the first call, n for the n-th repair call.")
    error: str | None = Field(default=None, description="Final error message when the call failed.")
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC), description="UTC start time.")

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class UsageTotals(BaseModel):
    """Run totals over all records (cache hits counted apart, never billed)."""

    calls: int = Field(default=0, description="Calls sent to the provider (successful or failed).")
    cache_hits: int = Field(default=0, description="Calls answered by the response cache.")
    errors: int = Field(default=0, description="Calls that failed after their retries.")
    retries: int = Field(default=0, description="Extra attempts spent on transient failures.")
    prompt_tokens: int = Field(default=0, description="Input tokens over all sent calls.")
    completion_tokens: int = Field(default=0, description="Output tokens over all sent calls.")
    cost_usd: float = Field(default=0.0, description="Cost over all sent calls.")
    latency_s: float = Field(default=0.0, description="Summed call latency (not wall time under concurrency).")

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def add(self, record: LLMCallRecord) -> None:
        """Fold one record into the totals."""
        self.latency_s += record.latency_s
        if record.cache_hit:
            self.cache_hits += 1
            return
        self.calls += 1
        self.errors += record.error is not None
        self.retries += max(record.attempts - 1, 0)
        self.prompt_tokens += record.prompt_tokens
        self.completion_tokens += record.completion_tokens
        self.cost_usd += record.cost_usd


class ModelPrice(BaseModel):
    """USD per million tokens for one model."""

    model_config = ConfigDict(frozen=True)

    input_per_mtok: float = Field(ge=0, description="USD per 1M prompt tokens.")
    output_per_mtok: float = Field(ge=0, description="USD per 1M completion tokens.")


# List prices (USD per 1M tokens) at the time of writing. They change: pass your own table to Budget.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(input_per_mtok=0.15, output_per_mtok=0.60),
    "gpt-4o": ModelPrice(input_per_mtok=2.50, output_per_mtok=10.00),
    "gpt-4.1-nano": ModelPrice(input_per_mtok=0.10, output_per_mtok=0.40),
    "gpt-4.1-mini": ModelPrice(input_per_mtok=0.40, output_per_mtok=1.60),
    "gpt-4.1": ModelPrice(input_per_mtok=2.00, output_per_mtok=8.00),
    "gpt-4-turbo": ModelPrice(input_per_mtok=10.00, output_per_mtok=30.00),
    "gpt-4": ModelPrice(input_per_mtok=30.00, output_per_mtok=60.00),
    "gpt-3.5-turbo": ModelPrice(input_per_mtok=0.50, output_per_mtok=1.50),
}


def find_price(model: str, prices: dict[str, ModelPrice]) -> ModelPrice | None:
    """Price of ``model``: exact name first, else the longest table key that prefixes it (dated names)."""
    if model in prices:
        return prices[model]
    matches = [k for k in prices if model.startswith(k)]
    return prices[max(matches, key=len)] if matches else None


def estimate_cost(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    prices: dict[str, ModelPrice] | None = None,
    *,
    free: bool = False,
) -> float | None:
    """USD cost of a call (or of projected totals); None when the model has no price in the table.

    ``free=True`` (the embedded local model) always costs 0.
    """
    if free:
        return 0.0
    price = find_price(model, DEFAULT_PRICES if prices is None else prices)
    if price is None:
        return None
    return (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1e6


def estimate_tokens(text: str) -> int:
    """Rough token count (4 characters per token) for budgets when no tokenizer or usage is available."""
    return max(1, len(text) // 4)


@dataclass
class Reservation:
    """A call's provisional share of the budget, settled with real usage or released on failure."""

    tokens: int
    cost_usd: float


class Budget(BaseModel):
    """Hard limits for a run, checked before each call. None means unlimited.

    The check is conservative: a call is refused when the used amount plus this call's worst case
    (estimated prompt tokens plus the completion cap) would pass a limit, so the limit is never exceeded.
    """

    max_calls: int | None = Field(default=None, ge=0, description="Most calls sent to the provider.")
    max_tokens: int | None = Field(default=None, ge=0, description="Most prompt+completion tokens.")
    max_cost_usd: float | None = Field(default=None, ge=0, description="Most spend in USD, from the price table.")
    prices: dict[str, ModelPrice] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES), description="USD per 1M tokens per model name."
    )

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: int = PrivateAttr(0)
    _tokens: int = PrivateAttr(0)
    _cost: float = PrivateAttr(0.0)
    _pending_calls: int = PrivateAttr(0)
    _pending_tokens: int = PrivateAttr(0)
    _pending_cost: float = PrivateAttr(0.0)

    @property
    def used_calls(self) -> int:
        """Calls settled so far."""
        return self._calls

    @property
    def used_tokens(self) -> int:
        """Tokens settled so far."""
        return self._tokens

    @property
    def used_cost_usd(self) -> float:
        """USD settled so far."""
        return self._cost

    def restore(self, *, calls: int = 0, tokens: int = 0, cost_usd: float = 0.0) -> None:
        """Start from usage already spent (a resumed run keeps paying from the same budget)."""
        with self._lock:
            self._calls, self._tokens, self._cost = calls, tokens, cost_usd

    def check_model(self, model: str, *, free: bool) -> None:
        """Refuse a cost limit for a model without a price, before the run starts."""
        if self.max_cost_usd is not None and not free and find_price(model, self.prices) is None:
            raise ConfigError(
                f"max_cost_usd is set but model {model!r} has no price; add it to Budget(prices=...) "
                f"as ModelPrice(input_per_mtok=..., output_per_mtok=...) or drop the cost limit"
            )

    def reserve(self, model: str, *, prompt_tokens: int, max_completion_tokens: int | None, free: bool) -> Reservation:
        """Claim one call's worst case or raise :class:`BudgetExceeded` naming the limit reached."""
        worst_tokens = prompt_tokens + (max_completion_tokens or 0)
        worst_cost = estimate_cost(model, prompt_tokens, max_completion_tokens or 0, self.prices, free=free)
        worst_cost = worst_cost or 0.0
        with self._lock:
            calls = self._calls + self._pending_calls
            tokens = self._tokens + self._pending_tokens
            cost = self._cost + self._pending_cost
            if self.max_calls is not None and calls + 1 > self.max_calls:
                raise BudgetExceeded(
                    f"LLM budget reached: {calls} of max_calls={self.max_calls} calls used; "
                    "raise the call limit to continue"
                )
            if self.max_tokens is not None and tokens + worst_tokens > self.max_tokens:
                raise BudgetExceeded(
                    f"LLM budget reached: {tokens} tokens used and the next call may take up to "
                    f"{worst_tokens}, over max_tokens={self.max_tokens}; raise the token limit to continue"
                )
            if self.max_cost_usd is not None and cost + worst_cost > self.max_cost_usd:
                raise BudgetExceeded(
                    f"LLM budget reached: ${cost:.4f} spent and the next call may cost up to "
                    f"${worst_cost:.4f}, over max_cost_usd={self.max_cost_usd}; raise the cost limit"
                )
            self._pending_calls += 1
            self._pending_tokens += worst_tokens
            self._pending_cost += worst_cost
        return Reservation(tokens=worst_tokens, cost_usd=worst_cost)

    def settle(self, reservation: Reservation, *, tokens: int, cost_usd: float, sent: bool) -> None:
        """Replace a reservation by real usage; ``sent=False`` (nothing reached the provider) frees it."""
        with self._lock:
            self._pending_calls -= 1
            self._pending_tokens -= reservation.tokens
            self._pending_cost -= reservation.cost_usd
            if sent:
                self._calls += 1
                self._tokens += tokens
                self._cost += cost_usd

    def describe(self) -> str:
        """One line for logs and the CLI: used versus limits."""
        parts = [f"calls {self._calls}/{self.max_calls if self.max_calls is not None else '∞'}"]
        parts.append(f"tokens {self._tokens}/{self.max_tokens if self.max_tokens is not None else '∞'}")
        limit = f"{self.max_cost_usd:.2f}" if self.max_cost_usd is not None else "∞"
        parts.append(f"cost ${self._cost:.4f}/${limit}")
        return ", ".join(parts)


def usage_of(reply: AIMessage | None, prompt_estimate: int) -> tuple[int, int, bool]:
    """(prompt, completion, estimated) tokens of a reply; estimated from text when usage is missing."""
    if reply is None:
        return 0, 0, False
    usage = reply.usage_metadata
    if usage:
        return int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)), False
    return prompt_estimate, estimate_tokens(message_text(reply)), True
