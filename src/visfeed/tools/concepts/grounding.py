"""Concept values checked against the pictures: each (class, part, attribute) value chosen by the images.

Why: an LLM names a value for every (class, part, attribute) whether it knows it or not (the embedded
SmolLM2 gave a lemon a brown skin; remote models hallucinate too, a known failure of LLM concept
bottlenecks). The scoring model can check: every candidate value becomes its clue sentence ("the color of
the skin is yellow"), scored against each class's feedback images the way the visual-word probe scores
words (mean cosine over the class's images, relative to all classes), minus its fit to the class's most
confusable classes when asked (nearest image centroids). By default the support is taken against all
classes: against the nearest classes alone, a value the class shares with them (two yellow fruits) scores
nothing and a wrong but distinctive one wins. The best-supported candidate is kept, and the record says
whether the LLM's own answer agreed.

Candidates for an attribute: every value the LLM gave for that (part, attribute) to any class (less the
words the vocabulary files under another facet, a colour given as a shape, and values naming a class), plus the visual vocabulary's
entries of the matching facet (colour, shape, texture, size, count). Nothing here knows a dataset: the
facet of an attribute is read from its name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from visfeed.state.concepts import PART_SEPARATOR, Origin, ValueSource
from visfeed.tools.feedback.visual_words import Vocabulary
from visfeed.tools.scoring.session import TextEncoder

FACET_WORDS: dict[str, frozenset[str]] = {
    "colour": frozenset({"color", "colour", "colors", "colours", "hue", "tint", "shade"}),
    "shape": frozenset({"shape", "shapes", "form", "outline", "silhouette"}),
    "texture": frozenset({"texture", "pattern", "patterns", "surface", "markings", "marking", "skin texture"}),
    "size": frozenset({"size", "length", "width"}),
    "count": frozenset({"count", "number", "quantity"}),
}
"""Vocabulary category -> attribute words that mean it ("skin colour" is a colour, "pattern" a texture)."""

FALLBACK_ATTRIBUTES: dict[str, str] = {"color": "colour", "shape": "shape", "pattern": "texture", "size": "size"}
"""Attribute -> facet of the tree built from the vocabulary alone, when the LLM gives no usable part.

The vocabulary's ``part`` and ``count`` entries ("with a stem", "in a pair") do not read as the value of an
attribute in a clue sentence ("the count of the fruit is in a pair"), so the fallback leaves them out.
"""


def facet_of(attribute: str) -> str | None:
    """The vocabulary category an attribute name speaks of, or None (then only the LLM's values are candidates)."""
    words = set(attribute.casefold().replace("-", " ").split())
    for category, names in FACET_WORDS.items():
        if attribute.casefold() in names or words & names:
            return category
    return None


def facet_entries(vocab: Vocabulary, category: str) -> list[str]:
    """The vocabulary's entries of one category, in file order."""
    return [e for e, c in zip(vocab.entries, vocab.categories, strict=True) if c == category]


def confusers(image_emb: np.ndarray, labels: np.ndarray, n_classes: int, m: int) -> list[list[int]]:
    """Each class's ``m`` most confusable classes: the nearest centroids of their (feedback) images."""
    x = np.asarray(image_emb, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    cent = np.zeros((n_classes, x.shape[1]))
    np.add.at(cent, y, x)
    cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)
    sim = cent @ cent.T
    np.fill_diagonal(sim, -np.inf)
    return [[int(o) for o in np.argsort(-sim[c])[:m]] for c in range(n_classes)]


def class_fit(image_emb: np.ndarray, labels: np.ndarray, n_classes: int, text_emb: np.ndarray) -> np.ndarray:
    """(C, V): mean cosine of each text over each class's images, minus its mean over all classes.

    Centred but not scaled: a z-score (as the visual-word probe uses) makes every text that peaks on the
    same class equally good, so a sentence that barely fits would tie with the one that fits best.
    """
    x = np.asarray(image_emb, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    sums = np.zeros((n_classes, text_emb.shape[0]))
    np.add.at(sums, y, x @ np.asarray(text_emb, dtype=np.float64).T)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    seen = counts > 0
    mean = np.zeros_like(sums)
    mean[seen] = sums[seen] / counts[seen, None]
    return np.where(seen[:, None], mean - mean[seen].mean(axis=0, keepdims=True), 0.0)


def ground_attribute(
    encoder: TextEncoder,
    sentence: str,
    candidates: Sequence[str],
    llm_values: Mapping[str, str],
    image_emb: np.ndarray,
    labels: np.ndarray,
    classnames: Sequence[str],
    against: Sequence[Sequence[int]],
) -> list[tuple[str, float, float | None]]:
    """Per class: (kept value, its support, the LLM value's support or None) for one (part, attribute).

    ``sentence`` holds ``{value}`` (the clue template with part and attribute filled in); ``llm_values``
    maps a class to its LLM answer; ``against`` lists each class's confusable classes (empty: all classes).
    A candidate's support for class c is its fit to c's images (:func:`class_fit`, already relative to all
    classes) minus its mean fit to ``against[c]``'s images.
    """
    cands = list(dict.fromkeys([*candidates, *llm_values.values()]))
    emb = encoder.embed_texts([sentence.format(value=v) for v in cands])
    fit = class_fit(image_emb, labels, len(classnames), emb)
    out = []
    for c, name in enumerate(classnames):
        others = list(against[c])
        support = fit[c] - (fit[others].mean(axis=0) if others else 0.0)
        best = int(np.argmax(support))
        llm = llm_values.get(name)
        out.append((cands[best], float(support[best]), None if llm is None else float(support[cands.index(llm)])))
    return out


@dataclass
class ImageEvidence:
    """The feedback images of a build's classes and the backbone that reads them: what values are checked on."""

    encoder: TextEncoder
    image_emb: np.ndarray
    labels: np.ndarray
    vocabulary: Vocabulary
    n_confusers: int = 0
    _against: list[list[int]] | None = field(default=None, repr=False)

    def against(self, n_classes: int) -> list[list[int]]:
        """Each class's confusable classes (computed once)."""
        if self._against is None:
            m = min(self.n_confusers, n_classes - 1)
            self._against = confusers(self.image_emb, self.labels, n_classes, m) if m > 0 else [[]] * n_classes
        return self._against

    def ground(
        self,
        attributes: Mapping[str, Sequence[str]],
        answers: Sequence[tuple[str, str, str, str]],
        classnames: Sequence[str],
        template: str,
    ) -> list[ValueSource]:
        """One :class:`ValueSource` per (leaf part, attribute, class) that has any candidate value.

        ``attributes``: leaf part path -> attributes; ``answers``: the LLM's usable (part, attribute, class,
        value) answers. An attribute with no facet and no LLM answer has no candidate and gets no value.
        """
        llm: dict[tuple[str, str], dict[str, str]] = {}
        for p, a, c, v in answers:
            llm.setdefault((p, a), {})[c] = v
        against = self.against(len(classnames))
        # a value that names a class ("kiwi, a type of animal") describes no attribute of the others
        names = re.compile(r"\b(?:" + "|".join(re.escape(n.casefold()) for n in classnames) + r")\b")
        out: list[ValueSource] = []
        for path, attrs in attributes.items():
            leaf = path.split(PART_SEPARATOR)[-1]
            for a in attrs:
                facet = facet_of(a)
                vocab = facet_entries(self.vocabulary, facet) if facet else []
                given = llm.get((path, a), {})
                # "the shape of the skin is yellow" is a category error, not a candidate shape
                elsewhere = {
                    e
                    for e, cat in zip(self.vocabulary.entries, self.vocabulary.categories, strict=True)
                    if cat != facet
                }
                fitting = {c: v for c, v in given.items() if v in vocab or (v not in elsewhere and not names.search(v))}
                if not vocab and not fitting:
                    continue
                sentence = template.format(part=leaf, attribute=a, value="{value}")
                chosen = ground_attribute(
                    self.encoder, sentence, vocab, fitting, self.image_emb, self.labels, classnames, against
                )
                for name, (value, support, llm_support) in zip(classnames, chosen, strict=True):
                    mine = given.get(name)
                    origin: Origin = "images" if mine is None else ("both" if mine == value else "llm_overruled")
                    source = ValueSource(part=path, attribute=a, class_name=name, value=value, origin=origin)
                    out.append(
                        source.model_copy(update={"support": support, "llm_value": mine, "llm_support": llm_support})
                    )
        return out
