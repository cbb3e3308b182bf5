"""The agent's two own tools as OpenAI tool specs whose arguments a small model cannot get wrong.

Why specs and not the scoring tools' pydantic schemas: those accept any string as a class name, and
SmolLM2 filled ``class_name`` with whole sentences (2 of 25 calls valid on the market world). Built per
group, the specs name the group's classes as an ``enum`` and bound each description's length and count;
llama.cpp's server turns a forced tool's schema into a grammar, so its arguments always parse and name a
real class. Other providers get the same schema as a contract, checked here all the same
(:func:`check_score`, :func:`check_submission`), because not every server enforces it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from visfeed.agents.schemas import DescriptionBatch

SCORE = "score_descriptions"
SUBMIT = "submit_descriptions"
# A description is 2-8 lower-case words (an initial capital allowed) of at most 15 letters or hyphens,
# commas between them: no digits, quotes, brackets, markup or one-word fragments, which a small model
# otherwise fills its strings with ("24.0: lemon &lt;34;", "type':'object()'}", "adjective").
DESCRIPTION_PATTERN = "^[A-Za-z][a-z-]{0,14}(,? [a-z][a-z-]{0,14}){1,7}$"
MAX_CHARS = 15 + 7 * 17  # the longest text the pattern allows


def _descriptions(most: int, least: int = 1) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "string", "pattern": DESCRIPTION_PATTERN},
        "minItems": least,
        "maxItems": most,
    }


def _spec(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
            },
        },
    }


def agent_tool_specs(names: Sequence[str], n: int, score_help: str | None = None) -> list[dict[str, Any]]:
    """``score_descriptions`` and ``submit_descriptions`` constrained to the group ``names`` and ``n`` texts.

    ``score_help``: what a trial does when it is not the default replacement trial (the library search).
    """
    class_name = {"type": "string", "enum": list(names)}
    entry = {
        "type": "object",
        "properties": {"class_name": class_name, "descriptions": _descriptions(n, n)},
        "required": ["class_name", "descriptions"],
    }
    return [
        _spec(
            SCORE,
            score_help
            or "Try candidate descriptions for one class: returns the accuracy they would give and the confusions "
            "they would cause, without changing anything.",
            {"class_name": class_name, "descriptions": _descriptions(n)},
        ),
        _spec(
            SUBMIT,
            f"Submit your final {n} new short visual descriptions for each class (ends your task).",
            {"classes": {"type": "array", "items": entry, "minItems": len(names), "maxItems": len(names)}},
        ),
    ]


def max_argument_tokens(names: Sequence[str], n: int) -> int:
    """Completion tokens that always fit a submission's arguments (a truncated call is not JSON).

    The pattern bounds every text; a token holds at least two of these characters in practice.
    """
    chars = 40 + len(names) * (60 + n * (MAX_CHARS + 4))
    return chars // 2


def check_score(args: Mapping[str, Any], names: Sequence[str]) -> str | None:
    """Why a ``score_descriptions`` call breaks its contract, or None when its arguments are valid."""
    if args.get("class_name") not in names:
        return f"class_name must be one of {list(names)}, got {str(args.get('class_name'))[:80]!r}"
    descs = args.get("descriptions")
    if not isinstance(descs, list) or not descs or not all(isinstance(d, str) and d.strip() for d in descs):
        return "descriptions must be a non-empty list of non-empty strings"
    return None


def check_submission(args: Mapping[str, Any], names: Sequence[str]) -> tuple[DescriptionBatch | None, str | None]:
    """The submitted batch, or why it breaks the contract (wrong shape, a class missing or not of the group)."""
    try:
        batch = DescriptionBatch.model_validate(args)
    except ValidationError as exc:
        return None, f"invalid submission: {exc}"
    given = [e.class_name for e in batch.classes]
    strangers = [c for c in given if c not in names]
    if strangers:
        return None, f"invalid submission: {strangers} are not among the classes {list(names)}"
    missing = [c for c in names if not any(e.class_name == c and e.descriptions for e in batch.classes)]
    if missing:
        return None, f"invalid submission: no descriptions for {missing}"
    return batch, None
