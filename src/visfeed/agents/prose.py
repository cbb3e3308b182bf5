"""The plain-prose answer format: ask for a couple of sentences, split them into descriptions.

Why: a 135M-parameter model under a JSON grammar spends its few good tokens on the format and fills the
list with schema words ("title", "type'r", "class: 'cherry', description:"), while asked in plain words it
writes real, visual (if often wrong) sentences. Wrong is fine: the visual-feedback selection keeps what
fits the images; junk without a single visual word can never be selected into anything useful.

Design: prose is a different *question*, not a different way of enforcing a schema, so it lives here
with the prompts rather than in the client's structured modes: the request carries no schema, no worked
example and no "answer with JSON"; the reply goes through the client's plain call (same cache, budget,
retries and trace) and is parsed leniently. One reply describes one class (prose cannot be attributed to
classes reliably), so a multi-class group becomes one call per class; see :func:`ask_prose`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence

from langchain_core.messages import BaseMessage

from visfeed.agents.schemas import ClassEntry, DescriptionBatch, clean_description, junk_reason
from visfeed.agents.trace import Tracer
from visfeed.errors import BudgetExceeded, OutputParseError
from visfeed.tools.llm import LLMClient
from visfeed.tools.llm.structured import extract_json, message_text

log = logging.getLogger(__name__)

ProseCalls = Callable[[str], Sequence[list[BaseMessage]]]
"""Class name -> the prose requests (message lists, one call each) to send for that class."""

_BULLET = re.compile(r"^\s*(?:[-*•>#]+|\(?\d+[.):]|\(?[a-zA-Z][.)])\s+")
_LABEL = re.compile(r"^([^\W\d_][\w' -]{0,24}):\s+(?=\S)")  # "Color: bright yellow" -> "bright yellow"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PREAMBLE = re.compile(r"^(?:(?:sure|certainly|of course|here (?:is|are)|i hope)\b|note:)", re.IGNORECASE)


def _strings(value: object) -> list[str]:
    """String leaves of parsed JSON (keys excluded): a model that answers JSON anyway still counts."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def split_prose(text: str) -> list[str]:
    """Candidate descriptions in ``text``: lines, then sentences, without bullets, numbering or labels."""
    lines = text.splitlines()
    if "{" in text or "[" in text:
        with contextlib.suppress(OutputParseError):
            lines = _strings(extract_json(text)) or lines
    out: list[str] = []
    for line in lines:
        line = _BULLET.sub("", line.strip())
        for sentence in _SENTENCE_END.split(line):
            sentence = _BULLET.sub("", sentence.strip())
            if not sentence or sentence.endswith(":") or _PREAMBLE.match(sentence):
                continue  # "Here are two sentences about a lemon:" introduces, it does not describe
            label = _LABEL.match(sentence)
            if label and len(label.group(1).split()) <= 3:
                sentence = sentence[label.end() :]
            out.append(clean_description(sentence))
    return [s for s in out if s]


def parse_prose(text: str, own: str, prompt: str = "") -> list[str]:
    """The usable descriptions of class ``own`` in a prose reply, in order and without duplicates.

    Sentences are split off, cleaned and passed through :func:`visfeed.agents.schemas.junk_reason`
    (markup and schema words, fewer than two content words, copies of the instructions or of ``prompt``).
    """
    kept: list[str] = []
    seen: set[str] = set()
    for s in split_prose(text):
        if s.casefold() in seen or junk_reason(s, own, prompt) is not None:
            continue
        seen.add(s.casefold())
        kept.append(s)
    return kept


async def ask_prose(
    client: LLMClient,
    tracer: Tracer,
    classes: Sequence[str],
    calls: ProseCalls,
    *,
    task: str,
    salt: str,
    offered: Mapping[str, Sequence[str]] | None = None,
) -> DescriptionBatch | None:
    """Send every prose request of every class (concurrently, through the client); merge per class.

    A group of several classes becomes one call per class rather than an error: the caller asked for
    descriptions of all of them, one class per reply is the only thing prose can be trusted to keep
    apart, and a weak model does better on short single-class prompts anyway (the run's projected call
    count says so). A reply with no usable sentence is traced as ``llm_invalid`` and skipped. Budget and
    provider errors are raised after all calls finished, so completed answers still reach the cache.
    ``offered`` (class -> visual words the request offers) is left out of the echo check: a sentence built
    from the offered words ("a lime is small, green and round") is what was asked for, not an echo.
    """
    jobs = [(name, i, msgs) for name in classes for i, msgs in enumerate(calls(name))]
    replies = await asyncio.gather(
        *(client.ainvoke(msgs, task=task, cache_salt=f"{salt}:{name}:p{i}") for name, i, msgs in jobs),
        return_exceptions=True,
    )
    errors = [r for r in replies if isinstance(r, BaseException)]
    if errors:
        raise next((e for e in errors if isinstance(e, BudgetExceeded)), errors[0])
    found: dict[str, list[str]] = {}
    for (name, i, msgs), reply in zip(jobs, replies, strict=True):
        if isinstance(reply, BaseException):  # cannot happen (raised above); narrows the type
            continue
        text = message_text(reply)
        prompt = "\n".join(message_text(m) for m in msgs)
        for word in (offered or {}).get(name, ()):
            prompt = re.sub(rf"\b{re.escape(word)}\b", " ", prompt)
        descs = parse_prose(text, name, prompt)
        if not descs:
            log.info("task %s (%s, %s #%d): no usable sentence in %r", task, salt, name, i, text[:200])
            tracer.emit("llm_invalid", task=task, salt=f"{salt}:{name}:p{i}", error="no usable sentence")
            continue
        found.setdefault(name, []).extend(d for d in descs if d not in found.get(name, []))
    entries = [ClassEntry(class_name=n, descriptions=found[n]) for n in classes if found.get(n)]
    return DescriptionBatch(classes=entries) if entries else None
