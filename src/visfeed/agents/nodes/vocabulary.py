"""The optional LLM step of the visual-word feedback: words that tell this label set's classes apart.

The shipped vocabulary is generic; a label set may need words it lacks (a bird's "crest", a car's
"grille"). One plain call asks the LLM for them; the answer goes through the same junk filter as
descriptions (single words allowed), entries naming a class are dropped, and what is left is kept in the
graph state, so a resumed run and the final control use the same vocabulary (the call itself comes from
the response cache).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from visfeed.agents.context import RunContext
from visfeed.agents.prompting import messages, quoted
from visfeed.agents.schemas import NameMatcher, clean_description, junk_reason
from visfeed.tools.feedback.visual_words import check_entry
from visfeed.tools.llm.structured import message_text

log = logging.getLogger(__name__)

EXTRA_WORDS = 30  # entries asked for
_SPLIT = re.compile(r"[\n,;]+")


def parse_vocabulary_reply(text: str, classnames: Sequence[str], prompt: str = "") -> list[str]:
    """Usable vocabulary entries in an LLM reply: one per line (or comma), junk and class names dropped."""
    out: list[str] = []
    names = NameMatcher(classnames)
    for raw in _SPLIT.split(text):
        entry = clean_description(raw).casefold()
        if not entry or entry in out or check_entry(entry) is not None:
            continue
        if junk_reason(entry, "", prompt, min_words=1) is not None or names.other_class(entry, ""):
            continue
        out.append(entry)
    return out


async def extend_vocabulary(ctx: RunContext, classnames: Sequence[str]) -> list[str]:
    """Ask once for visual words that tell ``classnames`` apart; traced as ``vocabulary_extended``."""
    msgs = messages("vocabulary", classes=quoted(classnames), n=EXTRA_WORDS)
    reply = await ctx.client.ainvoke(msgs, task="vocabulary", cache_salt="vocabulary")
    prompt = "\n".join(message_text(m) for m in msgs)
    words = parse_vocabulary_reply(message_text(reply), classnames, prompt)
    log.info("the LLM added %d visual words to the vocabulary", len(words))
    ctx.tracer.emit("vocabulary_extended", words=words)
    return words
