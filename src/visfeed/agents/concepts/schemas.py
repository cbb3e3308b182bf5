"""What the concept graph asks the LLM for (flat lists and one value: what small models follow best).

No worked example is sent: measured on the embedded SmolLM2-135M, a part request with the example
``{"parts": ["handle", "blade"]}`` was answered with that example four times out of four. The schema's
field descriptions carry no sample values either (the model copied "e.g. 'dark brown'" into its answer).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from visfeed.agents.schemas import clean_description, junk_reason
from visfeed.state.concepts import normalize_value


class PartList(BaseModel):
    """Visible parts of a thing."""

    parts: list[str] = Field(min_length=1, max_length=12, description="Part names, one or two words each.")


class AttributeList(BaseModel):
    """Visual attributes of one part."""

    attributes: list[str] = Field(min_length=1, max_length=12, description="Attribute names, one or two words each.")


class ValueAnswer(BaseModel):
    """The value of one attribute of one part of one class."""

    value: str = Field(description="One to five words.")


_ECHO = re.compile(r"^.*?\b(?:is|are)\s+(?:an?\s+)?")
_PLACEHOLDER = re.compile(
    r"\b(?:[a-z]+\d[a-z\d]*|\d+[a-z][a-z\d]*|(?:part|attribute|attr|value|item|name|thing|type|list|description)"
    r"(?:s|list|name|names|attribute|value|part|type|of|one|two|three)+)\b"
)
"""A name a template holds in place of a real one: 'part1', 'value2', 'partlist', 'valueattribute', 'attr3'."""
_MEDIUM = frozenset(
    [
        "image",
        "picture",
        "photo",
        "photograph",
        "model",
        "description",
        "data",
        "id",
        "title",
        "type",
        "name",
        "object",
        "thing",
        "item",
        "target",
        "path",
        "file",
        "schema",
        "json",
        "list",
        "kind",
        "class",
        "label",
        "example",
        "the",
        "a",
        "an",
        "of",
    ]
)
"""Words about the request or the file, not the thing: a name made only of these ('model', 'the-description',
'data-type') names no part or attribute."""
_PLAIN_NAME = re.compile(r"^[a-z]+(?:[ -][a-z]+)*$")
_NEGATION = re.compile(r"\b(?:not|no|never|none|without|n't)\b", re.IGNORECASE)
# What the schemas themselves say: an answer made only of these words copies the request format.
_SCHEMA_TEXT = " ".join(
    f.description or "" for m in (PartList, AttributeList, ValueAnswer) for f in m.model_fields.values()
)


def strip_echo(text: str, question_words: set[str]) -> str:
    """The answer without a restated question: "The color of the skin of a lime is blue" -> "blue".

    Only a leading clause made of the question's own words (and small words) before "is"/"are" is cut.
    """
    m = _ECHO.match(text)
    if m is None:
        return text
    head = {w for w in re.findall(r"[a-z]+", m.group(0).casefold())} - {"the", "of", "a", "an", "is", "are", "its"}
    return text[m.end() :] if head and head <= question_words else text


def name_reason(name: str) -> str | None:
    """Why a screened part or attribute name is no name ('picture_detail.jpg', 'model'), or None."""
    if not _PLAIN_NAME.match(name):
        return "not a plain name"
    if set(re.split(r"[ -]", name)) <= _MEDIUM:
        return "placeholder"
    return None


def screen(text: str, *, own: str, prompt: str, max_words: int) -> tuple[str, str | None]:
    """The cleaned, normalised text and why it cannot be used (None if it can).

    The optimizer's junk filter (markup, schema words, echoes of the request) plus what a name or value must
    be here: at most ``max_words`` words once a restated question is cut off, and no negation (as Hi-CoDe:
    "black, not red" states two values, one of them false).
    """
    t = normalize_value(clean_description(text))
    t = normalize_value(strip_echo(t, set(re.findall(r"[a-z]+", f"{prompt} {own}".casefold()))))
    if not t:
        return t, "empty"
    if _NEGATION.search(t):
        return t, "negation"
    if _PLACEHOLDER.search(t.replace("-", " ")) or set(re.split(r"[ -]", t)) <= _MEDIUM:
        return t, "placeholder"
    if len(t.split()) > max_words:
        return t, f"more than {max_words} words"
    return t, junk_reason(t, own, f"{prompt} {_SCHEMA_TEXT}", min_words=1, instructions=False)
