"""Quality gates of the market world and its model: description sets and the scoring that judges them.

The gate texts are written here, by hand, from the class specs (``FACTS``), and are the data of
``benchmarks/world_gates.py``. The paraphrase gate uses the ``HELD_OUT_*`` synonyms and the held-out
sentence shapes of :func:`paraphrases`, which the caption generator never produces (a test checks it).
Scoring is description ensembling: class score = mean over the class's descriptions of cos(image, text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# Salient facts of each shipped class, written from market.yaml (most likely values).
FACTS: dict[str, dict[str, str]] = {
    "lemon": {"color": "yellow", "shape": "oval", "pattern": "dimples", "size": "medium", "noun": "fruit"},
    "lime": {"color": "green", "shape": "round", "pattern": "dimples", "size": "small", "noun": "fruit"},
    "orange": {"color": "orange", "shape": "round", "pattern": "dimples", "size": "medium", "noun": "fruit"},
    "banana": {"color": "yellow", "shape": "curved", "top": "stem", "size": "large", "noun": "fruit"},
    "strawberry": {
        "color": "red",
        "shape": "heart",
        "pattern": "seeds",
        "top": "cap",
        "size": "small",
        "noun": "fruit",
    },
    "cherry": {"color": "dark red", "shape": "round", "top": "stem", "size": "tiny", "count": "pair", "noun": "fruit"},
    "tomato": {
        "color": "red",
        "shape": "flat",
        "pattern": "smooth",
        "top": "cap",
        "size": "medium",
        "noun": "vegetable",
    },
    "radish": {"color": "red", "shape": "round", "top": "greens", "size": "small", "noun": "vegetable"},
    "red apple": {
        "color": "red",
        "shape": "round",
        "pattern": "stripes",
        "top": "stem",
        "size": "medium",
        "noun": "fruit",
    },
    "green apple": {
        "color": "light green",
        "shape": "round",
        "pattern": "spots",
        "top": "stem",
        "size": "medium",
        "noun": "fruit",
    },
    "pear": {"color": "light green", "shape": "teardrop", "top": "stem", "size": "medium", "noun": "fruit"},
    "peach": {
        "color": "orange",
        "shape": "round",
        "pattern": "fuzzy",
        "top": "leaf",
        "size": "medium",
        "noun": "fruit",
    },
    "plum": {"color": "purple", "shape": "oval", "pattern": "smooth", "size": "small", "noun": "fruit"},
    "blueberry": {"color": "blue", "shape": "round", "size": "tiny", "count": "cluster", "noun": "fruit"},
    "grape": {"color": "purple", "shape": "oval", "top": "stem", "size": "tiny", "count": "cluster", "noun": "fruit"},
    "eggplant": {"color": "purple", "shape": "long", "top": "cap", "size": "large", "noun": "vegetable"},
    "carrot": {"color": "orange", "shape": "cone", "top": "greens", "size": "large", "noun": "vegetable"},
    "pumpkin": {
        "color": "orange",
        "shape": "flat",
        "pattern": "ribs",
        "top": "stem",
        "size": "huge",
        "noun": "vegetable",
    },
    "corn": {
        "color": "yellow",
        "shape": "long",
        "pattern": "kernels",
        "top": "husk",
        "size": "large",
        "noun": "vegetable",
    },
    "cucumber": {"color": "dark green", "shape": "long", "pattern": "stripes", "size": "large", "noun": "vegetable"},
    "avocado": {
        "color": "dark green",
        "shape": "teardrop",
        "pattern": "bumpy",
        "size": "medium",
        "inside": "light green",
        "noun": "fruit",
    },
    "kiwi": {
        "color": "brown",
        "shape": "oval",
        "pattern": "hairy",
        "size": "small",
        "inside": "green",
        "noun": "fruit",
    },
    "coconut": {"color": "brown", "shape": "round", "pattern": "hairy", "size": "large", "noun": "fruit"},
    "watermelon": {
        "color": "green",
        "shape": "oval",
        "pattern": "stripes",
        "size": "huge",
        "inside": "red",
        "noun": "fruit",
    },
    "pineapple": {
        "color": "yellow",
        "shape": "oval",
        "pattern": "scales",
        "top": "crown",
        "size": "large",
        "noun": "fruit",
    },
    "broccoli": {"color": "green", "shape": "floret", "pattern": "bumpy", "size": "medium", "noun": "vegetable"},
}

# Other skin colours a class often shows (market.yaml gives them substantial weight): the hand-written
# description sets mention them too, as a careful writer would.
ALT_COLORS: dict[str, list[str]] = {
    "lime": ["light green"],
    "cherry": ["red"],
    "radish": ["pink"],
    "red apple": ["dark red"],
    "green apple": ["green"],
    "pear": ["yellow"],
    "peach": ["pink"],
    "plum": ["dark red"],
    "grape": ["light green"],
    "corn": ["pale yellow"],
    "cucumber": ["green"],
    "avocado": ["brown"],
    "watermelon": ["dark green"],
    "pineapple": ["orange", "brown"],
    "broccoli": ["dark green"],
}

# Ordinary wording (the vocabulary the generator also uses).
_SHAPE = {
    "round": "round",
    "oval": "oval",
    "long": "long",
    "curved": "curved",
    "heart": "heart-shaped",
    "teardrop": "teardrop-shaped",
    "cone": "cone-shaped",
    "flat": "flattened",
    "floret": "tree-shaped",
}
_PATTERN = {
    "smooth": "smooth skin",
    "stripes": "stripes",
    "spots": "small spots",
    "seeds": "tiny seeds",
    "dimples": "dimpled skin",
    "scales": "a scaly pattern",
    "kernels": "rows of kernels",
    "hairy": "hairy skin",
    "ribs": "vertical ribs",
    "bumpy": "a bumpy surface",
    "fuzzy": "soft fuzz",
}
_TOP = {
    "stem": "a short stem",
    "leaf": "a stem and a leaf",
    "cap": "a green leafy cap",
    "crown": "a spiky crown",
    "greens": "long green leaves on top",
    "husk": "a green husk",
}
_SIZE = {"tiny": "tiny", "small": "small", "medium": "medium-sized", "large": "large", "huge": "huge"}
_COUNT = {"pair": "two", "cluster": "a bunch of"}

# Held-out synonyms: common words the caption generator never uses. Colours without a common synonym keep
# their plain name (the sentence shapes are still held out).
HELD_OUT_COLOR = {
    "red": "red",
    "dark red": "deep red",
    "pink": "pink",
    "orange": "orange",
    "yellow": "golden",
    "pale yellow": "pale yellow",
    "light green": "pale green",
    "green": "green",
    "dark green": "deep green",
    "blue": "blue",
    "purple": "violet",
    "brown": "brown",
    "white": "white",
}
HELD_OUT_SHAPE = {
    "round": "spherical",
    "oval": "elliptical",
    "long": "oblong",
    "curved": "bent",
    "heart": "heart-like",
    "teardrop": "bell-shaped",
    "cone": "conical",
    "flat": "squashed",
    "floret": "bushy",
}
HELD_OUT_PATTERN = {
    "smooth": "a shiny peel",
    "stripes": "streaks",
    "spots": "flecks",
    "seeds": "pips",
    "dimples": "pores",
    "scales": "a criss-cross pattern",
    "kernels": "rows of grains",
    "hairy": "bristles",
    "ribs": "ridges",
    "bumpy": "lumps",
    "fuzzy": "velvety skin",
}
HELD_OUT_TOP = {
    "stem": "a stalk",
    "leaf": "a stalk and a leaflet",
    "cap": "a little green collar",
    "crown": "a spiky tuft",
    "greens": "feathery foliage",
    "husk": "a sheath of leaves",
}
HELD_OUT_SIZE = {"tiny": "miniature", "small": "little", "medium": "average-sized", "large": "big", "huge": "giant"}
HELD_OUT_COUNT = {"pair": "a couple of them", "cluster": "a group of them"}
# Rare or poetic colour words, reported for information only (the frozen text tower limits them).
RARE_COLOR = {
    "red": "crimson",
    "dark red": "maroon",
    "pink": "salmon",
    "orange": "amber",
    "yellow": "canary",
    "pale yellow": "ecru",
    "light green": "chartreuse",
    "green": "emerald",
    "dark green": "bottle green",
    "blue": "indigo",
    "purple": "mauve",
    "brown": "russet",
    "white": "ivory",
}
# Words that mark the held-out sentence shapes; the generator never writes them.
HELD_OUT_SHAPE_WORDS = ("its", "it", "you", "typically", "notice", "usually")

NAME_TEMPLATE = "a photo of a {}."


def _color_word(color: str) -> str:
    return color


def _a(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def oracle(facts: dict[str, str], color: str | None = None, alts: Sequence[str] = ()) -> list[str]:
    """Correct descriptions of one class; ``color`` replaces every colour mention (swap gates)."""
    c = color or facts["color"]
    n = facts["noun"]
    out = [f"{_a(c)} {c} {_SHAPE[facts['shape']]} {n}"]
    if "pattern" in facts:
        out.append(f"{c} with {_PATTERN[facts['pattern']]}")
    if "top" in facts:
        out.append(f"a {_SIZE[facts['size']]} {c} {n} with {_TOP[facts['top']]}")
    else:
        out.append(f"a {_SIZE[facts['size']]} {c} {n}")
    if "count" in facts:
        out.append(f"{_COUNT[facts['count']]} {_SIZE[facts['size']]} {c} {n}s")
    if "inside" in facts:
        out.append(f"{_a(c)} {c} {n} cut in half with {facts['inside']} flesh")
    for alt in alts:
        out.append(f"{_a(color or alt)} {color or alt} {_SHAPE[facts['shape']]} {n}")
    return out


def paraphrases(facts: dict[str, str], colors: dict[str, str] | None = None, alts: Sequence[str] = ()) -> list[str]:
    """The same facts in held-out sentence shapes and synonyms (``colors`` maps colour -> word)."""
    words = colors or HELD_OUT_COLOR
    cw = words[facts["color"]]
    out = [f"Its skin is {cw} and it is {HELD_OUT_SHAPE[facts['shape']]}."]
    if "pattern" in facts:
        out.append(f"You will notice {HELD_OUT_PATTERN[facts['pattern']]} on its {cw} skin.")
    if "top" in facts:
        out.append(f"Typically {HELD_OUT_SIZE[facts['size']]} and {cw}, it has {HELD_OUT_TOP[facts['top']]}.")
    else:
        out.append(f"Typically {HELD_OUT_SIZE[facts['size']]} and {cw}.")
    if "count" in facts:
        out.append(f"Usually you see {HELD_OUT_COUNT[facts['count']]}, each one {cw}.")
    if "inside" in facts:
        out.append(f"When split open, its {cw} skin reveals {HELD_OUT_COLOR[facts['inside']]} flesh.")
    for alt in alts:
        out.append(f"Its skin can also be {words[alt]}, and it is {HELD_OUT_SHAPE[facts['shape']]}.")
    return out


def _swap_partner(classnames: Sequence[str], i: int) -> int:
    """Next class (cyclically) whose main colour is none of this class's colours: the swapped-in colour."""
    n = len(classnames)
    own = {FACTS[classnames[i]]["color"], *ALT_COLORS.get(classnames[i], [])}
    for k in range(1, n):
        j = (i + k) % n
        if FACTS[classnames[j]]["color"] not in own:
            return j
    raise ValueError("all classes share one colour")


Encoder = Callable[[list[str]], np.ndarray]


def _centroids(encode: Encoder, sets: list[list[str]]) -> np.ndarray:
    flat = [t for s in sets for t in s]
    emb = encode(flat)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    out, k = [], 0
    for s in sets:
        out.append(emb[k : k + len(s)].mean(0))
        k += len(s)
    return np.stack(out)


def _acc(images: np.ndarray, labels: np.ndarray, cents: np.ndarray) -> float:
    return float(100.0 * np.mean((images @ cents.T).argmax(1) == labels))


def paraphrase_acc(images: np.ndarray, labels: np.ndarray, classnames: Sequence[str], encode: Encoder) -> float:
    """The paraphrase gate (percent), with the held-out wording tables as they are when called.

    ``images`` are normalised embeddings; the ceiling study swaps the tables to find which family costs most.
    """
    sets = [paraphrases(FACTS[c], alts=ALT_COLORS.get(c, [])) for c in classnames]
    return _acc(images, labels, _centroids(encode, sets))


def evaluate(images: np.ndarray, labels: np.ndarray, classnames: Sequence[str], encode: Encoder) -> dict[str, float]:
    """All gate figures (percent) from normalised image embeddings of the test split.

    ``encode`` maps texts to embeddings with the model's text tower. Classes must all be in ``FACTS``.
    """
    missing = [c for c in classnames if c not in FACTS]
    if missing:
        raise ValueError(f"no gate descriptions for classes {missing}; the gates are defined for the market world")
    images = images / np.linalg.norm(images, axis=1, keepdims=True)
    labels = np.asarray(labels)
    facts = [FACTS[c] for c in classnames]
    alts = [ALT_COLORS.get(c, []) for c in classnames]
    names = _centroids(encode, [[NAME_TEMPLATE.format(c)] for c in classnames])
    good = _centroids(encode, [oracle(f, alts=a) for f, a in zip(facts, alts, strict=True)])
    named = _centroids(
        encode,
        [[f"{c}, which is {d}" for d in oracle(f, alts=a)] for c, f, a in zip(classnames, facts, alts, strict=True)],
    )
    rare = _centroids(encode, [paraphrases(f, RARE_COLOR, alts=a) for f, a in zip(facts, alts, strict=True)])
    partners = [_swap_partner(classnames, i) for i in range(len(classnames))]
    wrong = _centroids(encode, [oracle(facts[i], facts[partners[i]]["color"], alts=alts[i]) for i in range(len(facts))])
    # binding: each class's description set against the same set with another class's colour
    colors = sorted({f["color"] for f in facts})
    wins = np.zeros(len(images))
    for ci, f in enumerate(facts):
        idx = labels == ci
        if not idx.any():
            continue
        own = {f["color"], *alts[ci]}
        swaps = [c for c in colors if c not in own]
        cents = _centroids(encode, [oracle(f, alts=alts[ci])] + [oracle(f, c, alts=alts[ci]) for c in swaps])
        s = images[idx] @ cents.T
        wins[idx] = (s[:, :1] > s[:, 1:]).mean(1)
    return {
        "names_acc": _acc(images, labels, names),
        "oracle_acc": _acc(images, labels, good),
        "oracle_named_acc": _acc(images, labels, named),
        "paraphrase_acc": paraphrase_acc(images, labels, classnames, encode),
        "rare_paraphrase_acc": _acc(images, labels, rare),
        "wrong_acc": _acc(images, labels, wrong),
        "binding_acc": float(100.0 * wins.mean()),
    }


def passes(metrics: dict[str, float]) -> dict[str, bool]:
    """Each gate of the issue, pass or fail."""
    return {
        "names_at_most_40": metrics["names_acc"] <= 40.0,
        "oracle_at_least_85": metrics["oracle_acc"] >= 85.0,
        "paraphrase_at_least_55": metrics["paraphrase_acc"] >= 55.0,  # restated by issue 13 (ceiling 66.4, MLP head)
        "wrong_30_below_oracle": metrics["oracle_acc"] - metrics["wrong_acc"] >= 30.0,
        "binding_at_least_85": metrics["binding_acc"] >= 85.0,
    }
