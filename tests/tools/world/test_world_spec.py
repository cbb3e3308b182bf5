from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from visfeed.errors import ConfigError
from visfeed.tools.world.spec import load_spec
from visfeed.tools.world.vocab import VOCABULARY


def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(body, encoding="utf-8")
    return p


def test_shipped_spec_has_the_issue_classes_and_distinct_pairs() -> None:
    spec = load_spec()
    assert len(spec.classnames) >= 24
    for name in ("lemon", "lime", "cherry", "tomato", "radish", "blueberry", "grape", "plum", "pumpkin", "broccoli"):
        assert name in spec.classnames
    n = len(spec.classes)
    for a in range(n):
        for b in range(a + 1, n):
            assert len(spec.distinct_attributes(a, b)) >= 2, (spec.classnames[a], spec.classnames[b])


def test_shipped_spec_keeps_real_overlaps() -> None:
    spec = load_spec()
    idx = {c: i for i, c in enumerate(spec.classnames)}
    # each group shares at least one attribute value pair-wise: the confusions the optimizer must resolve
    for group in (
        ("lemon", "lime", "green apple"),
        ("cherry", "tomato", "radish"),
        ("blueberry", "grape", "plum"),
        ("orange", "peach", "pumpkin"),
    ):
        for a in group:
            for b in group:
                if a < b:
                    assert len(spec.distinct_attributes(idx[a], idx[b])) < 7


def test_unknown_attribute_is_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "classes:\n  - {name: lemon, color: yellow, shape: oval, flavour: sour}\n")
    with pytest.raises(ConfigError, match=r"unknown attribute 'flavour'.*known attributes: color"):
        load_spec(p)


def test_unknown_value_lists_allowed_values(tmp_path: Path) -> None:
    p = _write(tmp_path, "classes:\n  - {name: lemon, color: teal, shape: oval}\n")
    with pytest.raises(ConfigError, match=r"color value 'teal' is not in the vocabulary; allowed: red"):
        load_spec(p)


def test_empty_class_is_rejected(tmp_path: Path) -> None:
    p = _write(tmp_path, "classes:\n  - {name: lemon}\n")
    with pytest.raises(ConfigError, match=r"class 'lemon' is empty"):
        load_spec(p)


def test_duplicate_class_is_rejected(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "classes:\n  - {name: Lemon, color: yellow, shape: oval}\n  - {name: lemon, color: green, shape: round}\n",
    )
    with pytest.raises(ConfigError, match=r"duplicate class 'lemon'"):
        load_spec(p)


def test_errors_name_the_file_and_bad_yaml_is_a_config_error(tmp_path: Path) -> None:
    p = _write(tmp_path, "classes: [\n")
    with pytest.raises(ConfigError, match=str(p)):
        load_spec(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")


def test_weights_lists_and_defaults(tmp_path: Path) -> None:
    p = _write(tmp_path, "name: tiny\nclasses:\n  - {name: a, color: [red, blue], shape: {round: 3, oval: 1}}\n")
    spec = load_spec(p)
    c = spec.classes[0]
    assert c.dist("color") == {"red": 0.5, "blue": 0.5}
    assert c.dist("shape") == {"round": 0.75, "oval": 0.25}
    assert c.dist("pattern") == {"smooth": 1.0}
    draws = [c.sample(np.random.default_rng(i)) for i in range(50)]
    assert all(set(d) == set(VOCABULARY) for d in draws)
    assert {d["color"] for d in draws} == {"red", "blue"}


def test_count_size_compatibility_is_checked(tmp_path: Path) -> None:
    p = _write(tmp_path, "classes:\n  - {name: a, color: red, shape: round, size: huge, count: cluster}\n")
    with pytest.raises(ConfigError, match="count 'cluster' needs a size"):
        load_spec(p)
