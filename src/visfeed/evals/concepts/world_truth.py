"""Faithfulness of clues on a synthetic world, whose every image has known attribute values.

- :func:`spec_tree`: the tree a perfect LLM would write, read off the world spec (an upper-bound control
  that separates what the LLM gets wrong from what the VLM and the classifiers do with correct clues);
- :func:`world_match`: the world (attribute, value) a clue speaks of, if any ("the color of the skin is
  bright yellow" -> color = yellow; "flesh"/"inside" parts map colours to the inside attribute);
- :func:`clue_auroc`: for each matched clue, the AUROC of its feature for images that have the value
  (and show it: flesh only when halved, patterns only when whole) against images that do not;
- :func:`precision_at_k`: the share of each class's most important clues that state a value the class can
  take in the spec (unmatched clues count as misses; so do clues that matter by their absence);
- :func:`positive_precision_at_k`: the same over each class's positive evidence only (clues that are
  higher on its images), the measure a true tree can pass;
- :func:`positive_profile`: the same at 1 and 3, its ceiling (the best order of the same clues) and the
  share of the importance that true clues carry: where a low precision@k comes from;
- :func:`true_assignments`: per world attribute, the share of the tree's (class, value) assignments that
  are true of the class;
- :func:`twin_pairs` / :func:`twin_score`: one attribute of an image changed, everything else (the same
  generator) kept; the clue of the old value must fall and the clue of the new value must rise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from visfeed.state.concepts import ConceptPart, ConceptTree, ConceptValue
from visfeed.tools.concepts.features import FeatureSpace
from visfeed.tools.datasets.world import image_rng
from visfeed.tools.world.captions import COLOR_WORDS, PATTERN_WORDS, SHAPE_WORDS, SIZE_WORDS
from visfeed.tools.world.render import render
from visfeed.tools.world.spec import WorldSpec
from visfeed.tools.world.vocab import VOCABULARY, compatible

_INSIDE_WORDS = re.compile(r"\b(?:flesh|inside|interior|pulp|cut|cross.section|core)\b")
SPEC_PARTS: dict[str, dict[str, str]] = {
    "skin": {"color": "color", "pattern": "pattern"},
    "fruit": {"shape": "shape", "size": "size"},
    "top": {"kind": "top"},
    "flesh": {"color": "inside"},
}
"""Part -> clue attribute -> world attribute, for :func:`spec_tree`."""


def spec_tree(spec: WorldSpec, domain: str = "fruit or vegetable") -> ConceptTree:
    """The tree whose values are exactly each class's support in the spec (see the module docstring)."""
    values: list[ConceptValue] = []
    for part, attrs in SPEC_PARTS.items():
        for attr, world_attr in attrs.items():
            for value in VOCABULARY[world_attr]:
                classes = [c.name for c in spec.classes if value in c.support(world_attr)]
                if classes:
                    values.append(ConceptValue(part=part, attribute=attr, value=value, classes=classes))
    parts = [ConceptPart(name=p, attributes=list(a)) for p, a in SPEC_PARTS.items()]
    return ConceptTree(domain=domain, classnames=spec.classnames, parts=parts, values=values)


WORLD_FORMS: dict[str, str] = {
    "striped": "stripes",
    "spotted": "spots",
    "seeded": "seeds",
    "dimpled": "dimples",
    "scaly": "scales",
    "ribbed": "ribs",
}
"""Adjectives -> the world's noun for the same pattern (a word form, not a synonym)."""


VOCABULARY_SYNONYMS: dict[str, tuple[str, str]] = {
    "spherical": ("shape", "round"),
    "pear-shaped": ("shape", "teardrop"),  # the world's teardrop: narrow at the top, wide at the bottom
    "disc-shaped": ("shape", "flat"),  # the world's flat: "flat and round", "wider than tall"
    "plain": ("pattern", "smooth"),  # no pattern
    "polka-dotted": ("pattern", "spots"),
    "velvety": ("pattern", "fuzzy"),  # the world's fuzzy: "soft", "downy"
    "segmented": ("pattern", "ribs"),  # the world's ribs: "segments", "deep grooves"
    "ridged": ("pattern", "ribs"),
    "crimson": ("color", "red"),
    "maroon": ("color", "dark red"),
    "violet": ("color", "purple"),
    "lavender": ("color", "purple"),
    "cream-coloured": ("color", "pale yellow"),  # the world's pale yellow: "cream", "creamy"
}
"""Entries of the shipped visual vocabulary that name a world value in other words than the captions'.

The captions' phrases are the words the tower learned, not every English word for a value: a grounded
tree that says a lime is "spherical" says it is round. Words that sit between two values ("golden",
"teal", "peach-coloured") are left out: they state neither.
"""


def _phrases() -> dict[str, tuple[str, str]]:
    """Every phrase the world's captions use for a value -> (attribute, value): the world's own synonyms.

    The tower learned these words and only these ("cylindrical" for long, "crescent-shaped" for curved), so
    a clue phrased with one states that value; so does a vocabulary word of :data:`VOCABULARY_SYNONYMS`.
    """
    tables: list[tuple[str, dict[str, list[str]]]] = [
        ("color", COLOR_WORDS), ("shape", SHAPE_WORDS), ("size", SIZE_WORDS),
        ("pattern", {v: [*adj, *nouns] for v, (adj, nouns) in PATTERN_WORDS.items()}),
    ]  # fmt: skip
    out: dict[str, tuple[str, str]] = {}
    for attr, table in tables:
        for value, phrases in table.items():
            for phrase in phrases:
                out.setdefault(phrase.casefold(), (attr, value))
    for word, match in VOCABULARY_SYNONYMS.items():
        out.setdefault(word, match)
    return out


PHRASES = _phrases()


def world_match(group: str, attribute: str, value: str) -> tuple[str, str] | None:
    """The world (attribute, value) a clue states, or None (longest vocabulary value found in ``value``).

    A value that is one of the world captions' phrases states that phrase's value ("cylindrical": long);
    otherwise hyphens read as spaces ("heart-shaped" states heart) and adjectives as the world's nouns
    (striped -> stripes).
    """
    exact = PHRASES.get(" ".join(value.casefold().split()))
    if exact is not None:
        inside = exact[0] == "color" and _INSIDE_WORDS.search(f"{group} {attribute}".casefold())
        return ("inside", exact[1]) if inside else exact
    words = value.casefold().replace("-", " ").split()
    text = f" {' '.join(WORLD_FORMS.get(w, w) for w in words)} "
    found = [(attr, v) for attr, vs in VOCABULARY.items() for v in vs if f" {v} " in text]
    if not found:
        return None
    longest = max(len(v) for _, v in found)
    found = [(a, v) for a, v in found if len(v) == longest]
    attrs = {a for a, _ in found}
    if attrs == {"color", "inside"}:
        return ("inside" if _INSIDE_WORDS.search(f"{group} {attribute}".casefold()) else "color"), found[0][1]
    return found[0] if len(attrs) == 1 else None


def image_attributes(spec: WorldSpec, split: str, seed: int, labels: Sequence[int]) -> list[dict[str, str]]:
    """The attribute draw of every image of a rendered split (labels in split order, as the files are)."""
    counters: dict[int, int] = {}
    out = []
    for label in labels:
        i = counters.get(int(label), 0)
        counters[int(label)] = i + 1
        out.append(spec.classes[int(label)].sample(image_rng(seed, split, int(label), i)))
    return out


def shows(attrs: Mapping[str, str], attribute: str, value: str) -> bool:
    """Whether an image with ``attrs`` visibly has ``attribute = value``."""
    if attribute == "inside":
        return attrs["cut"] == "halved" and attrs["inside"] == value
    if attribute == "pattern" and attrs["cut"] == "halved":
        return False
    return attrs[attribute] == value


def matches(space: FeatureSpace) -> list[tuple[str, str] | None]:
    """:func:`world_match` of every column."""
    return [world_match(g, a, v) for g, a, v in zip(space.groups, space.attributes, space.values, strict=True)]


def clue_auroc(space: FeatureSpace, features: np.ndarray, attrs: Sequence[Mapping[str, str]]) -> dict[str, float]:
    """Clue text -> AUROC of its feature for images showing its world value (matched clues only)."""
    out = {}
    for j, m in enumerate(matches(space)):
        if m is None:
            continue
        pos = np.asarray([shows(a, *m) for a in attrs])
        if 0 < pos.sum() < len(pos):
            out[space.texts[j]] = float(roc_auc_score(pos, features[:, j]))
    return out


def precision_at_k(
    per_class_top: Mapping[str, Sequence[tuple[str, float]]], space: FeatureSpace, spec: WorldSpec, k: int = 5
) -> dict[str, float]:
    """Class -> share of its top ``k`` clues whose world value the class can take (unmatched: a miss)."""
    match = dict(zip(space.texts, matches(space), strict=True))
    by_name = {c.name: c for c in spec.classes}
    out = {}
    for cls, top in per_class_top.items():
        hits = 0
        for text, _ in list(top)[:k]:
            m = match.get(text)
            hits += int(m is not None and m[1] in by_name[cls].support(m[0]))
        out[cls] = hits / k
    return out


def positive_precision_at_k(
    per_class_positive: Mapping[str, Sequence[tuple[str, float]]], space: FeatureSpace, spec: WorldSpec, k: int = 5
) -> dict[str, float]:
    """Class -> share of its (up to ``k``) positive-evidence clues whose world value the class can take.

    Only clues that speak *for* a class are judged (``Explained.per_class_positive``); a class with no such
    clue is left out (the caller reports how many were).
    """
    match = dict(zip(space.texts, matches(space), strict=True))
    by_name = {c.name: c for c in spec.classes}
    out = {}
    for cls, top in per_class_positive.items():
        top = list(top)[:k]
        if top:
            hits = [(m := match.get(t)) is not None and m[1] in by_name[cls].support(m[0]) for t, _ in top]
            out[cls] = float(np.mean(hits))
    return out


def positive_profile(
    per_class_positive: Mapping[str, Sequence[tuple[str, float]]], space: FeatureSpace, spec: WorldSpec, k: int = 5
) -> dict[str, float]:
    """Why positive precision@k is what it is: the same at 1 and 3, its ceiling, and by importance.

    ``per_class_positive`` holds each class's *whole* positive evidence, most important first. The ceiling
    is the precision@k of the best order of the same clues (true ones first): below 1 when a class has
    fewer than k true clues among its positive evidence, whatever the importances. ``weighted`` is the
    share of the top k's importance that true clues carry (a small-effect miss counts little).
    """
    match = dict(zip(space.texts, matches(space), strict=True))
    by_name = {c.name: c for c in spec.classes}
    rows: dict[str, list[float]] = {"at_1": [], "at_3": [], f"at_{k}": [], f"ceiling_at_{k}": [], "weighted": []}
    for cls, clues in per_class_positive.items():
        hits = [(m := match.get(t)) is not None and m[1] in by_name[cls].support(m[0]) for t, _ in clues]
        if not hits:
            continue
        for n in (1, 3, k):
            rows[f"at_{n}"].append(float(np.mean(hits[:n])))
        rows[f"ceiling_at_{k}"].append(min(sum(hits), k) / min(len(hits), k))
        imp = np.asarray([max(v, 0.0) for _, v in clues[:k]])
        rows["weighted"].append(float(imp[np.asarray(hits[:k])].sum() / imp.sum()) if imp.sum() > 0 else 0.0)
    return {name: float(np.mean(v)) for name, v in rows.items() if v}


ATTRIBUTE_FACETS: dict[str, tuple[str, ...]] = {
    "color": ("color", "colour", "hue"),
    "shape": ("shape", "form", "outline"),
    "pattern": ("pattern", "texture", "surface", "markings"),
    "size": ("size",),
}
"""World attribute -> words of a tree attribute that ask for it."""


def true_assignments(tree: ConceptTree, spec: WorldSpec) -> dict[str, dict[str, float | int]]:
    """Per world attribute: how many of the tree's (class, value) assignments for it are true of the class.

    An assignment belongs to the world attribute its tree attribute asks for ("skin color" -> color; the
    colour of a flesh/inside part -> inside, counted under color); it is true when the value, read as a
    world value of that attribute, is one the class can take. A value that states no world value of the
    attribute asked ("brown" for a shape, "amarak") is false.
    """
    by_name = {c.name: c for c in spec.classes}
    out: dict[str, dict[str, float | int]] = {}
    for v in tree.values:
        words = set(v.attribute.replace("-", " ").split())
        asked = next((w for w, names in ATTRIBUTE_FACETS.items() if words & set(names)), None)
        if asked is None:
            continue
        m = world_match(v.part, v.attribute, v.value)
        allowed = {"color", "inside"} if asked == "color" else {asked}
        for cls in v.classes:
            ok = m is not None and m[0] in allowed and m[1] in by_name[cls].support(m[0])
            row = out.setdefault(asked, {"assignments": 0, "true": 0})
            row["assignments"] = int(row["assignments"]) + 1
            row["true"] = int(row["true"]) + int(ok)
    for row in out.values():
        row["fraction"] = int(row["true"]) / max(int(row["assignments"]), 1)
    return out


TWIN_ATTRIBUTES = ("color", "shape", "pattern")


def twin_pairs(
    spec: WorldSpec, labels: Sequence[int], seed: int, folder: Path, *, per_class: int = 4
) -> list[tuple[str, str, str, str, str]]:
    """Render (original, twin) image pairs into ``folder``: (original path, twin path, attribute, old, new).

    Both pictures use the same generator, so position, lighting and background match; the new value is
    drawn from the vocabulary (another value the item can show).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 99])
    out = []
    seen: dict[int, int] = {}
    for label in labels:
        i = seen.get(int(label), 0)
        seen[int(label)] = i + 1
        if i >= per_class:
            continue
        attrs = spec.classes[int(label)].sample(image_rng(seed, "test", int(label), i))
        if attrs["cut"] == "halved":
            continue  # patterns hidden; keep the twins comparable
        for attribute in TWIN_ATTRIBUTES:
            choices = [
                v for v in VOCABULARY[attribute] if v != attrs[attribute] and compatible({**attrs, attribute: v})
            ]
            new = str(rng.choice(choices))
            paths = []
            for tag, a in (("a", attrs), ("b", {**attrs, attribute: new})):
                g = image_rng(seed, "test", int(label), i)
                spec.classes[int(label)].sample(g)  # advance the generator as the original rendering did
                path = folder / f"{label}-{i}-{attribute}-{tag}.png"
                render(a, g).save(path)
                paths.append(str(path))
            out.append((paths[0], paths[1], attribute, attrs[attribute], new))
    return out


def twin_score(
    space: FeatureSpace, before: np.ndarray, after: np.ndarray, pairs: Sequence[tuple[str, str, str, str, str]]
) -> dict[str, float | int]:
    """Share of (pair, matched clue) checks where the clue moved the right way, overall and per attribute."""
    match = matches(space)
    right: dict[str, list[bool]] = {}
    for r, (_, _, attribute, old, new) in enumerate(pairs):
        for j, m in enumerate(match):
            if m == (attribute, old):
                right.setdefault(attribute, []).append(bool(after[r, j] < before[r, j]))
            elif m == (attribute, new):
                right.setdefault(attribute, []).append(bool(after[r, j] > before[r, j]))
    every = [x for v in right.values() for x in v]
    out: dict[str, float | int] = {"checks": len(every), "right": float(np.mean(every)) if every else float("nan")}
    out.update({f"right_{a}": float(np.mean(v)) for a, v in right.items()})
    return out
