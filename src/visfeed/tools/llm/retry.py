"""Which provider failures are worth retrying, how long to wait, and the final error.

:class:`RetryPolicy` puts these together for one provider: the client asks it for the retrying loop of
each logical call and knows nothing of what is retried or for how long.

Why in one place: the client talks to OpenAI's SDK, to OpenAI-compatible servers through the same SDK,
and to arbitrary LangChain plug-ins whose exceptions we cannot import. Classification therefore looks at
exception types we know (openai, httpx, asyncio) and, for the rest, at an HTTP status carried by the
exception (``status_code`` or ``response.status_code``), which most SDKs provide.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from visfeed.state.llm import LLMSettings
from visfeed.tools.llm.handle import ProviderHandle

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
# Bodies that say the request itself is wrong: sending it again gets the same answer. llama-cpp-python's
# server answers a request its schema rejects with HTTP 500 ("7 validation errors ... Input should be a
# valid string"), and a prompt longer than its context with 400 ("maximum context length is 4096 tokens").
_REQUEST_REJECTED = re.compile(
    r"validation errors? for|\d+ validation errors?|input should be|field required"
    r"|maximum context length|context_length_exceeded|exceeds? (?:the )?context|context window",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Failure:
    """A classified failure of one attempt."""

    retryable: bool
    reason: str
    status: int | None = None
    retry_after: float | None = None


def _status_of(exc: BaseException) -> int | None:
    for obj in (exc, getattr(exc, "response", None)):
        code = getattr(obj, "status_code", None)
        if isinstance(code, int):
            return code
    return None


def _headers_of(exc: BaseException) -> Any:
    response = getattr(exc, "response", None)
    return getattr(response, "headers", None)


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or HTTP date), if present."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(float(ms) / 1000.0, 0.0)
        value = headers.get("retry-after")
    except (AttributeError, TypeError, ValueError):
        return None
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def classify(exc: BaseException) -> Failure:
    """Decide whether ``exc`` from one attempt is transient."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, openai.APITimeoutError, httpx.TimeoutException)):
        return Failure(True, "timed out")
    if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError)):
        return Failure(True, f"malformed response body: {_short(exc)}")
    code = _status_of(exc)
    if code is not None and code >= 400:
        retry_after = parse_retry_after(_headers_of(exc))
        hint = ""
        if code in (401, 403):
            hint = " (check the API key and its permissions)"
        elif code == 404:
            hint = " (check the model name and the base URL)"
        if _REQUEST_REJECTED.search(str(exc)):
            return Failure(False, f"HTTP {code}, request rejected (not retried): {_short(exc)}", code, retry_after)
        return Failure(code in RETRYABLE_STATUS, f"HTTP {code}: {_short(exc)}{hint}", code, retry_after)
    if isinstance(exc, (openai.APIConnectionError, httpx.TransportError, ConnectionError, EOFError)):
        return Failure(True, f"connection failed: {_short(exc)}")
    if isinstance(exc, (IndexError, KeyError)):
        # langchain raises these when a server answers 200 with no choices (or no 'choices' key).
        return Failure(True, f"empty or incomplete response: {_short(exc)}")
    return Failure(False, f"{type(exc).__name__}: {_short(exc)}")


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def backoff_delay(
    attempt: int,
    *,
    base_s: float,
    max_s: float,
    retry_after: float | None,
    max_retry_after_s: float,
    rng: random.Random,
) -> float:
    """Delay before retry number ``attempt`` (1-based): jittered exponential, at least ``retry_after``.

    Jitter (uniform in [cap/2, cap]) spreads out clients that failed together; a server's retry-after
    hint is a floor, capped at ``max_retry_after_s`` so one bad header cannot stall a run for hours.
    """
    cap = min(max_s, base_s * (2 ** (attempt - 1)))
    delay = rng.uniform(cap / 2, cap) if cap > 0 else 0.0
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_retry_after_s))
    return delay


class RetryPolicy:
    """When one provider's calls are tried again and how long each waits (jitter drawn from the settings' seed)."""

    def __init__(self, handle: ProviderHandle, settings: LLMSettings) -> None:
        self.handle = handle
        self.settings = settings
        self._rng = random.Random(settings.seed)
        self._lock = threading.Lock()  # calls on several threads draw jitter from one generator

    def retrying(self) -> AsyncRetrying:
        """The attempt loop of one logical call: ``max_retries`` more tries, the last error re-raised."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(self._worth_retrying),
            reraise=True,
        )

    def _worth_retrying(self, exc: BaseException) -> bool:
        """Transient failures are retried, unless the local server behind them has died."""
        if not classify(exc).retryable:
            return False
        return self.handle.dead_server_error(grace_s=1.0) is None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        failure = classify(exc) if exc is not None else None
        s = self.settings
        with self._lock:
            delay = backoff_delay(
                state.attempt_number,
                base_s=s.backoff_base_s,
                max_s=s.backoff_max_s,
                retry_after=failure.retry_after if failure else None,
                max_retry_after_s=s.max_retry_after_s,
                rng=self._rng,
            )
        log.warning(
            "%s:%s attempt %d failed (%s); retrying in %.2fs",
            self.handle.provider, self.handle.model, state.attempt_number,
            self.handle.redact(failure.reason) if failure else "?", delay,
        )  # fmt: skip
        return delay
