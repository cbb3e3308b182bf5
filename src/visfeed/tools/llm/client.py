"""The one door every LLM request of the optimizer goes through.

Why one door: caching, the budget check, retries with backoff, the per-call timeout, bounded concurrency
and accounting must apply to every request, whatever the provider. The order is fixed:

    cache lookup -> (miss) budget reservation -> semaphore -> attempts with timeout and backoff
    -> accounting record + ``on_call`` hook -> cache store

:meth:`LLMClient.astructured` adds structured output (native where the provider has it, JSON mode plus
the schema in the prompt otherwise) through the bounded repair loop of
:func:`~visfeed.tools.llm.structured.ask_with_repairs`, which shows the model its validation error.
:meth:`LLMClient.ainvoke` is the plain / tool-calling call used by the agent mode.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ValidationError

from visfeed.errors import ConfigError, OutputParseError, ProviderError
from visfeed.state.llm import LLMSettings
from visfeed.tools.llm._loop import LoopThread
from visfeed.tools.llm.accounting import (
    Budget,
    LLMCallRecord,
    UsageTotals,
    estimate_cost,
    estimate_tokens,
    usage_of,
)
from visfeed.tools.llm.cache import ResponseCache, dump_message, load_message, request_key
from visfeed.tools.llm.handle import ProviderHandle
from visfeed.tools.llm.images import IMAGE_TOKENS, images_in
from visfeed.tools.llm.retry import RetryPolicy, classify
from visfeed.tools.llm.structured import SendCall, StructuredOutputError, ask_with_repairs, message_text, schema_json

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")
OnCall = Callable[[LLMCallRecord, list[BaseMessage], AIMessage | None], None]


class LLMClient:
    """Calls one provider with caching, budget, retries, timeouts, bounded concurrency and accounting."""

    def __init__(
        self,
        handle: ProviderHandle,
        settings: LLMSettings | None = None,
        *,
        cache: ResponseCache | None = None,
        budget: Budget | None = None,
        on_call: OnCall | None = None,
    ) -> None:
        self.handle = handle
        self.settings = settings or LLMSettings()
        self.cache = cache
        self.budget = budget
        self.on_call = on_call
        self.records: list[LLMCallRecord] = []
        self._totals = UsageTotals()
        self._retry = RetryPolicy(handle, self.settings)
        self._lock = threading.Lock()
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._loop_thread: LoopThread | None = None
        if budget is not None:
            budget.check_model(handle.model, free=handle.free)

    @property
    def totals(self) -> UsageTotals:
        """A snapshot of the run totals (calls, cache hits, tokens, cost, retries)."""
        with self._lock:
            return self._totals.model_copy()

    def _call_seed(self, salt: str | None) -> int | None:
        """The sampling seed of one call: the run's seed, mixed with the call's salt when it has one.

        With one seed for every call, a seeded server (llama.cpp) answers equal prompts with equal text,
        so the k-th of K samples would repeat the first; salting keeps calls distinct and reproducible.
        """
        if self.settings.seed is None or salt is None:
            return self.settings.seed
        digest = hashlib.sha256(f"{self.settings.seed}:{salt}".encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF

    # ------------------------------------------------------------------ public
    async def astructured(
        self,
        messages: Sequence[BaseMessage],
        schema: type[T],
        *,
        task: str,
        example: T | None = None,
        cache_salt: str | None = None,
    ) -> T:
        """One answer validated against ``schema``.

        ``example`` (a valid instance) is shown to models that get the schema in the prompt; small models
        need it. ``cache_salt`` separates calls that are meant to differ although their messages are
        equal (e.g. the k-th of K samples at temperature 1). Raises :class:`StructuredOutputError` when
        no valid answer came within ``settings.max_repairs`` repair rounds.
        """
        messages = list(messages)
        mode = self.handle.structured_mode
        key = self._key(
            "structured",
            messages,
            schema={"name": schema.__name__, "json": schema_json(schema), "mode": mode},
            extra={"example": example.model_dump(mode="json") if example is not None else None},
            salt=cache_salt,
        )
        hit = self._cache_get(key)
        if hit is not None and hit.get("kind") == "structured":
            try:
                value = schema.model_validate(hit["parsed"])
            except (ValidationError, KeyError):
                log.warning("ignoring a cached %s answer that no longer validates", schema.__name__)
            else:
                self._record_hit(task, messages, load_message(hit["raw"]), key)
                return value

        kwargs = self.handle.request_kwargs(
            temperature=self.settings.temperature,
            max_tokens=self.settings.max_tokens,
            seed=self._call_seed(cache_salt),
            response_format=self.handle.response_format(schema),
        )

        def send(convo: list[BaseMessage], round_: int, call: SendCall) -> Awaitable[AIMessage]:
            return self._send(convo, task=task, repair_round=round_, call=call)

        try:
            value, reply = await ask_with_repairs(
                send, messages, schema, mode=mode, kwargs=kwargs, max_repairs=self.settings.max_repairs,
                task=task, example=example,
            )  # fmt: skip
        except OutputParseError as exc:
            raise StructuredOutputError(
                f"{self.handle.provider}:{self.handle.model} gave no valid {schema.__name__} for task {task!r} "
                f"after {self.settings.max_repairs} repair round(s): {exc}; raise max_repairs or "
                "max_tokens, simplify the schema, or use a stronger model",
                provider=self.handle.provider,
                model=self.handle.model,
            ) from exc
        self._cache_put(key, {"kind": "structured", "parsed": value.model_dump(mode="json"),
                              "raw": dump_message(reply)}, task)  # fmt: skip
        return value

    async def ainvoke(
        self,
        messages: Sequence[BaseMessage],
        *,
        tools: Sequence[BaseTool | dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        max_tokens: int | None = None,
        task: str,
        cache_salt: str | None = None,
    ) -> AIMessage:
        """A plain or tool-calling chat call (the agent mode); the reply may carry ``tool_calls``.

        ``tools`` are LangChain tools or OpenAI tool specs (dicts, e.g. with an ``enum`` the server turns
        into a grammar); ``tool_choice`` names the one tool the model must call (see
        :attr:`ProviderHandle.forces_tools`), None lets it choose. ``max_tokens`` overrides the settings'
        cap for this call (tool arguments cut off by the cap are not JSON).
        """
        messages = list(messages)
        tool_list = list(tools or [])
        if tool_list and not self.handle.supports_tools:
            raise ConfigError(
                f"provider {self.handle.provider}:{self.handle.model} does not support tool calling; "
                "use the structured (non-agent) mode or a provider with tools"
            )
        specs = [convert_to_openai_tool(t) for t in tool_list] or None
        if tool_choice is not None and not any(s["function"]["name"] == tool_choice for s in specs or []):
            raise ConfigError(f"tool_choice {tool_choice!r} names none of the tools given")
        cap = max_tokens or self.settings.max_tokens
        extra = {k: v for k, v in (("tool_choice", tool_choice), ("max_tokens", max_tokens)) if v}
        key = self._key("chat", messages, tools=specs, extra=extra or None, salt=cache_salt)
        hit = self._cache_get(key)
        if hit is not None and hit.get("kind") == "chat":
            message = load_message(hit["message"])
            self._record_hit(task, messages, message, key)
            return message
        kwargs = self.handle.request_kwargs(
            temperature=self.settings.temperature, max_tokens=cap, seed=self._call_seed(cache_salt)
        )
        openai_style = self.handle.call_style != "generic"

        async def call(model: BaseChatModel) -> Any:
            runnable: Any = model
            if tool_list:
                # llama.cpp's function-calling format only calls tools when tool_choice is explicit.
                choice = tool_choice or ("auto" if openai_style else None)
                runnable = (
                    model.bind_tools(specs or [], tool_choice=choice) if choice else model.bind_tools(specs or [])
                )
            return await runnable.ainvoke(messages, **kwargs)

        reply = await self._send(messages, task=task, repair_round=0, call=call, max_tokens=cap)
        self._cache_put(key, {"kind": "chat", "message": dump_message(reply)}, task)
        return reply

    def structured(self, messages: Sequence[BaseMessage], schema: type[T], *, task: str, **kw: Any) -> T:
        """Blocking :meth:`astructured` (runs on the client's private event loop thread)."""
        return self._run_sync(self.astructured(messages, schema, task=task, **kw))

    def invoke(self, messages: Sequence[BaseMessage], *, task: str, **kw: Any) -> AIMessage:
        """Blocking :meth:`ainvoke` (runs on the client's private event loop thread)."""
        return self._run_sync(self.ainvoke(messages, task=task, **kw))

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        """Block on a coroutine that uses this client (e.g. many concurrent calls), on its private loop.

        Safe from code that is itself inside a running event loop, unlike ``asyncio.run``.
        """
        return self._run_sync(coro)

    def close(self) -> None:
        """Stop the private event loop thread used by the blocking wrappers (the handle stays open)."""
        with self._lock:
            thread, self._loop_thread = self._loop_thread, None
        if thread is not None:
            thread.close()

    # ----------------------------------------------------------------- helpers
    def _key(self, kind: str, messages: list[BaseMessage], **parts: Any) -> str | None:
        if self.cache is None or not self.settings.cache_enabled:
            return None
        return request_key(self.handle, self.settings, kind, messages, **parts)

    def _cache_get(self, key: str | None) -> dict[str, Any] | None:
        if key is None or self.cache is None:
            return None
        return self.cache.get(key)

    def _cache_put(self, key: str | None, value: dict[str, Any], task: str) -> None:
        if key is not None and self.cache is not None:
            self.cache.put(key, value, provider=self.handle.provider, model=self.handle.model, task=task)

    def _record_hit(self, task: str, messages: list[BaseMessage], reply: AIMessage, key: str | None) -> None:
        record = LLMCallRecord(task=task, provider=self.handle.provider, model=self.handle.model, cache_hit=True)
        log.debug("task %s: cache hit %s", task, (key or "")[:12])
        self._finish(record, messages, reply)

    def _finish(self, record: LLMCallRecord, messages: list[BaseMessage], reply: AIMessage | None) -> None:
        with self._lock:
            self.records.append(record)
            self._totals.add(record)
        if self.on_call is not None:
            try:
                self.on_call(record, messages, reply)
            except Exception:
                log.exception("the on_call hook failed for task %s (the call itself succeeded)", record.task)

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            sem = self._semaphores.get(loop)
            if sem is None:
                sem = self._semaphores[loop] = asyncio.Semaphore(self.settings.max_concurrency)
        return sem

    async def _send(
        self,
        messages: list[BaseMessage],
        *,
        task: str,
        repair_round: int,
        call: SendCall,
        max_tokens: int | None = None,
    ) -> AIMessage:
        """One logical call: budget, semaphore, retried attempts, accounting. Returns the reply."""
        h, s = self.handle, self.settings
        if not h.ready:  # e.g. start the local server, off the event loop
            await asyncio.to_thread(lambda: h.chat_model)
        prompt_est = estimate_tokens("".join(message_text(m) for m in messages)) + IMAGE_TOKENS * len(
            images_in(messages)
        )
        reservation = (
            self.budget.reserve(
                h.model, prompt_tokens=prompt_est, max_completion_tokens=max_tokens or s.max_tokens, free=h.free
            )
            if self.budget is not None
            else None
        )
        started_at, t0 = datetime.now(UTC), time.perf_counter()
        attempts = 0
        reply: AIMessage | None = None
        error: ProviderError | None = None
        cause: BaseException | None = None
        settled = False
        try:
            async with self._semaphore():
                try:
                    async for attempt in self._retry.retrying():
                        with attempt:
                            attempts += 1
                            out = await asyncio.wait_for(call(h.pick_chat_model()), timeout=s.timeout_s)
                            reply = out if isinstance(out, AIMessage) else AIMessage(content=str(out))
                except Exception as exc:
                    failure = classify(exc)
                    reason = h.redact(failure.reason)
                    # A cause that quoted a secret must not reach tracebacks in the logs.
                    cause = exc if reason == failure.reason else None
                    # A local server that died is named with its cause instead of "connection failed".
                    error = h.dead_server_error() or ProviderError(
                        f"{h.provider}:{h.model} call for task {task!r} failed after {attempts} attempt(s): {reason}",
                        provider=h.provider,
                        model=h.model,
                        status=failure.status,
                        retry_after=failure.retry_after,
                    )
            prompt_tokens, completion_tokens, estimated = usage_of(reply, prompt_est)
            cost = estimate_cost(
                h.model, prompt_tokens, completion_tokens,
                self.budget.prices if self.budget is not None else None, free=h.free,
            ) or 0.0  # fmt: skip
            if reservation is not None and self.budget is not None:
                self.budget.settle(
                    reservation, tokens=prompt_tokens + completion_tokens, cost_usd=cost, sent=attempts > 0
                )
                settled = True
        finally:
            if reservation is not None and self.budget is not None and not settled:  # cancelled
                self.budget.settle(reservation, tokens=0, cost_usd=0.0, sent=attempts > 0)
        record = LLMCallRecord(
            task=task,
            provider=h.provider,
            model=h.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            tokens_estimated=estimated,
            cost_usd=cost,
            latency_s=time.perf_counter() - t0,
            attempts=attempts,
            repair_round=repair_round,
            error=str(error) if error is not None else None,
            started_at=started_at,
        )
        self._finish(record, messages, reply)
        if error is not None:
            raise error from cause
        if reply is None:  # cannot happen: a call without an error always has a reply
            raise ProviderError("the LLM call ended without a reply or an error", provider=self.handle.provider)
        return reply

    def _run_sync(self, coro: Coroutine[Any, Any, R]) -> R:
        with self._lock:
            if self._loop_thread is None:
                self._loop_thread = LoopThread()
            thread = self._loop_thread
        return thread.run(coro)
