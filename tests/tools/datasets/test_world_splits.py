from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import pytest

from visfeed.tools.datasets.world import world_splits


def _spec(tmp_path: Path) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(
        "name: mini\nclasses:\n  - {name: lemon, color: yellow, shape: oval}\n"
        "  - {name: lime, color: green, shape: round, size: small}\n"
        "  - {name: cherry, color: red, shape: round, size: tiny, count: pair}\n",
        encoding="utf-8",
    )
    return p


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_splits_are_disjoint_deterministic_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISFEED_CACHE_DIR", str(tmp_path / "env-cache"))  # tools read no environment
    spec = _spec(tmp_path)
    split = partial(world_splits, cache_dir=tmp_path / "cache")
    a = split(spec, seed=3, k_shot=2, n_val=2, n_test=4)
    assert a.name == "mini" and a.classnames == ["lemon", "lime", "cherry"]
    assert len(a.feedback) == 6 and a.validation is not None and len(a.validation) == 6 and len(a.test) == 12
    assert sorted(set(a.test.labels)) == [0, 1, 2]
    groups = [a.feedback.paths, a.validation.paths, a.test.paths]
    contents = [{_digest(p) for p in g} for g in groups]
    assert sum(len(c) for c in contents) == 24  # no two images alike, within or across splits
    assert not (contents[0] & contents[1]) and not (contents[1] & contents[2]) and not (contents[0] & contents[2])
    mtime = Path(a.test.paths[0]).stat().st_mtime_ns
    b = split(spec, seed=3, k_shot=2, n_val=2, n_test=4)
    assert b == a and Path(b.test.paths[0]).stat().st_mtime_ns == mtime  # reused, not re-rendered
    # a fresh render elsewhere gives the same pixels
    c = split(spec, seed=3, k_shot=2, n_val=2, n_test=4, root=tmp_path / "other")
    assert [_digest(p) for p in c.test.paths] == [_digest(p) for p in a.test.paths]
    d = split(spec, seed=4, k_shot=2, n_val=2, n_test=4)
    assert {_digest(p) for p in d.test.paths}.isdisjoint({_digest(p) for p in a.test.paths})
    assert not list((tmp_path / "cache" / "world").glob(".*"))  # no temp folders left behind
    assert not (tmp_path / "env-cache").exists()


def test_the_registry_loads_the_world_like_any_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from visfeed.tools.datasets import WorldOptions, list_datasets, load_dataset_with_report

    monkeypatch.setenv("VISFEED_CACHE_DIR", str(tmp_path / "env-cache"))  # tools read no environment
    spec = _spec(tmp_path)
    options = WorldOptions(spec=spec, n_val=0, n_test=2, cache_dir=tmp_path / "cache")
    splits, report = load_dataset_with_report("World", None, k_shot=1, seed=5, world=options)
    assert splits == world_splits(spec, seed=5, k_shot=1, n_val=0, n_test=2, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "env-cache").exists()
    assert splits.validation is None
    assert report.dataset == "world" and report.sizes == {"feedback": 3, "validation": 0, "test": 6}
    assert "world" in {info.name for info in list_datasets()}
