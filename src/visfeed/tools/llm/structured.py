"""Turning model text into validated pydantic objects, and the prompts that ask for it.

Why a module of its own: small local models need the JSON schema (and ideally a worked example) in the
prompt, wrap JSON in code fences or chatter, and sometimes break the schema; the repair loop
(:func:`ask_with_repairs`) shows them the exact validation error. Parsing is ``json`` plus pydantic validation only: model output is never
evaluated as code.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ValidationError

from visfeed.errors import OutputParseError, ProviderError

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)
#: One attempt's request, given the chat model (the client's retry loop calls it).
SendCall = Callable[[BaseChatModel], Awaitable[Any]]
#: The client's door for one round: (conversation, repair round, request) -> the reply.
Send = Callable[[list[BaseMessage], int, SendCall], Awaitable[AIMessage]]

StructuredMode = Literal["openai_json_schema", "json_object_schema", "json_object", "native", "prompt"]
"""How a provider is asked for structured output:

- ``openai_json_schema``: OpenAI's native ``response_format={"type": "json_schema", ...}``.
- ``json_object_schema``: ``{"type": "json_object", "schema": ...}`` (llama.cpp servers constrain decoding
  with a grammar built from the schema) plus the schema in the prompt.
- ``json_object``: plain JSON mode plus the schema in the prompt (servers that reject the schema field).
- ``native``: the chat model's own ``with_structured_output`` (plug-ins).
- ``prompt``: the schema in the prompt only, for models without any JSON mode.
"""

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_MAX_ERROR_CHARS = 1500


def schema_json(schema: type[BaseModel]) -> dict[str, Any]:
    """The pydantic JSON schema of ``schema`` (what goes into prompts, grammars and cache keys); a fresh copy."""
    return cast(dict[str, Any], json.loads(_schema_text(schema)))


@functools.cache
def _schema_text(schema: type[BaseModel]) -> str:
    # Generated once per model class: pydantic builds the schema anew on every call, and a 1,000-class
    # run asks for it twice per LLM call (5.5 of 165 s in benchmarks/results/scale_1000x10_profile.txt).
    return json.dumps(schema.model_json_schema())


def extract_json(text: str) -> Any:
    """The first JSON object or array in ``text`` (code fences and surrounding prose are skipped)."""
    text = text.strip()
    candidates = [m.group(1).strip() for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder(strict=False)  # small models put raw newlines or tabs inside strings
    last_error: ValueError | None = None
    for candidate in candidates:
        starts = [i for i in (candidate.find("{"), candidate.find("[")) if i >= 0]
        if not starts:
            continue
        try:
            value, _ = decoder.raw_decode(candidate[min(starts) :])
            return value
        except ValueError as exc:
            last_error = exc
    if last_error is not None:
        raise OutputParseError(f"the reply is not valid JSON: {last_error}")
    raise OutputParseError("the reply contains no JSON object")


def parse_structured(text: str, schema: type[T]) -> T:
    """Validate the JSON in ``text`` against ``schema``; errors name the fields at fault."""
    value = extract_json(text)
    try:
        return schema.model_validate(value)
    except ValidationError as exc:
        raise OutputParseError(f"the JSON does not match the schema {schema.__name__}: {exc}") from exc


def schema_instruction(schema: type[BaseModel], example: BaseModel | None = None) -> str:
    """System-prompt text asking for one JSON object of ``schema`` (with an optional worked example)."""
    text = (
        "Reply with one JSON object and nothing else (no prose, no code fences). "
        f"It must match this JSON schema:\n{json.dumps(schema_json(schema), separators=(',', ':'))}"
    )
    if example is not None:
        text += f"\nExample of a valid reply:\n{example.model_dump_json()}"
    return text


def with_schema_instruction(
    messages: list[BaseMessage], schema: type[BaseModel], example: BaseModel | None = None
) -> list[BaseMessage]:
    """Messages with the schema instruction appended to the first system message (or prepended as one)."""
    instruction = schema_instruction(schema, example)
    if messages and isinstance(messages[0], SystemMessage) and isinstance(messages[0].content, str):
        first = SystemMessage(content=f"{messages[0].content}\n\n{instruction}")
        return [first, *messages[1:]]
    return [SystemMessage(content=instruction), *messages]


def repair_messages(
    messages: list[BaseMessage], reply: AIMessage, error: Exception, schema: type[BaseModel]
) -> list[BaseMessage]:
    """The conversation extended by the bad reply and a request to fix the stated error."""
    detail = str(error)
    if len(detail) > _MAX_ERROR_CHARS:
        detail = detail[:_MAX_ERROR_CHARS] + " ..."
    bad = AIMessage(content=message_text(reply) or "(empty reply)")
    fix = HumanMessage(
        content=(
            f"Your reply could not be used: {detail}\n"
            f"Reply again with only one JSON object that matches the {schema.__name__} schema."
        )
    )
    return [*messages, bad, fix]


def message_text(message: BaseMessage) -> str:
    """Plain text of a message whose content may be a string or a list of content blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "".join(parts)


class StructuredOutputError(ProviderError):
    """The model did not produce a valid answer for the schema within the allowed repair rounds."""


def _request(
    mode: StructuredMode,
    convo: list[BaseMessage],
    schema: type[BaseModel],
    kwargs: dict[str, Any],
    holder: dict[str, Any],
) -> SendCall:
    """The request of one round: the model's own structured output (``native``), else a plain chat call."""
    if mode == "native":

        async def native(model: BaseChatModel) -> Any:
            out = await model.with_structured_output(schema, include_raw=True).ainvoke(convo)
            holder["out"] = out
            return out["raw"] if isinstance(out, dict) else AIMessage(content="")

        return native

    async def plain(model: BaseChatModel) -> Any:
        return await model.ainvoke(convo, **kwargs)

    return plain


def parse_reply(reply: AIMessage, schema: type[T], out: Any = None) -> T:
    """The reply as ``schema``: the native parse ``out`` when the model made one, else the JSON in its text."""
    if isinstance(out, dict) and out.get("parsed") is not None and out.get("parsing_error") is None:
        parsed = out["parsed"]
        if isinstance(parsed, schema):
            return parsed
        try:
            return schema.model_validate(parsed)
        except ValidationError as exc:
            raise OutputParseError(f"the answer does not match the schema {schema.__name__}: {exc}") from exc
    if isinstance(out, dict) and out.get("parsing_error") is not None:
        raise OutputParseError(str(out["parsing_error"]))
    if reply.response_metadata.get("finish_reason") == "length":
        raise OutputParseError("the reply was cut off at max_tokens; write a shorter JSON object")
    return parse_structured(message_text(reply), schema)


async def ask_with_repairs(
    send: Send,
    messages: list[BaseMessage],
    schema: type[T],
    *,
    mode: StructuredMode,
    kwargs: dict[str, Any],
    max_repairs: int,
    task: str,
    example: T | None = None,
) -> tuple[T, AIMessage]:
    """Ask until the answer validates, showing the model its error each time; at most ``max_repairs`` extra calls.

    The schema goes into the prompt unless the provider constrains the output itself. Returns the value and
    the reply it came from; raises the last :class:`OutputParseError` when no round gave a valid answer.
    """
    convo = messages
    if mode not in ("openai_json_schema", "native"):
        convo = with_schema_instruction(messages, schema, example)
    last_error = OutputParseError("no attempt was made")
    for round_ in range(max_repairs + 1):
        holder: dict[str, Any] = {}
        reply = await send(convo, round_, _request(mode, convo, schema, kwargs, holder))
        try:
            return parse_reply(reply, schema, holder.get("out")), reply
        except OutputParseError as exc:
            last_error = exc
            log.info("task %s: %s answer invalid (round %d): %s", task, schema.__name__, round_, exc)
            convo = repair_messages(convo, reply, exc, schema)
    raise last_error
