"""Captions generated from attributes: the only text the image tower is ever trained against.

A caption mentions a random subset of attributes (its *constraints*); every image whose attributes agree
with all of them is a correct match, which is what the multi-positive loss counts. Wording varies (several
sentence shapes, synonyms, partial descriptions) so that free-form descriptions land near the right images.
Class names never appear. Words and sentence shapes kept for the paraphrase gate (see
:mod:`visfeed.tools.world.gates`) are never produced here; a test checks it.
"""

from __future__ import annotations

import numpy as np

from visfeed.tools.world.vocab import ATTRIBUTES, SIZE_OK_FOR_COUNT, VOCABULARY

COLOR_WORDS: dict[str, list[str]] = {
    "red": ["red", "bright red", "vivid red", "reddish", "scarlet", "ruby red"],
    "dark red": ["dark red", "very dark red", "wine-red", "burgundy", "blood-red", "dark reddish"],
    "pink": ["pink", "light pink", "bright pink", "pinkish", "rosy", "rose-colored"],
    "orange": ["orange", "bright orange", "orange-colored", "orangey", "tangerine-colored", "orangish"],
    "yellow": ["yellow", "bright yellow", "sunny yellow", "yellowish", "mustard yellow", "butter-yellow"],
    "pale yellow": ["pale yellow", "cream", "light yellow", "beige", "creamy", "off-white"],
    "light green": ["light green", "yellow-green", "soft green", "pastel green", "light greenish"],
    "green": ["green", "medium green", "leaf green", "greenish", "grass-green"],
    "dark green": ["dark green", "very dark green", "dark olive green", "forest green", "dark greenish"],
    "blue": ["blue", "dark blue", "navy blue", "bluish", "blue-black", "inky blue"],
    "purple": ["purple", "dark purple", "bright purple", "purplish", "lilac", "purple-colored"],
    "brown": ["brown", "dark brown", "light brown", "tan", "brownish", "chocolate brown"],
    "white": ["white", "pure white", "snow-white", "whitish", "milky white"],
}

SHAPE_WORDS: dict[str, list[str]] = {
    "round": ["round", "circular", "ball-like", "rounded", "globe-shaped", "roundish", "orb-like"],
    "oval": ["oval", "egg-shaped", "oval-shaped", "ovoid", "egg-like", "ovalish"],
    "long": ["long", "elongated", "cylindrical", "long and thin", "stick-like", "slender", "rod-shaped"],
    "curved": ["curved", "crescent-shaped", "curving", "hooked", "arched", "arc-shaped"],
    "heart": ["heart-shaped", "shaped like a heart", "like a heart", "heart-form"],
    "teardrop": [
        "teardrop-shaped",
        "bottom-heavy",
        "drop-shaped",
        "narrow at the top and wide at the bottom",
        "tear-shaped",
        "wider at the bottom",
    ],
    "cone": ["cone-shaped", "tapered", "pointed", "tapering to a point", "pointy", "spike-shaped"],
    "flat": ["flattened", "squat", "wide and flat", "flat and round", "flat", "wider than tall"],
    "floret": ["tree-shaped", "branching", "tree-like", "made of many florets", "clustered florets", "floret-covered"],
}

# pattern: (adjectives, noun phrases used after "with")
PATTERN_WORDS: dict[str, tuple[list[str], list[str]]] = {
    "smooth": (
        ["smooth", "glossy", "smooth-skinned", "sleek"],
        ["smooth skin", "a glossy surface", "a polished surface", "an even, smooth surface"],
    ),
    "stripes": (["striped", "banded"], ["stripes", "dark stripes", "striped skin", "long stripes", "lines", "bands"]),
    "spots": (["spotted", "dotted", "speckled", "freckled"], ["spots", "small spots", "dots", "speckles", "freckles"]),
    "seeds": (["seeded", "seedy", "seed-covered"], ["seeds", "tiny seeds", "seeds all over the skin", "dots of seeds"]),
    "dimples": (
        ["dimpled", "textured", "pitted", "pockmarked"],
        ["dimples", "dimpled skin", "a dimpled peel", "tiny dimples", "tiny pits"],
    ),
    "scales": (["scaly", "scale-covered"], ["scales", "a scaly pattern", "a diamond pattern", "diamond-shaped scales"]),
    "kernels": (["kernel-covered"], ["kernels", "rows of kernels", "neat rows of kernels", "packed kernels"]),
    "hairy": (["hairy", "furry", "shaggy"], ["hairy skin", "fine hairs", "fur", "a hairy coat", "fibres"]),
    "ribs": (["ribbed", "grooved", "lobed"], ["ribs", "vertical ribs", "segments", "deep grooves", "lobes"]),
    "bumpy": (["bumpy", "rough", "knobbly", "warty"], ["bumps", "a bumpy surface", "a rough surface", "knobs"]),
    "fuzzy": (["fuzzy", "soft", "downy"], ["fuzz", "soft fuzz", "fuzzy skin", "a downy coat"]),
}

TOP_WORDS: dict[str, list[str]] = {
    "none": ["no stem", "nothing on top", "no leaves"],
    "stem": ["a stem", "a short stem", "a brown stem", "a small stem on top", "a woody stem"],
    "leaf": ["a leaf", "a stem and a leaf", "a green leaf", "a small leaf on top", "a single leaf on a stem"],
    "cap": ["a green cap", "a leafy cap", "green sepals on top", "a green star on top", "a leafy green top"],
    "crown": [
        "a spiky crown",
        "a crown of spiky leaves",
        "spiky leaves on top",
        "a leafy crown",
        "pointed leaves on top",
    ],
    "greens": ["leafy greens on top", "long green leaves", "green tops", "leafy tops", "leaves sprouting from the top"],
    "husk": ["a green husk", "husk leaves", "wrapping green leaves", "a papery husk", "green leaves wrapped around"],
}

SIZE_WORDS: dict[str, list[str]] = {
    "tiny": ["tiny", "very small", "very tiny", "teeny"],
    "small": ["small", "smallish", "small-sized", "petite"],
    "medium": ["medium-sized", "medium", "mid-sized", "moderate-sized", "regular-sized"],
    "large": ["large", "fairly large", "sizable", "large-sized"],
    "huge": ["huge", "very large", "enormous", "massive", "oversized"],
}

COUNT_WORDS: dict[str, list[str]] = {
    "single": ["a single", "one", "a lone"],
    "pair": ["two", "a pair of"],
    "cluster": ["a cluster of", "a bunch of", "many"],
}

CUT_WORDS: dict[str, list[str]] = {"whole": ["whole"], "halved": ["cut in half", "halved", "sliced in half"]}
INSIDE_WORDS = ["{c} flesh", "{c} inside", "a {c} center"]
NOUNS = [
    ("fruit", "fruits"),
    ("vegetable", "vegetables"),
    ("thing", "things"),
    ("object", "objects"),
    ("item", "items"),
]
FRAMES = [
    "{}",
    "{}",
    "{}",
    "a photo of {}",
    "a picture of {}",
    "an image of {}",
    "a close-up of {}",
    "a drawing of {}",
    "there is {}",
    "this is {}",
    "the picture shows {}",
    "here we see {}",
    "{} on a table",
    "{} at the market",
    "a snapshot of {}",
]

SENTENCE_SHARE = 0.35  # captions worded as full sentences by :func:`_clauses`

PRIORS = {
    "color": 0.6,
    "shape": 0.6,
    "pattern": 0.6,
    "top": 0.5,
    "size": 0.5,
    "count": 0.25,
    "cut": 0.15,
    "inside": 0.0,
}


def _pick(rng: np.random.Generator, items: list[str]) -> str:
    return items[int(rng.integers(len(items)))]


def sample_constraints(rng: np.random.Generator) -> dict[str, str]:
    """A random partial attribute assignment (what one caption will say)."""
    out: dict[str, str] = {}
    while not out:
        for attr in ATTRIBUTES:
            if rng.random() < PRIORS[attr]:
                out[attr] = _pick(rng, list(VOCABULARY[attr]))
    if out.get("cut") == "halved":
        out.pop("pattern", None)  # the skin pattern is hidden by the cut
        if rng.random() < 0.6:
            out["inside"] = _pick(rng, list(VOCABULARY["inside"]))
    if "count" in out and "size" in out and out["size"] not in SIZE_OK_FOR_COUNT[out["count"]]:
        out["size"] = _pick(rng, list(SIZE_OK_FOR_COUNT[out["count"]]))
    return out


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


SUBJECTS = ["the {n}", "this {n}", "a {n}", "the {n} shown", "one {n}"]


def _clauses(cons: dict[str, str], rng: np.random.Generator) -> str:
    """Sentence-style wording: a subject and one clause per attribute ("the fruit has yellow skin, ...").

    A second family of sentence shapes, so a description's meaning, not one template, is what lands near
    the images; the paraphrase gate's shapes stay out (no "its", "it", "you", "typically", ...).
    """
    noun = NOUNS[int(rng.integers(len(NOUNS)))][0]
    clauses: list[str] = []
    if "color" in cons:
        c = _pick(rng, COLOR_WORDS[cons["color"]])
        clauses.append(
            _pick(rng, [f"has {c} skin", f"is {c}", f"is {c} in color", f"is colored {c}", f"is {c}-skinned"])
        )
    if "shape" in cons:
        sh = _pick(rng, SHAPE_WORDS[cons["shape"]])
        clauses.append(_pick(rng, [f"is {sh}", f"has a {sh} shape", f"looks {sh}"] if " " not in sh else [f"is {sh}"]))
    if "size" in cons:
        z = _pick(rng, SIZE_WORDS[cons["size"]])
        clauses.append(_pick(rng, [f"is {z}", f"is {z} in size"]))
    if "pattern" in cons:
        adj, nouns = PATTERN_WORDS[cons["pattern"]]
        clauses.append(
            _pick(rng, [f"has {_pick(rng, nouns)}", f"is covered in {_pick(rng, nouns)}", f"looks {_pick(rng, adj)}"])
        )
    if "top" in cons:
        top = _pick(rng, TOP_WORDS[cons["top"]])
        clauses.append(_pick(rng, [f"has {top}", f"is topped by {top.removesuffix(' on top')}"]))
    if "cut" in cons:
        clauses.append("is " + _pick(rng, CUT_WORDS[cons["cut"]]))
    if "inside" in cons:
        clauses.append(f"shows {_pick(rng, COLOR_WORDS[cons['inside']])} flesh inside")
    order = rng.permutation(len(clauses))
    clauses = [clauses[i] for i in order]
    subject = _pick(rng, SUBJECTS).format(n=noun)
    if len(clauses) > 2 and rng.random() < 0.4:  # two sentences
        text = f"{subject} {', '.join(clauses[:-1])}. the {noun} also {clauses[-1]}"
    else:
        body = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
        text = f"{subject} {body}"
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:] + "."
    return text


def caption(cons: dict[str, str], rng: np.random.Generator) -> str:
    """Word one caption for a set of constraints; wording is drawn from ``rng``."""
    if "count" not in cons and rng.random() < SENTENCE_SHARE:
        return _clauses(cons, rng)
    adjs: list[str] = []
    withs: list[str] = []
    if "size" in cons:
        adjs.append(_pick(rng, SIZE_WORDS[cons["size"]]))
    if "color" in cons:
        adjs.append(_pick(rng, COLOR_WORDS[cons["color"]]))
    if "shape" in cons:
        adjs.append(_pick(rng, SHAPE_WORDS[cons["shape"]]))
    if "pattern" in cons:
        adj, nouns = PATTERN_WORDS[cons["pattern"]]
        if rng.random() < 0.5:
            adjs.append(_pick(rng, adj))
        else:
            noun = _pick(rng, nouns)
            if cons["pattern"] == "seeds" and "color" in cons and rng.random() < 0.5:
                dark = cons["color"] in ("red", "dark red", "purple", "blue", "dark green", "brown", "green", "pink")
                noun = ("yellow " if dark else "black ") + noun.replace("tiny ", "")
            withs.append(noun)
    if "top" in cons:
        withs.append(_pick(rng, TOP_WORDS[cons["top"]]))
    if "inside" in cons:
        withs.append(_pick(rng, INSIDE_WORDS).format(c=_pick(rng, COLOR_WORDS[cons["inside"]])))
    if len(adjs) > 2 and rng.random() < 0.3:
        rng.shuffle(adjs)
    cut = _pick(rng, CUT_WORDS[cons["cut"]]) if "cut" in cons else ""
    count = cons.get("count")
    plural = count in ("pair", "cluster")
    noun = NOUNS[int(rng.integers(len(NOUNS)))][1 if plural else 0] if rng.random() < 0.85 or plural else ""
    with_txt = ""
    if withs:
        with_txt = " with " + (withs[0] if len(withs) == 1 else ", ".join(withs[:-1]) + " and " + withs[-1])
    shape = int(rng.integers(4))
    if shape == 0 and adjs and not count and not cut:
        # bare adjective list: "red, round and striped"
        text = adjs[0] if len(adjs) == 1 else ", ".join(adjs[:-1]) + " and " + adjs[-1]
        return text + with_txt
    if shape == 1 and adjs and not plural:
        # "a fruit that is red and round"
        n = noun or "thing"
        head = _pick(rng, COUNT_WORDS["single"]) if count == "single" else _article(n)
        body = adjs[0] if len(adjs) == 1 else ", ".join(adjs[:-1]) + " and " + adjs[-1]
        text = f"{head} {n} that is {body}"
        if cut:
            text += f", {cut}"
        return text + with_txt
    words = " ".join([*adjs, noun]).strip() or "thing"
    if count:
        det = _pick(rng, COUNT_WORDS[count])
        phrase = f"{det} {words}"
    else:
        phrase = f"{_article(words)} {words}" if rng.random() < 0.8 else ("something " + " ".join(adjs)).strip()
    if cut:
        phrase = f"{phrase}, {cut}" if rng.random() < 0.5 else f"{phrase} {cut}"
    return _pick(rng, FRAMES).format(phrase + with_txt)


def caption_pool(n: int, seed: int) -> tuple[list[str], list[dict[str, str]]]:
    """``n`` distinct captions with their constraints, deterministic for a seed."""
    rng = np.random.default_rng([seed, 7])
    texts: list[str] = []
    cons_list: list[dict[str, str]] = []
    seen: set[str] = set()
    tries = 0
    while len(texts) < n and tries < n * 20:
        tries += 1
        cons = sample_constraints(rng)
        text = caption(cons, rng)
        if text in seen:
            continue
        seen.add(text)
        texts.append(text)
        cons_list.append(cons)
    return texts, cons_list


def constraint_codes(cons_list: list[dict[str, str]]) -> np.ndarray:
    """``(n, n_attributes)`` int array: value index per mentioned attribute, -1 where unconstrained."""
    out = np.full((len(cons_list), len(ATTRIBUTES)), -1, dtype=np.int64)
    for i, cons in enumerate(cons_list):
        for j, attr in enumerate(ATTRIBUTES):
            if attr in cons:
                out[i, j] = VOCABULARY[attr].index(cons[attr])
    return out


def complete(cons: dict[str, str], rng: np.random.Generator, p_halved: float = 0.2) -> dict[str, str]:
    """A full attribute assignment agreeing with ``cons``; the rest uniform at random."""
    out = dict(cons)
    if "cut" not in out:
        out["cut"] = "whole" if "pattern" in out or rng.random() >= p_halved else "halved"
        if "inside" in out:
            out["cut"] = "halved"
    for attr in ("color", "shape", "pattern", "top", "count", "inside"):
        if attr not in out:
            out[attr] = _pick(rng, list(VOCABULARY[attr]))
    if "size" not in out:
        out["size"] = _pick(rng, list(SIZE_OK_FOR_COUNT[out["count"]]))
    elif out["size"] not in SIZE_OK_FOR_COUNT[out["count"]]:
        out["count"] = "single"
    return out


def image_codes(attrs: dict[str, str]) -> np.ndarray:
    """Value index per attribute of a rendered image; -2 for what the picture hides (never matches)."""
    out = np.array([VOCABULARY[a].index(attrs[a]) for a in ATTRIBUTES], dtype=np.int64)
    if attrs["cut"] == "halved":
        out[ATTRIBUTES.index("pattern")] = -2
    else:
        out[ATTRIBUTES.index("inside")] = -2
    return out


_TWIN_WEIGHTS = {"color": 0.5, "shape": 1.0, "pattern": 1.0, "top": 1.0, "size": 1.0, "count": 0.5}


def twin(attrs: dict[str, str], cons: dict[str, str], rng: np.random.Generator) -> dict[str, str]:
    """``attrs`` with one attribute the caption mentions changed: a hard negative for that caption.

    Colour is the easiest cue, so the other attributes are preferred; when the caption mentions nothing
    that can change (only the cut), the colour changes and the twin is simply another picture.
    """
    keys = [a for a in _TWIN_WEIGHTS if a in cons] or ["color"]
    w = np.asarray([_TWIN_WEIGHTS[a] for a in keys])
    attr = keys[int(rng.choice(len(keys), p=w / w.sum()))]
    out = dict(attrs)
    choices = [v for v in VOCABULARY[attr] if v != attrs[attr]]
    if attr == "size":
        choices = [v for v in choices if v in SIZE_OK_FOR_COUNT[attrs["count"]]]
    elif attr == "count":
        choices = [v for v in choices if attrs["size"] in SIZE_OK_FOR_COUNT[v]]
    if not choices:
        attr, choices = "color", [v for v in VOCABULARY["color"] if v != attrs["color"]]
    out[attr] = _pick(rng, choices)
    return out
