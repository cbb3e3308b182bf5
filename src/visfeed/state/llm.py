"""How the LLM is called: concurrency, timeouts, retries, repairs, cache switch, and the sampling parameters.

One definition of each knob: a run's ``config.yaml`` holds the transport part (:class:`LLMTransport`,
``RunConfig.llm``), and the client gets :class:`LLMSettings`, the same fields plus the sampling
parameters that the run config resolves per provider (temperature, completion cap, seed). Every field
carries a description that the CLI can show as help.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LLMTransport(BaseModel):
    """How calls reach a provider: concurrency, per-attempt timeout, retries with backoff, repairs, cache."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_concurrency: int = Field(
        default=2, ge=1, le=256, description="Most LLM requests in flight at once (an asyncio semaphore)."
    )
    timeout_s: float = Field(
        default=300.0, gt=0, description="Per-attempt timeout in seconds; a slower attempt counts as a failure."
    )
    max_retries: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Retries after the first attempt on rate limits, 5xx, timeouts and dropped connections.",
    )
    backoff_base_s: float = Field(
        default=1.0, ge=0, description="First backoff delay in seconds; doubles at each retry (with full jitter)."
    )
    backoff_max_s: float = Field(default=30.0, ge=0, description="Cap of one backoff delay in seconds.")
    max_retry_after_s: float = Field(
        default=120.0,
        ge=0,
        description="Longest server 'retry-after' hint honoured, in seconds; longer hints are capped.",
    )
    max_repairs: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Extra calls allowed when a structured answer fails to parse or validate; the error "
        "is shown to the model.",
    )
    cache_enabled: bool = Field(
        default=True, description="Use the response cache when the client has one; False forces fresh calls."
    )

    @model_validator(mode="after")
    def _check_backoff(self) -> LLMTransport:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError(
                f"backoff_max_s={self.backoff_max_s} is below backoff_base_s={self.backoff_base_s}; "
                "raise backoff_max_s or lower backoff_base_s"
            )
        return self


class LLMSettings(LLMTransport):
    """How :class:`visfeed.tools.llm.client.LLMClient` calls a provider: transport plus sampling."""

    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature sent with each call; None keeps the provider's."
    )
    max_tokens: int | None = Field(
        default=1024, ge=1, description="Cap on completion tokens per call; None leaves it to the provider."
    )
    seed: int | None = Field(
        default=None,
        description="Sampling seed sent to providers that accept one (OpenAI, llama.cpp); also seeds jitter.",
    )
