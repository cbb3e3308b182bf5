"""Turning model text into validated pydantic objects, and the prompts that ask for it.

Why a module of its own: small local models need the JSON schema (and ideally a worked example) in the
prompt, wrap JSON in code fences or chatter, and sometimes break the schema; the repair loop shows them
the exact validation error. Parsing is ``json`` plus pydantic validation only: model output is never
evaluated as code.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, TypeVar

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ValidationError

from visfeed.errors import ProviderError

T = TypeVar("T", bound=BaseModel)

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


class OutputParseError(ValueError):
    """The text is not JSON matching the schema; the message is meant to be shown to the model."""


def schema_json(schema: type[BaseModel]) -> dict[str, Any]:
    """The pydantic JSON schema of ``schema`` (what goes into prompts, grammars and cache keys)."""
    return schema.model_json_schema()


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
