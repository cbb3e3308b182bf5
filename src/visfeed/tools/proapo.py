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
  (the name, descriptions, visual-word sentences: an :class:`~visfeed.tools.item_search.ItemLibrary`);
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
from visfeed.tools.image_line import normalise_rows
from visfeed.tools.item_search import ItemLibrary, SearchResult, accuracy_of, build_library, canonical, single


@dataclass(frozen=True)
class Fitness:
    """ProAPO's fitness weights (its code's defaults; accuracies in percent)."""

    top1: float = 0.1
    top5: float = 0.1
    redundancy: float = 0.05
    ce: float = 10.0


@dataclass(frozen=True)
class Budget:
    """How long each stage searches (its code's defaults), and how many candidates each operator makes."""

    template_iterations: int = 8
    outer: int = 3
    inner: int = 4
    max_groups: int = 4
    elites: int = 4
    per_operator: int = 8
    fresh: int = 4
    crossovers: int = 16
    start_samples: int = 32


DEFAULT_FITNESS = Fitness()
DEFAULT_BUDGET = Budget()


def _lse(a: np.ndarray, axis: int) -> np.ndarray:
    top = a.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.squeeze(top, axis) + np.log(np.exp(a - top).sum(axis=axis))


def _redundancy(v: np.ndarray) -> float:
    sim = v @ v.T
    return float(np.sqrt((np.triu(sim, 1) ** 2).sum()))


class Scorer:
    """ProAPO's fitness of whole class-vector matrices, and of many changes to one group of columns at once."""

    def __init__(self, image_emb: np.ndarray, labels: np.ndarray, scale: float, weights: Fitness) -> None:
        self.x = normalise_rows(image_emb)
        self.y = np.asarray(labels, dtype=np.int64)
        self.scale = scale
        self.w = weights

    def _combine(self, top1: np.ndarray, top5: np.ndarray, red: np.ndarray, ce: np.ndarray) -> np.ndarray:
        w = self.w
        return w.top1 * 100 * top1 + w.top5 * 100 * top5 + w.redundancy * red - w.ce * ce

    def full(self, vectors: np.ndarray) -> float:
        """Fitness of one (C, D) matrix of class vectors."""
        logits = self.scale * self.x @ vectors.T
        true = logits[np.arange(len(self.y)), self.y]
        rank = (logits > true[:, None]).sum(axis=1)
        ce = float((_lse(logits, 1) - true).mean())
        out = self._combine(np.mean(rank == 0), np.mean(rank < 5), np.asarray(_redundancy(vectors)), np.asarray(ce))
        return float(out)

    def per_class_ce(self, vectors: np.ndarray) -> np.ndarray:
        """Mean cross-entropy of each class's images (NaN for a class without one)."""
        logits = self.scale * self.x @ vectors.T
        ce = _lse(logits, 1) - logits[np.arange(len(self.y)), self.y]
        n = vectors.shape[0]
        sums = np.bincount(self.y, weights=ce, minlength=n)
        counts = np.bincount(self.y, minlength=n)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def group(self, vectors: np.ndarray, group: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
        """A function scoring (K, g, D) replacements of the ``group`` columns, the others kept fixed."""
        g = np.asarray(group)
        fixed = np.setdiff1d(np.arange(vectors.shape[0]), g)
        logits = self.scale * self.x @ vectors[fixed].T  # (N, F)
        lse_fixed = _lse(logits, 1) if fixed.size else np.full(len(self.y), -np.inf)
        pos = {int(c): i for i, c in enumerate(g)}
        in_g = np.array([int(c) in pos for c in self.y])
        gpos = np.array([pos.get(int(c), 0) for c in self.y])
        fcol = np.searchsorted(fixed, self.y)
        out_rows = np.flatnonzero(~in_g)
        true_out = logits[out_rows, fcol[out_rows]]
        rank_out = (logits[out_rows] > true_out[:, None]).sum(axis=1)
        in_rows = np.flatnonzero(in_g)
        fixed_in = logits[in_rows]  # (n_in, F)
        vf = vectors[fixed]
        sim_ff = vf @ vf.T
        red_fixed = float((np.triu(sim_ff, 1) ** 2).sum())
        n = len(self.y)

        def score(cands: np.ndarray) -> np.ndarray:
            lg = self.scale * np.einsum("nd,kgd->kng", self.x, cands)  # (K, N, g)
            true = np.empty((cands.shape[0], n))
            true[:, out_rows] = true_out
            true[:, in_rows] = lg[:, in_rows, gpos[in_rows]]
            rank = (lg > true[:, :, None]).sum(axis=2)
            rank[:, out_rows] += rank_out
            rank[:, in_rows] += (fixed_in[None] > true[:, in_rows, None]).sum(axis=2)
            ce = (np.logaddexp(lse_fixed[None], _lse(lg, 2)) - true).mean(axis=1)
            cross = (np.einsum("kgd,fd->kgf", cands, vf) ** 2).sum(axis=(1, 2))
            inner = np.einsum("kgd,khd->kgh", cands, cands)
            within = (np.triu(inner, 1) ** 2).sum(axis=(1, 2))
            red = np.sqrt(red_fixed + cross + within)
            return self._combine((rank == 0).mean(axis=1), (rank < 5).mean(axis=1), red, ce)

        return score


Assignment = tuple[frozenset[int], ...]


@dataclass
class Operators:
    """ProAPO's edit operators over assignments (one item set per position), seeded."""

    sizes: Sequence[int]
    rng: np.random.Generator
    max_items: int = 16

    def add(self, a: Assignment) -> Assignment | None:
        """One more item for one position."""
        opts = [i for i, s in enumerate(a) if len(s) < min(self.sizes[i], self.max_items)]
        if not opts:
            return None
        i = int(self.rng.choice(opts))
        rest = sorted(set(range(self.sizes[i])) - a[i])
        return self._with(a, i, a[i] | {int(self.rng.choice(rest))})

    def remove(self, a: Assignment) -> Assignment | None:
        """One item fewer for one position (one stays)."""
        opts = [i for i, s in enumerate(a) if len(s) > 1]
        if not opts:
            return None
        i = int(self.rng.choice(opts))
        return self._with(a, i, a[i] - {int(self.rng.choice(sorted(a[i])))})

    def replace(self, a: Assignment) -> Assignment | None:
        """One item of one position swapped for an unused one."""
        opts = [i for i, s in enumerate(a) if len(s) < self.sizes[i]]
        if not opts:
            return None
        i = int(self.rng.choice(opts))
        rest = sorted(set(range(self.sizes[i])) - a[i])
        out = self._with(a, i, a[i] - {int(self.rng.choice(sorted(a[i])))})
        return self._with(out, i, out[i] | {int(self.rng.choice(rest))})

    def fresh(self, a: Assignment) -> Assignment:
        """A fresh random set for one position."""
        i = int(self.rng.integers(len(a)))
        k = int(self.rng.integers(1, min(self.sizes[i], 4) + 1))
        return self._with(a, i, frozenset(int(j) for j in self.rng.choice(self.sizes[i], size=k, replace=False)))

    def crossover(self, elites: Sequence[Assignment]) -> Assignment:
        """Items all elites share, plus each other elite item with the share of elites that hold it."""
        out = []
        for i in range(len(elites[0])):
            counts: dict[int, int] = {}
            for e in elites:
                for j in e[i]:
                    counts[j] = counts.get(j, 0) + 1
            kept = {j for j, n in counts.items() if n == len(elites) or self.rng.random() < n / len(elites)}
            out.append(frozenset(kept) if kept else frozenset([max(counts, key=lambda j: (counts[j], -j))]))
        return tuple(out)

    @staticmethod
    def _with(a: Assignment, i: int, s: frozenset[int]) -> Assignment:
        return (*a[:i], frozenset(s), *a[i + 1 :])

    def children(self, elites: Sequence[Assignment], budget: Budget) -> list[Assignment]:
        """Every operator's children of every elite, plus the crossovers of the elites."""
        out: list[Assignment] = []
        for e in elites:
            for op in (self.add, self.remove, self.replace):
                out += [c for c in (op(e) for _ in range(budget.per_operator)) if c is not None]
            out += [self.fresh(e) for _ in range(budget.fresh)]
        if len(elites) > 1:
            out += [self.crossover(elites) for _ in range(budget.crossovers)]
        return out


def evolve(
    start: Sequence[Assignment],
    fitness: Callable[[list[Assignment]], np.ndarray],
    ops: Operators,
    budget: Budget,
    iterations: int,
) -> tuple[list[Assignment], dict[Assignment, float]]:
    """Elitist search: each iteration scores the unseen children of the elites; returns (elites, all seen)."""
    seen: dict[Assignment, float] = {}

    def score(cands: Sequence[Assignment]) -> None:
        new = list(dict.fromkeys(c for c in cands if c not in seen))
        if new:
            seen.update(zip(new, map(float, fitness(new)), strict=True))

    def top() -> list[Assignment]:  # ties keep the earlier-seen candidate
        keys, vals = list(seen), list(seen.values())
        return [keys[k] for k in sorted(range(len(keys)), key=lambda k: -vals[k])[: budget.elites]]

    score(start)
    for _ in range(iterations):
        score(ops.children(top(), budget))
    return top(), seen


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
    from visfeed.tools.baselines import imagenet_templates as templates

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
    probs = np.exp(scorer.scale * scorer.x @ vectors.T - _lse(scorer.scale * scorer.x @ vectors.T, 1)[:, None])
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

    def chosen_texts(self) -> dict[str, list[str]]:
        """The chosen items' texts per class name."""
        lib = self.library
        return {n: [lib.texts[c][i] for i in self.found.chosen[c]] for c, n in enumerate(lib.classnames)}

    def prompts(self) -> dict[str, list[str]]:
        """The chosen items' prompts per class name (what a scoring session embeds for the same vectors)."""
        return {
            n: [p for i in self.found.chosen[c] for p in self.items[c][i].prompts]
            for c, n in enumerate(self.library.classnames)
        }


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
        list({it.text: it for it in [
            name_item(n, tpl.templates),
            *(description_item(n, d, tpl.templates, run_template, "oneshot") for d in ds),
            *(single(w, "words") for w in ws),
        ]}.values())
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
