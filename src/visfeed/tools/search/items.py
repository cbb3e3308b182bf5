"""A search over per-class item libraries: which of its candidate sentences each class's vector averages.

Why: ProAPO-style search (arXiv 2502.19844) showed that *choosing* among fixed sentences on the few
labelled shots, with no LLM inside the loop, is a strong line; on this project's market world a greedy
search over a class's own visual-word sentences beat the LLM loop by 8 points (issue 25). This module is
that search as a pure function over embeddings, so any item source (templates, visual-word sentences,
LLM proposals) plugs in as rows of a library:

- a class's vector is the normalised mean of its chosen items' prompts' (normalised) embeddings;
- fitness on the feedback shots is accuracy − ``ce_weight`` × mean cross-entropy of the scaled cosine
  logits (the cross-entropy term keeps the 8 shots from being overfit by a set that just scrapes them);
- each round visits every class and takes its best single change (add, remove or replace one item) if it
  improves the fitness; the other classes' columns stay fixed, so a class's candidates are scored in one
  matrix product;
- the round is picked on the validation split (never the test split); without one, the last round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from visfeed.errors import EmbeddingError
from visfeed.state.models import LibraryItem
from visfeed.tools.scoring.image_line import accuracy, normalise_rows
from visfeed.tools.search.fitness import LogitStats, item_bounds


@dataclass
class ItemLibrary:
    """Per class: candidate item texts, their sources ('template', 'words', 'llm', ...) and embeddings.

    An item's row is the *sum* of its prompts' normalised embeddings (one prompt: the embedding itself) and
    ``counts`` its number of prompts. The class vector is the normalised sum of the chosen rows (CLIP's and
    ProAPO's ensemble), or, with ``mean_of_cosines``, their mean over every chosen prompt: the centroid a
    scoring session computes from the chosen items' prompts together (the method's ensembled score).
    """

    classnames: list[str]
    texts: list[list[str]]
    sources: list[list[str]]
    emb: list[np.ndarray]
    counts: list[np.ndarray] = field(default_factory=list)  # empty: one prompt per item
    mean_of_cosines: bool = False

    def __post_init__(self) -> None:
        n = len(self.classnames)
        if not (len(self.texts) == len(self.sources) == len(self.emb) == n):
            raise EmbeddingError(f"item library: {n} classes but {len(self.texts)} item lists")
        for c, (t, e) in enumerate(zip(self.texts, self.emb, strict=True)):
            if not t or e.shape[0] != len(t):
                raise EmbeddingError(
                    f"item library: class {self.classnames[c]!r} has {len(t)} items, {e.shape[0]} rows"
                )
        self.emb = [np.asarray(e, dtype=np.float64) for e in self.emb]
        if not self.counts:
            self.counts = [np.ones(len(t)) for t in self.texts]

    def columns(self, c: int, sets: Sequence[Sequence[int]]) -> np.ndarray:
        """(K, D) vectors of class ``c`` for each candidate item set."""
        w = np.zeros((len(sets), len(self.texts[c])))
        for k, s in enumerate(sets):
            w[k, list(s)] = 1.0
        sums = w @ self.emb[c]
        if self.mean_of_cosines:
            return sums / (w @ self.counts[c])[:, None]
        return normalise_rows(sums)

    def vectors(self, chosen: Sequence[Sequence[int]]) -> np.ndarray:
        """(C, D) class vectors of one assignment."""
        return np.concatenate([self.columns(c, [idx]) for c, idx in enumerate(chosen)])

    def index(self, c: int, texts: Sequence[str]) -> list[int]:
        """Item indices of class ``c`` for ``texts`` (texts not in the library are skipped)."""
        at = {t: i for i, t in enumerate(self.texts[c])}
        return sorted({at[t] for t in texts if t in at})


@dataclass
class SearchResult:
    """The picked assignment (item indices per class), its round (or snapshot), and every round's figures."""

    chosen: list[list[int]]
    round_picked: int
    picked_on: str
    rounds: list[dict[str, float]] = field(default_factory=list)
    evaluated: int = 0  # candidate assignments scored (ProAPO's search counts them)

    def texts(self, library: ItemLibrary) -> dict[str, list[str]]:
        """The chosen item texts per class name."""
        return {name: [library.texts[c][i] for i in self.chosen[c]] for c, name in enumerate(library.classnames)}


def _fitness_terms(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``logits`` (N, C)."""
    top = logits.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    ce = float((lse - logits[np.arange(len(labels)), labels]).mean())
    acc = float((logits.argmax(axis=1) == labels).mean())
    return acc, ce


def accuracy_of(vectors: np.ndarray, image_emb: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of class vectors on images (cosine)."""
    return accuracy((normalise_rows(image_emb) @ vectors.T).argmax(axis=1), labels)


def _candidates(current: list[int], n_items: int, cap: int, rng: np.random.Generator) -> tuple[list[list[int]], bool]:
    """Every set one change away: add one item, remove one (keeping one), replace one; and whether sampled.

    Above ``cap`` sets, every add and remove and a seeded sample of the replacements (large libraries).
    """
    cur = set(current)
    rest = [i for i in range(n_items) if i not in cur]
    out = [sorted([*current, i]) for i in rest]
    if len(current) > 1:
        out += [[j for j in current if j != i] for i in current]
    swaps = [(i, r) for i in current for r in rest]
    sampled = len(out) + len(swaps) > cap
    if sampled:
        keep = rng.choice(len(swaps), size=max(0, cap - len(out)), replace=False)
        swaps = [swaps[k] for k in sorted(keep)]
    out += [sorted([*(j for j in current if j != i), r]) for i, r in swaps]
    return out, sampled


def search_items(
    library: ItemLibrary,
    image_emb: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    init: Sequence[Sequence[int]],
    rounds: int = 8,
    ce_weight: float = 0.1,
    logit_scale: float = 100.0,
    val_emb: np.ndarray | None = None,
    val_labels: Sequence[int] | np.ndarray | None = None,
    max_candidates: int = 512,
    seed: int = 0,
    classes: Sequence[int] | None = None,
) -> SearchResult:
    """Greedy per-class search of item sets on the feedback images; the round picked on validation.

    ``max_candidates``: most sets one class tries per round (replacements sampled above it, seeded);
    ``classes``: search only these (the others keep their ``init`` sets).
    """
    rng = np.random.default_rng(seed)
    x = normalise_rows(image_emb)
    y = np.asarray(labels, dtype=np.int64)
    chosen = [sorted(set(s)) for s in init]
    if len(chosen) != len(library.classnames) or any(not s for s in chosen):
        raise EmbeddingError("the search needs a non-empty initial item set for every class")
    has_val = val_emb is not None and val_labels is not None and len(val_labels) > 0
    history: list[list[list[int]]] = []
    rows: list[dict[str, float]] = []

    def record(r: int, searched: int) -> None:
        vec = library.vectors(chosen)
        acc, ce = _fitness_terms(logit_scale * x @ vec.T, y)
        row = {"round": float(r), "feedback_accuracy": acc, "feedback_ce": ce, "fitness": acc - ce_weight * ce,
               "classes_searched": float(searched)}  # fmt: skip
        if has_val:
            row["validation_accuracy"] = accuracy_of(vec, np.asarray(val_emb), np.asarray(val_labels))
        rows.append(row)
        history.append([list(s) for s in chosen])

    record(0, 0)
    if len(chosen) > 1:  # one class: nothing to tell apart
        _climb(library, x, y, chosen, rounds, ce_weight, logit_scale, max_candidates, rng, classes, record)
    if has_val:  # first round with the best validation accuracy: ties keep the simpler, earlier set
        pick = int(np.argmax([row["validation_accuracy"] for row in rows]))
        picked_on = "validation"
    else:
        pick, picked_on = len(rows) - 1, "feedback (no validation split)"
    return SearchResult(chosen=history[pick], round_picked=pick, picked_on=picked_on, rounds=rows)


def _climb(
    library: ItemLibrary, x: np.ndarray, y: np.ndarray, chosen: list[list[int]], rounds: int, ce_weight: float,
    logit_scale: float, max_candidates: int, rng: np.random.Generator, classes: Sequence[int] | None,
    record: Callable[[int, int], None],
) -> None:  # fmt: skip
    """The rounds of :func:`search_items`: ``chosen`` changes in place; each round recorded with its visits.

    A class is visited in a round only if a change since its last visit touched its relevant images (see
    :mod:`visfeed.tools.search.fitness`) or its candidates are a sample (a new sample may hold a better one);
    the others found nothing better last time and their candidates' fitness has not moved.
    """
    logits = logit_scale * x @ library.vectors(chosen).T  # kept in step: one column changes at a time
    bounds = item_bounds(x, y, library.emb, library.counts, logit_scale) if library.mean_of_cosines else None
    stats = LogitStats(logits, y, bounds)
    order = np.arange(len(chosen)) if classes is None else np.asarray(classes, dtype=np.int64)
    dirty = np.zeros(len(chosen), dtype=bool)
    dirty[order] = True
    for r in range(1, rounds + 1):
        changed, searched = False, 0
        if r > 1:
            stats.refresh(np.arange(len(y)))  # the running sums' rounding, reset once a round
        for c in order:
            if not dirty[c]:  # read at its turn: a change earlier in this round may have touched it
                continue
            cands, sampled = _candidates(chosen[c], len(library.texts[c]), max_candidates, rng)
            dirty[c] = sampled
            if not cands:
                continue
            searched += 1
            rows = stats.relevant(c)
            cand_cols = logit_scale * x[rows] @ library.columns(c, cands).T  # (rows, K)
            fit = stats.fitness(c, rows, np.column_stack([cand_cols, logits[rows, c]]), ce_weight)
            fit, current = fit[:-1], fit[-1]  # the current set's column goes last
            best = int(np.argmax(fit))
            if fit[best] > current + 1e-12:
                chosen[c] = cands[best]
                stats.set_column(c, logit_scale * x @ library.columns(c, [cands[best]])[0], dirty)
                changed = True
        record(r, searched)
        if not changed:
            break


NAME_TEMPLATES = (
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a close-up photo of a {}.",
    "a bright photo of a {}.",
    "a good photo of a {}.",
    "itap of a {}.",
)
"""The class-name items every library starts from (six of the 80 ImageNet templates)."""


def unique_items(items: Iterable[LibraryItem], have: Iterable[str] = ()) -> list[LibraryItem]:
    """``items`` without repeated texts (the first wins) and without the texts a library already ``have``."""
    known = set(have)
    return [x for x in {x.text: x for x in items}.values() if x.text not in known]


def build_library(
    classnames: Sequence[str],
    items: Sequence[Sequence[LibraryItem]],
    embed: Callable[[list[str]], np.ndarray],
    *,
    mean_of_cosines: bool = False,
) -> ItemLibrary:
    """An :class:`ItemLibrary` from per-class items, every prompt embedded in one call."""
    flat = [p for per_class in items for it in per_class for p in it.prompts]
    emb = normalise_rows(np.asarray(embed(flat))) if flat else np.zeros((0, 0))
    out, start = [], 0
    for per_class in items:
        rows = []
        for it in per_class:
            rows.append(emb[start : start + len(it.prompts)].sum(axis=0))
            start += len(it.prompts)
        out.append(np.stack(rows) if rows else np.zeros((0, emb.shape[1] if emb.ndim == 2 else 0)))
    return ItemLibrary(
        classnames=list(classnames),
        texts=[[it.text for it in per_class] for per_class in items],
        sources=[[it.source for it in per_class] for per_class in items],
        emb=out,
        counts=[np.array([len(it.prompts) for it in per_class], dtype=np.float64) for per_class in items],
        mean_of_cosines=mean_of_cosines,
    )


def single(text: str, source: str) -> LibraryItem:
    """An item that is its own one prompt (a name template, a visual-word sentence)."""
    return LibraryItem(text=text, source=source, prompts=[canonical(text)])


def canonical(prompt: str) -> str:
    """A prompt as scoring sessions embed it (no surrounding space, no final period), so both agree."""
    return prompt.strip().rstrip(".")
