"""Prompt files (package data under ``agents/prompts``) and the compact feedback text built into them.

Prompts are ``string.Template`` files (``$name`` fields) so descriptions containing braces never break
formatting. The feedback shown per class follows the paper (accuracy, current descriptions, top-m
confused classes and their descriptions) in a compact form, because the embedded local model has a
4096-token context and ten classes must fit in one call.

Prose prompts (``prose*.txt``, the answer format of weak local models) ask about one class and one
aspect in plain words: no schema, no worked example, no "answer with JSON". The confusions enter as
"Do not mention a lime.": SmolLM2-135M, told "It is often mistaken for a lime." or "People confuse a
lemon with a lime.", writes about the confusion itself (sentences naming the other class, which the
filter drops). Measured on 5 fruit classes x 3 aspects x 3 seeds (45 calls each): no confusion line 63
usable sentences (42 with a colour/shape/texture word), "Do not mention" 59 (44), "People confuse" 48
(26); "It is often mistaken for" gave 14 usable, 9 naming the other class, on one seed (15 calls).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from string import Template

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from visfeed.state.config import PROSE_SENTENCES_PER_CALL
from visfeed.state.models import MemoryBank
from visfeed.tools.feedback.text import quote

FOCUSES = (
    "Focus on colors and color patterns.",
    "Focus on shape, size and proportions.",
    "Focus on surface texture and distinctive parts.",
    "Focus on what differs most from the classes it is confused with.",
    "Focus on small details a close look would reveal.",
    "Focus on the overall silhouette and typical arrangement.",
)

PROSE_ASPECTS = (
    "its color",
    "its shape and size",
    "its surface and texture",
    "its color pattern",
    "the parts you can see on it",
    "its outline",
    "how it looks up close",
    "its skin or outer layer",
)
"""What one prose request asks about (the prose counterpart of :data:`FOCUSES`; one aspect per call).

Each call also has its own sampling seed (the client mixes the run seed with the call's salt); the
aspect is what makes the K samples of an iteration, and successive iterations, ask different questions."""

_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


@functools.cache
def load_prompt(name: str, folder: str = "prompts") -> Template:
    """The prompt template ``<folder>/<name>.txt`` shipped with the package (under ``visfeed/agents``)."""
    text = resources.files("visfeed.agents").joinpath(*folder.split("/"), f"{name}.txt").read_text(encoding="utf-8")
    return Template(text.strip())


def messages(name: str, **fields: object) -> list[BaseMessage]:
    """System prompt plus the named user prompt filled with ``fields``."""
    return [
        SystemMessage(content=load_prompt("system").substitute()),
        HumanMessage(content=load_prompt(name).substitute({k: str(v) for k, v in fields.items()})),
    ]


def quoted(names: Sequence[str]) -> str:
    """Class names as a comma-separated list of JSON string literals."""
    return ", ".join(quote(n) for n in names)


def render_banks(banks: Mapping[str, MemoryBank], classes: Sequence[str], shown: int, *, search: bool = False) -> str:
    """Memory shown to the LLM: what helped and what hurt, per class (most recent first).

    ``search``: the library crossover's words: what the search kept in the class's set and what it dropped.
    """
    good_label, bad_label = ("kept by the search", "dropped by the search") if search else ("helped", "hurt")
    if shown <= 0:
        return ""
    lines = []
    for name in classes:
        bank = banks.get(name)
        if bank is None:
            continue
        good = [e.text for e in reversed(bank.positive) if e.action != "deleted"][:shown]
        bad = [e.text for e in reversed(bank.negative) if e.action != "deleted"][:shown]
        if good:
            lines.append(f"{quote(name)} {good_label}: {'; '.join(good)}")
        if bad:
            lines.append(f"{quote(name)} {bad_label} (do not reuse): {'; '.join(bad)}")
    return ("\nMemory of earlier edits:\n" + "\n".join(lines) + "\n") if lines else ""


def with_article(name: str) -> str:
    """``a lemon`` / ``an orange``: class names read as nouns in prose prompts."""
    return f"{'an' if name[:1].casefold() in 'aeiou' else 'a'} {name}"


def prose_messages(
    name: str,
    *,
    aspect: str,
    confused: Sequence[str] = (),
    sentences: int = PROSE_SENTENCES_PER_CALL,
    words: Sequence[str] = (),
) -> list[BaseMessage]:
    """A plain-prose request for one class and one aspect; ``confused`` (names) become one short sentence.

    With ``words`` (what the class's images look like, from the word probe) the request asks for sentences
    "using some of these words": a model that knows little about the class can still bind the right colour,
    shape and texture to it. The aspect stays, so the K samples of an iteration still ask different questions.
    """
    others = [with_article(o) for o in confused]
    confusion = ""
    if others:
        joined = others[0] if len(others) == 1 else ", ".join(others[:-1]) + " or " + others[-1]
        confusion = " " + load_prompt("prose_confusion").substitute(others=joined)
    thing = with_article(name)
    count = _NUMBERS.get(sentences, str(sentences))
    if words:
        text = load_prompt("prose_words").substitute(
            thing=thing, aspect=aspect, words=", ".join(words), count=count, confusion=confusion
        )
    else:
        text = load_prompt("prose").substitute(thing=thing, aspect=aspect, count=count, confusion=confusion)
    text = re.sub(r" {2,}", " ", text).strip()
    return [SystemMessage(content=load_prompt("prose_system").substitute()), HumanMessage(content=text)]


def prose_requests(
    aspects: Sequence[str],
    confused: Mapping[str, Sequence[str]] | None = None,
    *,
    confused_limit: int = 2,
    words: Mapping[str, Sequence[str]] | None = None,
) -> Callable[[str], list[list[BaseMessage]]]:
    """Class name -> one prose request per aspect.

    ``confused``: class -> classes it is mistaken for; ``words``: class -> visual words its images fit.
    """

    def build(name: str) -> list[list[BaseMessage]]:
        others = list((confused or {}).get(name, ()))[:confused_limit]
        offered = list((words or {}).get(name, ()))
        return [prose_messages(name, aspect=a, confused=others, words=offered) for a in aspects]

    return build
