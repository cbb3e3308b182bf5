"""Structured LLM outputs (what the model must return) and their lenient clean-up.

The schema is deliberately flat (a list of class entries) because small local models follow flat JSON far
better than maps keyed by class name. Validation is structural only; clean-up (matching class names
case-insensitively, dropping empty, overlong, duplicate or class-naming descriptions) happens after, so a
weak model is not sent into repair rounds for cosmetic faults.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, Field

MAX_DESCRIPTION_CHARS = 160
_JUNK = re.compile(r"[{}\[\]<>]|\btype\b\s*:|https?://")  # schema or markup fragments a weak model echoes


class ClassEntry(BaseModel):
    """Descriptions for one class."""

    class_name: str = Field(description="The class name, exactly as given.")
    descriptions: list[str] = Field(description="Short visual descriptions of that class.")


class DescriptionBatch(BaseModel):
    """Descriptions for several classes (one LLM answer)."""

    classes: list[ClassEntry] = Field(description="One entry per requested class.")


class OneClass(BaseModel):
    """Descriptions for a single class: the flat form small models follow best (one class per call)."""

    descriptions: list[str] = Field(min_length=1, max_length=12, description="Short visual descriptions of the class.")


def example_one() -> OneClass:
    """Worked example for :class:`OneClass` (deliberately far from any dataset's classes)."""
    return OneClass(descriptions=["a bright red body", "a long ladder on top", "large black wheels"])


def example_batch() -> DescriptionBatch:
    """A valid worked example shown to models that get the schema in the prompt (not a real class)."""
    return DescriptionBatch(
        classes=[
            ClassEntry(
                class_name="zebra",
                descriptions=["black and white stripes", "a horse-like body", "a short upright mane"],
            )
        ]
    )


def _norm(name: str) -> str:
    # Letters and digits of any script: an ASCII-only pattern maps "日本" and "中国" both to "", so the
    # answer for one class was filed under the other.
    return re.sub(r"[\W_]+", " ", name.casefold()).strip()


_EXAMPLE_TEXTS = {_norm(d) for d in [*example_batch().classes[0].descriptions, *example_one().descriptions]}


def clean_description(text: str) -> str:
    """Strip bullets, quotes, numbering and a trailing period; collapse spaces."""
    text = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", str(text))
    text = text.strip().strip("\"'").strip().rstrip(".").strip()
    return re.sub(r"\s+", " ", text)


def names_other_class(text: str, own: str, classnames: Iterable[str]) -> str | None:
    """The first other class whose name appears as whole words in ``text`` (None if none)."""
    t = f" {_norm(text)} "
    own_n = _norm(own)
    for c in classnames:
        n = _norm(c)
        if n and n != own_n and n not in own_n and f" {n} " in t:
            return c
    return None


def batch_to_map(
    batch: DescriptionBatch,
    wanted: Sequence[str],
    *,
    limit: int,
    exclude: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, list[str]]:
    """Map an answer onto the wanted class names; unknown classes are ignored, texts cleaned and de-duplicated."""
    by_norm = {_norm(c): c for c in wanted}
    out: dict[str, list[str]] = {}
    for entry in batch.classes:
        name = by_norm.get(_norm(entry.class_name))
        if name is None:
            continue
        seen = {d.casefold() for d in (exclude or {}).get(name, [])}
        seen |= {d.casefold() for d in out.get(name, [])}
        kept = out.setdefault(name, [])
        for raw in entry.descriptions:
            d = clean_description(raw)
            if not d or len(d) > MAX_DESCRIPTION_CHARS or d.casefold() in seen or _JUNK.search(d):
                continue
            if not re.search(r"[a-zA-Z]{3,}", d):
                continue
            if _norm(d) == _norm(name) or _norm(d) in _EXAMPLE_TEXTS:  # weak models copy the worked example
                continue
            seen.add(d.casefold())
            kept.append(d)
            if len(kept) >= limit:
                break
    return {k: v for k, v in out.items() if v}
