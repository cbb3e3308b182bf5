from __future__ import annotations

import re

import numpy as np

from visfeed.tools.world import gates
from visfeed.tools.world.captions import caption_pool, complete, constraint_codes, image_codes, twin
from visfeed.tools.world.spec import load_spec


def test_pool_is_deterministic_and_never_names_a_class() -> None:
    texts, cons = caption_pool(3000, seed=1)
    assert (texts, cons) == caption_pool(3000, seed=1)
    assert len(set(texts)) == len(texts) == 3000
    # "orange" is also a colour word; every other class name must never appear
    names = [n for n in load_spec().classnames if n != "orange"]
    blob = "\n".join(texts).lower()
    for n in names:
        assert not re.search(rf"\b{re.escape(n)}s?\b", blob), n


def test_held_out_wording_never_appears_in_training_captions() -> None:
    texts, _ = caption_pool(20000, seed=0)
    blob = "\n".join(texts).lower()
    held = [
        *[w for c, w in gates.HELD_OUT_COLOR.items() if w != c],
        *gates.HELD_OUT_SHAPE.values(),
        *gates.HELD_OUT_PATTERN.values(),
        *gates.HELD_OUT_TOP.values(),
        *gates.HELD_OUT_SIZE.values(),
        *gates.RARE_COLOR.values(),
    ]
    for phrase in held:
        assert not re.search(rf"\b{re.escape(phrase)}\b", blob), phrase
    words = set(re.findall(r"[a-z-]+", blob))
    assert not words & set(gates.HELD_OUT_SHAPE_WORDS)


def test_completed_images_satisfy_their_caption() -> None:
    _, cons = caption_pool(500, seed=2)
    codes = constraint_codes(cons)
    rng = np.random.default_rng(0)
    for c, code in zip(cons, codes, strict=True):
        img = image_codes(complete(c, rng))
        assert np.all((code == -1) | (code == img))


def test_twins_break_their_caption_by_one_attribute() -> None:
    _, cons = caption_pool(400, seed=3)
    codes = constraint_codes(cons)
    rng = np.random.default_rng(1)
    broken = 0
    for c, code in zip(cons, codes, strict=True):
        attrs = complete(c, rng)
        other = twin(attrs, c, rng)
        assert sum(attrs[k] != other[k] for k in attrs) == 1
        fits = bool(np.all((code == -1) | (code == image_codes(other))))
        broken += not fits
    assert broken >= 0.9 * len(cons)  # only captions that mention nothing changeable keep fitting
