"""Structured LLM outputs (what the model must return) and their lenient clean-up.

The schema is deliberately flat (a list of class entries) because small local models follow flat JSON far
better than maps keyed by class name. Validation is structural only; clean-up (matching class names
case-insensitively, dropping empty, overlong, duplicate or class-naming descriptions) happens after, so a
weak model is not sent into repair rounds for cosmetic faults.

Every answer, whatever the answer format, passes one content filter (:func:`junk_reason`) before its
texts can become proposals: a weak model answering in JSON fills the list with schema words ("title",
"type'r", "class: 'cherry', description:"), copies of the instructions or of the worked example, and
one-word fragments. None of those can ever help a classifier, and each one costs a scoring slot.
Descriptions that name their own class are kept: on a real CLIP backbone the name helps, on the embedded
world model it may not, and the evaluation-driven crossover decides either way.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources

from pydantic import BaseModel, Field

from visfeed.agents.prompting import FOCUSES, PROSE_ASPECTS, load_prompt

MAX_DESCRIPTION_CHARS = 160
MIN_CONTENT_WORDS = 2
# Schema or markup fragments a weak model echoes: brackets, feedback artefacts, ids or timestamps (letters
# and digits interleaved, "09T23", "c9bz"), schema keys used as keys ("class: 'cherry'", "type'r",
# "description_1", "title:green apple") and texts ending in a colon (a heading, never a description).
# Plain prose uses "type", "class" and "description" as ordinary words ("a type of fruit"), so those
# count as junk only in these key-like forms.
_JUNK = re.compile(
    r"[{}\[\]<>|\\]|https?://|\(\+\d+ more\)|[A-Za-z]\d+[A-Za-z]|\d[A-Za-z]+\d"
    r"|\b(?:type|class|classes|description|descriptions|title|name)(?:_\w+|\s*[:=]|')|:\s*$",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_]*[^\W\d_][^\W_]*")  # a run of letters and digits holding a letter ("w12", "3d")


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOP_WORDS = _wordset(
    """a an the and or but nor of to in on at by for with without from as into onto over under about above
    below up down out off near is are was were be been being am it its itself this that these those there here
    has have had having do does did done can could will would should may might must shall very so too also
    just not no yes than then thus some any each every all both few more most less other others another such
    own same which who whom whose what when where why how you he she we they me him her us them my your his
    our their one ones often usually typically generally quite rather really like looks look looking seen
    see seems appear appears appearance"""
)
# Words that say nothing about how a class looks; they neither count as content nor disqualify a text.
_NON_CONTENT = _wordset(
    """text texts name names string strings value values key keys example examples sentence sentences word
    words phrase phrases thing things something item items describe described describes describing visual"""
)
# Words of a JSON schema or of the request format: a text holding one is an echo, never a description.
_SCHEMA_WORDS = _wordset(
    """json schema title classname classnames typename properties required maxitems minitems minlength
    maxlength enum filler null"""
)
_ARTICLES = frozenset({"a", "an", "the"})
_SELF = "xclassx"  # stands for the own class name when texts are compared with the instructions


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


def _copy_key(text: str, own: str) -> str:
    """Normalized words without articles, the own class name replaced by a placeholder (for copy checks)."""
    t = f" {_norm(text)} "
    own_n = _norm(own)
    if own_n:
        t = t.replace(f" {own_n} ", f" {_SELF} ")
    return " ".join(w for w in t.split() if w not in _ARTICLES)


class _Fields(dict[str, str]):
    """Template fields for the instruction corpus: class fields become the placeholder, others a break."""

    def __missing__(self, key: str) -> str:
        return _SELF if key in ("classes", "thing") else "\n"


@functools.cache
def _instruction_chunks() -> tuple[str, ...]:
    """Every instruction sentence a model is shown (prompt files, focus lines, schema texts, examples)."""
    texts = [*FOCUSES, *PROSE_ASPECTS, *_EXAMPLE_TEXTS]
    folder = resources.files("visfeed.agents").joinpath("prompts")
    for entry in folder.iterdir():
        if entry.name.endswith(".txt"):
            texts.append(load_prompt(entry.name[:-4]).substitute(_Fields()))
    for schema in (OneClass, DescriptionBatch, ClassEntry):
        texts.append(schema.__doc__ or "")
        texts.extend(f.description or "" for f in schema.model_fields.values())
    chunks = (c for t in texts for c in re.split(r"[\n.!?:;()]", t))
    return tuple(k for k in (_copy_key(c, "") for c in chunks) if k)


def content_words(text: str) -> list[str]:
    """The words of ``text`` that can say how something looks (no stop words, no format words)."""
    words = (w for w in _WORD.findall(text.casefold()) if len(w) >= 2 or not w.isascii())
    return [w for w in words if w not in _STOP_WORDS and w not in _NON_CONTENT]


def junk_reason(
    text: str, own: str, prompt: str = "", *, min_words: int = MIN_CONTENT_WORDS, instructions: bool = True
) -> str | None:
    """Why ``text`` (a cleaned description of class ``own``) cannot be a description; None if it can.

    Dropped: markup and schema words (except words of the class's own name), fewer than ``min_words``
    content words, copies of the instructions or the worked examples (the text occurs in one of them),
    and echoes of ``prompt`` (every content word is in the request or the class name). Give ``prompt``
    only for short requests: against a long feedback prompt, recombined words would count as echoes.
    ``instructions=False`` skips the copy check against the optimizer's instructions: a one-word concept
    value ("red") occurs in them by chance, and the concept graph checks copies of its own prompts.
    """
    if _JUNK.search(text):
        return "markup"
    own_words = set(_WORD.findall(own.casefold()))
    words = content_words(text)
    schema = [w for w in words if w in _SCHEMA_WORDS and w not in own_words]
    if schema:
        return f"schema word {schema[0]!r}"
    if len(words) < min_words:
        return f"fewer than {min_words} content words"
    key = f" {_copy_key(text, own)} "
    if instructions and any(key in f" {chunk} " for chunk in _instruction_chunks()):
        return "copies the instructions"
    if prompt and set(words) <= set(content_words(prompt)) | own_words:
        return "copies the prompt"  # nothing beyond the request's own words (reordered echoes too)
    return None


def clean_description(text: str) -> str:
    """Strip bullets, quotes, numbering and a trailing period; collapse spaces."""
    text = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", str(text))
    text = text.strip().strip("\"'").strip().rstrip(".").strip()
    return re.sub(r"\s+", " ", text)


class NameMatcher:
    """Which other class a text names, for many texts against one label set (built once per run or node).

    A text matches a class when the class's normalized name occurs in it as whole words. Rather than
    scanning every name for every text (21,000 names x every description of an ImageNet-21k run), the
    names go into one dictionary and each text looks up its own word n-grams (up to the longest name's
    word count): the cost of a text no longer depends on the number of classes.
    """

    def __init__(self, classnames: Iterable[str]) -> None:
        self.classnames = list(classnames)
        self._norms = [_norm(c) for c in self.classnames]
        self._first: dict[str, int] = {}
        for i, n in enumerate(self._norms):
            if n:
                self._first.setdefault(n, i)
        self._longest = max((n.count(" ") + 1 for n in self._first), default=0)

    def other_class(self, text: str, own: str) -> str | None:
        """The first other class (in class order) whose name appears as whole words in ``text``, else None.

        Names equal to or contained in the own class's name do not count ("apple" in "green apple").
        """
        words = _norm(text).split()
        own_n = _norm(own)
        best: int | None = None
        for i in range(len(words)):
            for j in range(i + 1, min(len(words), i + self._longest) + 1):
                c = self._first.get(" ".join(words[i:j]))
                if c is not None and (best is None or c < best):
                    n = self._norms[c]
                    if n != own_n and n not in own_n:
                        best = c
        return None if best is None else self.classnames[best]


def names_other_class(text: str, own: str, classnames: Iterable[str]) -> str | None:
    """The first other class whose name appears as whole words in ``text`` (None if none).

    For one text; checks of many texts build one :class:`NameMatcher` and ask it.
    """
    return NameMatcher(classnames).other_class(text, own)


def batch_to_map(
    batch: DescriptionBatch,
    wanted: Sequence[str],
    *,
    limit: int,
    exclude: Mapping[str, Iterable[str]] | None = None,
    prompt: str = "",
    min_words: int = MIN_CONTENT_WORDS,
) -> dict[str, list[str]]:
    """Map an answer onto the wanted class names; unknown classes are ignored, texts cleaned and de-duplicated.

    Every text also passes :func:`junk_reason` (``prompt``: the request text, when the caller has it).
    """
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
            if not d or len(d) > MAX_DESCRIPTION_CHARS or d.casefold() in seen:
                continue
            if _norm(d) == _norm(name) or junk_reason(d, name, prompt, min_words=min_words) is not None:
                continue
            seen.add(d.casefold())
            kept.append(d)
            if len(kept) >= limit:
                break
    return {k: v for k, v in out.items() if v}
