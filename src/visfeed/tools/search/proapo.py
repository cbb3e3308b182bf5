"""ProAPO's search (arXiv 2502.19844), written from its paper and public code, on visfeed's item libraries.

Why here: ProAPO is the strongest peer that needs no LLM inside its search and it lists this method among
its baselines, so visfeed offers it as a method (rows ``proapo`` and ``proapo_words``) and the loop uses
its search as its crossover. What it does:

- **fitness** on the few labelled shots: ``w1 · top-1 % + w5 · top-5 % + wr · R − wce · CE`` with the
  scaled cosine logits, ``R`` the L2 norm of the class vectors' inter-class similarities (upper triangle);
  weights as its code's defaults (0.1, 0.1, 0.05, 10);
- **stage 1** searches a *set of templates* (the 80 ImageNet templates, plus ``", a type of {type}."``
  variants when a type word is given), the class vector the normalised mean of the templated names;
- **stage 2** keeps that set and searches, per *group* of confusable classes, which items each class uses
  (the name, descriptions, visual-word sentences: an :class:`~visfeed.tools.search.items.ItemLibrary`);
- **operators**: add, remove, replace one item, a fresh random set, and crossover of the 4 elites that keeps
  the items they all share and draws the others by how many elites hold them; elitist top 4 over every
  candidate seen;
- **groups**: seeds are the worst-fitting classes (highest cross-entropy), each with its top-5 confusions
  above 4 %, padded from its k-means cluster of class vectors; at most ``2.5 ln C`` classes a group.

One difference on purpose: its public code picks the reported prompts by *test* accuracy; here the
snapshots of the search are picked on the validation split (the feedback split without one), and the
test split is never read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from visfeed.state.models import LibraryItem
from visfeed.state.templates import render_prompt
from visfeed.tools.scoring.image_line import normalise_rows
from visfeed.tools.search.items import (
    ItemLibrary,
    SearchResult,
    accuracy_of,
    build_library,
    canonical,
    single,
    unique_items,
)
from visfeed.tools.search.proapo_search import (
    DEFAULT_BUDGET,
    DEFAULT_FITNESS,
    Assignment,
    Budget,
    Fitness,
    Operators,
    Scorer,
    evolve,
    lse,
)

# --------------------------------------------------------------------------- stage 1: templates


@dataclass
class TemplateResult:
    """The chosen template set and the figures of its search."""

    templates: list[str]
    fitness: float
    validation_accuracy: float | None
    evaluated: int
    seconds: float = 0.0


def template_search(
    classnames: Sequence[str],
    templates: Sequence[str],
    embed: Callable[[list[str]], np.ndarray],
    image_emb: np.ndarray,
    labels: np.ndarray,
    *,
    scale: float,
    seed: int,
    weights: Fitness = DEFAULT_FITNESS,
    budget: Budget = DEFAULT_BUDGET,
    val_emb: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
) -> TemplateResult:
    """Stage 1: the set of templates (``{}`` = the class name) whose name ensemble fits the shots best.

    The final set is the elite with the best validation accuracy (ties: fitness order); without a
    validation split, the fittest.
    """
    t0 = time.perf_counter()
    t, c = len(templates), len(classnames)
    emb = normalise_rows(np.asarray(embed([tpl.format(n) for tpl in templates for n in classnames])))
    e = emb.reshape(t, c, -1)
    scorer = Scorer(image_emb, labels, scale, weights)

    def vectors(s: frozenset[int]) -> np.ndarray:
        return normalise_rows(e[sorted(s)].sum(axis=0))

    def fit(cands: list[Assignment]) -> np.ndarray:
        return np.array([scorer.full(vectors(a[0])) for a in cands])

    rng = np.random.default_rng(seed)
    ops = Operators([t], rng, max_items=t)
    start: list[Assignment] = [(frozenset(range(t)),), (frozenset([0]),)]
    for _ in range(budget.start_samples):
        k = int(rng.integers(1, t + 1))
        start.append((frozenset(int(i) for i in rng.choice(t, size=k, replace=False)),))
    elites, seen = evolve(start, fit, ops, budget, budget.template_iterations)
    pick, val = elites[0], None
    if val_emb is not None and val_labels is not None and len(val_labels):
        accs = [accuracy_of(vectors(a[0]), val_emb, val_labels) for a in elites]
        best = int(np.argmax(accs))
        pick, val = elites[best], accs[best]
    return TemplateResult([templates[i] for i in sorted(pick[0])], seen[pick], val, len(seen), time.perf_counter() - t0)


def imagenet_templates(type_word: str | None = None) -> list[str]:
    """The 80 ImageNet templates as ``{}`` strings, plus ``..., a type of <type>.`` variants for a type word."""
    from visfeed.tools.feedback.baselines import imagenet_templates as templates

    base = [tpl("{}") for tpl in templates()]
    if not type_word:
        return base
    return [*base, *(b.rstrip(".") + f", a type of {type_word}." for b in base)]


# --------------------------------------------------------------------------- stage 2: items per group


def groups_of(
    scorer: Scorer, vectors: np.ndarray, *, seed: int, max_groups: int, min_confusion: float = 0.04
) -> list[list[int]]:
    """ProAPO's groups: worst-fitting classes first, each with its top-5 confusions, padded from its cluster."""
    c = vectors.shape[0]
    size = max(2, math.ceil(2.5 * math.log(c)))
    total = max(size, math.ceil(10 * math.log(c)))
    ce = scorer.per_class_ce(vectors)
    probs = np.exp(scorer.scale * scorer.x @ vectors.T - lse(scorer.scale * scorer.x @ vectors.T, 1)[:, None])
    from sklearn.cluster import KMeans  # lazily: a run that never forms groups does not load scikit-learn

    k = max(1, min(c, round(c / size)))
    clusters = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(vectors) if k > 1 else np.zeros(c)
    used: set[int] = set()
    out: list[list[int]] = []
    for s in np.argsort(-np.nan_to_num(ce, nan=-np.inf), kind="stable"):
        if len(out) >= max_groups or len(used) >= total:
            break
        s = int(s)
        if s in used:
            continue
        rows = scorer.y == s
        conf = probs[rows].mean(axis=0) if rows.any() else np.zeros(c)
        conf[s] = 0
        group = [s] + [int(j) for j in np.argsort(-conf, kind="stable")[:5] if conf[j] >= min_confusion]
        mates = [int(j) for j in np.flatnonzero(clusters == clusters[s]) if int(j) not in group]
        group = list(dict.fromkeys([*group, *mates]))[:size]
        out.append(group)
        used.update(group)
    return out


def item_search(
    library: ItemLibrary,
    image_emb: np.ndarray,
    labels: np.ndarray,
    *,
    init: Sequence[Sequence[int]],
    scale: float,
    seed: int,
    weights: Fitness = DEFAULT_FITNESS,
    budget: Budget = DEFAULT_BUDGET,
    val_emb: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
) -> SearchResult:
    """Stage 2: per group, which items each class uses, from ``init``.

    The snapshot (the start, then after each outer loop) is picked on validation; without a validation
    split, the fittest, which is the last.
    """
    scorer = Scorer(image_emb, labels, scale, weights)
    chosen: list[frozenset[int]] = [frozenset(s) for s in init]
    has_val = val_emb is not None and val_labels is not None and len(val_labels) > 0
    snaps: list[list[list[int]]] = []
    rows: list[dict[str, float]] = []
    evaluated = 0

    def snapshot(outer: int) -> None:
        vec = library.vectors([sorted(s) for s in chosen])
        row = {"outer": float(outer), "fitness": scorer.full(vec)}
        if has_val:
            row["validation_accuracy"] = accuracy_of(vec, np.asarray(val_emb), np.asarray(val_labels))
        rows.append(row)
        snaps.append([sorted(s) for s in chosen])

    snapshot(0)
    rng = np.random.default_rng(seed)
    for outer in range(1, budget.outer + 1):
        vec = library.vectors([sorted(s) for s in chosen])
        for group in groups_of(scorer, vec, seed=seed + outer, max_groups=budget.max_groups):
            vec = library.vectors([sorted(s) for s in chosen])
            score_group = scorer.group(vec, group)

            def fit(cands: list[Assignment], group: list[int] = group, score_group=score_group) -> np.ndarray:
                cols = np.stack(
                    [np.concatenate([library.columns(c, [sorted(a[i])]) for i, c in enumerate(group)]) for a in cands]
                )
                return score_group(cols)

            ops = Operators([len(library.texts[c]) for c in group], rng)
            elites, seen = evolve([tuple(chosen[c] for c in group)], fit, ops, budget, budget.inner)
            evaluated += len(seen)
            for i, c in enumerate(group):
                chosen[c] = elites[0][i]
        snapshot(outer)
    if has_val:  # the first snapshot with the best validation accuracy
        pick, on = int(np.argmax([r["validation_accuracy"] for r in rows])), "validation"
    else:
        pick, on = len(rows) - 1, "feedback (no validation split)"
    return SearchResult(chosen=snaps[pick], round_picked=pick, picked_on=on, rounds=rows, evaluated=evaluated)


# --------------------------------------------------------------------------- both stages


def name_item(name: str, templates: Sequence[str]) -> LibraryItem:
    """The class name under every template of the set (ProAPO's synonym item)."""
    return LibraryItem(text=name, source="name", prompts=_dedup(t.format(name) for t in templates))


def description_item(
    name: str, description: str, templates: Sequence[str], run_template: str, source: str, iteration: int = 0
) -> LibraryItem:
    """A description joined with each templated name by the run's template (alone for a nameless one)."""
    prompts = _dedup(render_prompt(run_template, t.format(name).rstrip("."), description) for t in templates)
    return LibraryItem(text=description, source=source, prompts=prompts, iteration=iteration)


def _dedup(prompts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(canonical(p) for p in prompts))


@dataclass
class ProapoResult:
    """Both stages' outcome: the template set, the library items, the library and the picked assignment."""

    templates: TemplateResult
    items: list[list[LibraryItem]]
    library: ItemLibrary
    found: SearchResult
    seconds: float = 0.0


def start_assignment(library: ItemLibrary, scorer: Scorer, rng: np.random.Generator, samples: int) -> list[list[int]]:
    """ProAPO's start: the fittest of every item, the name alone (item 0), and random subsets, for all classes."""
    sizes = [len(t) for t in library.texts]
    cands = [[list(range(n)) for n in sizes], [[0] for _ in sizes]]
    for _ in range(samples):
        cands.append([sorted(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False).tolist()) for n in sizes])
    fits = [scorer.full(library.vectors(a)) for a in cands]
    return cands[int(np.argmax(fits))]


def proapo(
    classnames: Sequence[str],
    descriptions: Sequence[Sequence[str]],
    words: Sequence[Sequence[str]],
    *,
    run_template: str,
    embed: Callable[[list[str]], np.ndarray],
    image_emb: np.ndarray,
    labels: np.ndarray,
    scale: float,
    seed: int,
    type_word: str | None = None,
    weights: Fitness = DEFAULT_FITNESS,
    budget: Budget = DEFAULT_BUDGET,
    val_emb: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    templates: TemplateResult | None = None,
) -> ProapoResult:
    """Both stages: the template set (``templates``: one already searched), then the items.

    Stage 2's library per class: the name, ``descriptions`` and ``words`` sentences.
    """
    t0 = time.perf_counter()
    val = {"val_emb": val_emb, "val_labels": val_labels}
    tpl = templates or template_search(
        classnames, imagenet_templates(type_word), embed, image_emb, labels,
        scale=scale, seed=seed, weights=weights, budget=budget, **val,
    )  # fmt: skip
    items = [
        unique_items([
            name_item(n, tpl.templates),
            *(description_item(n, d, tpl.templates, run_template, "oneshot") for d in ds),
            *(single(w, "words") for w in ws),
        ])
        for n, ds, ws in zip(classnames, descriptions, words, strict=True)
    ]  # fmt: skip
    library = build_library(classnames, items, embed)
    scorer = Scorer(image_emb, labels, scale, weights)
    init = start_assignment(library, scorer, np.random.default_rng(seed), budget.start_samples)
    found = item_search(
        library, image_emb, labels, init=init, scale=scale, seed=seed, weights=weights, budget=budget, **val
    )
    spent = time.perf_counter() - t0 + (templates.seconds if templates is not None else 0.0)
    return ProapoResult(templates=tpl, items=items, library=library, found=found, seconds=spent)
