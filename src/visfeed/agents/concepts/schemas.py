"""What the concept graph asks the LLM for (flat lists and one value: what small models follow best).

Worked examples are about a kitchen knife, far from any dataset's classes, so a copy of the example is
recognisable and dropped rather than taken for an answer.
"""

from __future__ import annotations

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

    value: str = Field(description="A few words, e.g. 'dark brown'.")


EXAMPLE_PARTS = PartList(parts=["handle", "blade"])
EXAMPLE_ATTRIBUTES = AttributeList(attributes=["material", "length"])
EXAMPLE_VALUE = ValueAnswer(value="polished steel")
_EXAMPLE_TEXTS = frozenset(
    normalize_value(t) for t in [*EXAMPLE_PARTS.parts, *EXAMPLE_ATTRIBUTES.attributes, EXAMPLE_VALUE.value]
)


def screen(text: str, *, own: str, prompt: str, max_words: int) -> tuple[str, str | None]:
    """The cleaned, normalised text and why it cannot be used (None if it can).

    The optimizer's junk filter (markup, schema words, echoes of the request) plus what a name or value must
    be here: at most ``max_words`` words, not a copy of the worked example.
    """
    t = normalize_value(clean_description(text))
    if not t:
        return t, "empty"
    if t in _EXAMPLE_TEXTS:
        return t, "copies the worked example"
    if len(t.split()) > max_words:
        return t, f"more than {max_words} words"
    return t, junk_reason(t, own, prompt, min_words=1, instructions=False)
