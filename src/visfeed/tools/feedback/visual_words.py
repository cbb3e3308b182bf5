"""Visual feedback in words: which words of a visual vocabulary fit a class's images, and not its confusers'.

Why: the paper's feedback (accuracy, confused classes, their descriptions) tells the LLM *that* lime is
confused with lemon, never *what* the images show. The scoring model knows: it can rank visual words
against each class's feedback images. Words that fit a class's images and not those of the classes it
is confused with are feedback a weak LLM can act on even when it knows little about the class.

The maths (all arrays, no models): with normalized image embeddings X (N, d) and word embeddings W (V, d),
``fit[c, v]`` is the mean cosine of word v over the feedback images of class c, standardized per word
across classes (a z-score), so a word that scores high on every image ("something round" on a world of
round things) says nothing and a word that singles out a class says much. The contrast of class c against
classes O is ``fit[c] - mean_{o in O} fit[o]``. Word embeddings come from the run's backbone through its
embedding cache, once per backbone; the feedback split never changes during a run, so ``fit`` is computed
once and only the confusers change from iteration to iteration.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from visfeed.errors import ConfigError, EmbeddingError
from visfeed.tools.scoring.session import TextEncoder

WORD_TEMPLATE = "a photo of something {word}."
"""How an entry becomes a text for the backbone; entries are written to read after 'something'."""

DEFAULT_CATEGORY = "words"
MAX_ENTRY_WORDS = 6
_HEADER = re.compile(r"^\[([a-z][a-z0-9 _-]{0,30})\]$")
_ENTRY = re.compile(r"^[^\W\d_][\w' ,-]*$")


@dataclass(frozen=True)
class Vocabulary:
    """Entries (words or short phrases) and the category of each, in file order, without duplicates."""

    entries: tuple[str, ...]
    categories: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.entries)

    def texts(self, template: str = WORD_TEMPLATE) -> list[str]:
        """The entries as backbone texts (``template`` holds ``{word}``)."""
        return [template.format(word=e) for e in self.entries]

    def extended(self, extra: Sequence[str], category: str = "extra") -> Vocabulary:
        """The vocabulary plus ``extra`` entries (checked like file lines; duplicates skipped)."""
        seen = set(self.entries)
        new = []
        for e in map(normalize_entry, extra):
            if e and e not in seen and check_entry(e) is None:
                seen.add(e)
                new.append(e)
        return Vocabulary(self.entries + tuple(new), self.categories + (category,) * len(new), self.source)


def normalize_entry(text: str) -> str:
    """An entry as the vocabulary stores it: single spaces, case-folded."""
    return " ".join(text.split()).casefold()


def check_entry(entry: str) -> str | None:
    """Why ``entry`` cannot be a vocabulary entry, or None when it can."""
    if len(entry.split()) > MAX_ENTRY_WORDS:
        return f"more than {MAX_ENTRY_WORDS} words"
    if not _ENTRY.match(entry):
        return "must start with a letter and hold only letters, digits, spaces, hyphens, commas and apostrophes"
    return None


def parse_vocabulary(text: str, source: str) -> Vocabulary:
    """Parse the vocabulary format (see ``assets/vocabulary/visual_words.txt``); errors name file and line."""
    entries: list[str] = []
    categories: list[str] = []
    seen: set[str] = set()
    category = DEFAULT_CATEGORY
    for no, raw in enumerate(text.splitlines(), start=1):
        line = normalize_entry(raw)
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            header = _HEADER.match(line)
            if header is None:
                raise ConfigError(f"{source}, line {no}: malformed category header {raw.strip()!r} (expected '[name]')")
            category = header.group(1)
            continue
        entry = line
        reason = check_entry(entry)
        if reason is not None:
            raise ConfigError(f"{source}, line {no}: vocabulary entry {raw.strip()!r} {reason}")
        if entry not in seen:
            seen.add(entry)
            entries.append(entry)
            categories.append(category)
    if len(entries) < 2:
        raise ConfigError(f"{source}: a vocabulary needs at least 2 entries, found {len(entries)}")
    return Vocabulary(tuple(entries), tuple(categories), source)


def load_vocabulary(path: Path | None = None) -> Vocabulary:
    """The user's vocabulary file, or the shipped generic one (``path`` None)."""
    if path is None:
        ref = resources.files("visfeed").joinpath("assets", "vocabulary", "visual_words.txt")
        return parse_vocabulary(ref.read_text(encoding="utf-8"), "visfeed:visual_words.txt")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"vocabulary file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"vocabulary file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"vocabulary file {path} cannot be read ({exc.strerror or exc})") from None
    return parse_vocabulary(text, str(path))


def class_word_fit(
    image_emb: np.ndarray, labels: np.ndarray | Sequence[int], n_classes: int, word_emb: np.ndarray
) -> np.ndarray:
    """(C, V) fit of each word to each class's images: mean cosine per class, z-scored per word across classes.

    Classes without images get NaN rows (they never rank a word). One matrix product and one scatter-add.
    """
    x = np.asarray(image_emb, dtype=np.float32)
    w = np.asarray(word_emb, dtype=np.float32)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise EmbeddingError(f"image embeddings {x.shape} and word embeddings {w.shape} do not match")
    y = np.asarray(labels, dtype=np.int64)
    sims = x @ w.T  # (N, V)
    sums = np.zeros((n_classes, w.shape[0]), dtype=np.float64)
    np.add.at(sums, y, sims)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts[:, None]
    mean[counts == 0] = np.nan
    mu = np.nanmean(mean, axis=0, keepdims=True)
    sd = np.nanstd(mean, axis=0, keepdims=True)
    return (mean - mu) / np.maximum(sd, 1e-6)


def contrast(fit: np.ndarray, c: int, against: Sequence[int]) -> np.ndarray:
    """(V,) how much better each word fits class ``c``'s images than those of ``against`` (all others if empty)."""
    if not len(against):
        return fit[c]
    return fit[c] - np.nanmean(fit[list(against)], axis=0)


def top_entries(
    scores: np.ndarray, vocab: Vocabulary, k: int, *, require: np.ndarray | None = None, per_category: int = 2
) -> list[str]:
    """The ``k`` best entries by ``scores``, at most ``per_category`` per category, only where ``require`` holds."""
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
    taken: dict[str, int] = {}
    out: list[str] = []
    for v in order:
        if len(out) >= k or not np.isfinite(scores[v]):
            break
        if require is not None and not require[v]:
            continue
        cat = vocab.categories[v]
        if taken.get(cat, 0) >= per_category:
            continue
        taken[cat] = taken.get(cat, 0) + 1
        out.append(vocab.entries[v])
    return out


class ClassWords(BaseModel):
    """The words offered for one class: what its images look like, and what its confusers' look like instead."""

    class_name: str
    own: list[str] = Field(description="Entries that fit this class's images and not its confusers'.")
    against: dict[str, list[str]] = Field(
        default_factory=dict, description="Confused class -> entries that fit that class's images instead."
    )


class WordProbe:
    """A vocabulary ranked against one split's classes (feedback images); ask it per class and confusers."""

    def __init__(self, vocab: Vocabulary, fit: np.ndarray, classnames: Sequence[str]) -> None:
        if fit.shape != (len(classnames), len(vocab)):
            raise EmbeddingError(
                f"fit matrix {fit.shape} does not match {len(classnames)} classes x {len(vocab)} words"
            )
        self.vocab, self.fit, self.classnames = vocab, fit, list(classnames)

    @classmethod
    def build(
        cls,
        vocab: Vocabulary,
        word_emb: np.ndarray,
        image_emb: np.ndarray,
        labels: np.ndarray | Sequence[int],
        classnames: Sequence[str],
    ) -> WordProbe:
        """Fit the vocabulary's embeddings to the images of each class."""
        return cls(vocab, class_word_fit(image_emb, labels, len(classnames), word_emb), classnames)

    def words(
        self, c: int, against: Sequence[int] = (), *, k: int = 6, k_against: int = 3, per_category: int = 2
    ) -> ClassWords:
        """Class ``c``'s contrastive words against ``against`` (its top confused classes), and theirs against it.

        ``per_category`` caps words of one category (a vocabulary without categories is not capped).
        """
        fit = self.fit
        if len(set(self.vocab.categories)) < 2:
            per_category = max(k, k_against)
        own = top_entries(contrast(fit, c, against), self.vocab, k, require=fit[c] > 0, per_category=per_category)
        theirs = {
            self.classnames[o]: top_entries(
                fit[o] - fit[c], self.vocab, k_against, require=fit[o] > 0, per_category=per_category
            )
            for o in against
        }
        return ClassWords(class_name=self.classnames[c], own=own, against={n: w for n, w in theirs.items() if w})


@dataclass
class WordSource:
    """The run's probe for its vocabulary plus any LLM-added entries, built once per vocabulary.

    Word texts go through the backbone's encoder (and so its embedding cache): a second run on the same
    backbone embeds nothing.
    """

    vocabulary: Vocabulary
    encoder: TextEncoder
    image_emb: np.ndarray
    labels: np.ndarray
    classnames: list[str]
    _probes: dict[tuple[str, ...], WordProbe] = field(default_factory=dict, repr=False)

    def probe(self, extra: Sequence[str] = ()) -> WordProbe:
        """The probe of the vocabulary extended by ``extra`` entries."""
        key = tuple(extra)
        if key not in self._probes:
            vocab = self.vocabulary.extended(key) if key else self.vocabulary
            emb = self.encoder.embed_texts(vocab.texts())
            self._probes[key] = WordProbe.build(vocab, emb, self.image_emb, self.labels, self.classnames)
        return self._probes[key]


def join_words(words: Sequence[str]) -> str:
    """'green, small and round': entries as one phrase."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def words_descriptions(words: Sequence[str], *, per_description: int = 3, n: int = 4) -> list[str]:
    """The no-LLM control's descriptions: fixed-template phrases over ``words`` (best first).

    With six words w0..w5: "something w0, w1 and w2", "something w3, w4 and w5", then the interleaved
    triples (w0, w2, w4) and (w1, w3, w5); fewer words give fewer, shorter descriptions.
    """
    words = list(words)
    if not words:
        return []
    groups = [words[i : i + per_description] for i in range(0, len(words), per_description)]
    groups += [words[0::2][:per_description], words[1::2][:per_description]]
    out: list[str] = []
    for g in groups:
        text = f"something {join_words(g)}"
        if g and text not in out:
            out.append(text)
    return out[:n]


def control_descriptions(probe: WordProbe, k: int = 6) -> dict[str, list[str]]:
    """The ``visual_words`` control: per class, fixed-template descriptions of its top ``k`` words.

    Words against all other classes, chosen on the probe's split (the feedback images) alone: no LLM, no
    test image (:func:`words_descriptions`). It tells a user whether the LLM adds anything beyond the words. Classes without a fitting word are left out.
    """
    out: dict[str, list[str]] = {}
    for c, name in enumerate(probe.classnames):
        descs = words_descriptions(probe.words(c, (), k=k).own)
        if descs:
            out[name] = descs
    return out


def word_items(words: Sequence[str], *, singles: int = 10, pairs_of: int = 5) -> list[str]:
    """Sentences from a class's best visual words (best first): "a W thing" and "a W1 W2 thing".

    Singles for the first ``singles`` words, pairs among the first ``pairs_of``.
    """
    out = [f"a {w} thing" for w in words[:singles]]
    top = list(words[:pairs_of])
    out += [f"a {a} {b} thing" for i, a in enumerate(top) for b in top[i + 1 :]]
    return list(dict.fromkeys(out))


def word_sentences(probe: WordProbe, c: int) -> list[str]:
    """The word sentences of class ``c``'s library: its ten best visual words, ranked on its own images."""
    return word_items(probe.words(c, (), k=10, per_category=10).own)
