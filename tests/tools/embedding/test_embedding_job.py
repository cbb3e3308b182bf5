"""``visfeed embed``: shards written locally and by Ray Data actors, read back memory-mapped by the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.support.required import missing_part
from tests.support.tiny_world import write_images, write_model

from visfeed.errors import CacheError
from visfeed.tools.embedding.cache import EmbeddingCache
from visfeed.tools.embedding.job import EmbedJob, embed_split
from visfeed.tools.embedding.shards import ShardReader, shard_folder, write_shard
from visfeed.tools.embedding.vlm import VLM, BackboneRef


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("embed")
    images = write_images(base / "images", per_class=7)
    paths = sorted(str(p) for p in images.rglob("*.png"))
    return {"base": base, "paths": paths, "backbone": write_model(base / "model")}


def job(world: dict[str, object], cache: Path) -> EmbedJob:
    return EmbedJob(backbone=str(world["backbone"]), device="cpu", cache=cache, batch_size=8)


def reference(world: dict[str, object], cache: Path) -> np.ndarray:
    """The same images embedded the ordinary way (into a separate SQLite cache)."""
    vlm = VLM(BackboneRef(str(world["backbone"])), EmbeddingCache(cache), device="cpu", num_workers=0)
    return vlm.embed_images(world["paths"])  # type: ignore[arg-type]


def test_local_shards_are_what_a_run_then_reads_memory_mapped(world: dict, tmp_path: Path) -> None:
    cache = tmp_path / "emb.sqlite"
    report = embed_split(job(world, cache), world["paths"], shard_size=8)
    assert report.images == report.embedded == 21 and report.already_cached == 0
    assert report.shards == 3 and report.images_per_s > 0
    assert 0 < report.busy_s <= report.wall_s and report.busy_images_per_s >= report.images_per_s
    # A run's VLM finds every image in the shards: nothing is embedded again, values equal a plain embedding.
    vlm = VLM(BackboneRef(world["backbone"]), EmbeddingCache(cache), device="cpu", num_workers=0)
    got = vlm.embed_images(world["paths"])
    assert vlm.stats.images_embedded == 0 and vlm.stats.images_cached == 21
    np.testing.assert_allclose(got, reference(world, tmp_path / "plain.sqlite"), atol=1e-5)
    rows = ShardReader(Path(report.folder)).get_many([vlm.image_namespace])  # an unknown key: absent
    assert rows == {}
    again = embed_split(job(world, cache), world["paths"], shard_size=8)
    assert again.embedded == 0 and again.already_cached == 21 and again.shards == 0


def test_rows_come_from_memory_mapped_files_and_unfinished_shards_are_ignored(tmp_path: Path) -> None:
    folder = shard_folder(tmp_path / "emb.sqlite", "image|m")
    vecs = np.eye(3, 4, dtype=np.float32)
    write_shard(folder, "image|m", ["a", "b", "c"], vecs)
    np.save(folder / "torn.npy", np.ones((2, 4), dtype=np.float32))  # a worker died before writing its keys
    reader = ShardReader(folder)
    rows = reader.get_many(["b", "zz"])
    assert list(rows) == ["b"] and isinstance(rows["b"], np.memmap)
    np.testing.assert_array_equal(rows["b"], vecs[1])
    assert len(reader) == 3
    (folder / "bad.keys").write_text("x\ny\n")
    (folder / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(CacheError, match="bad.npy"):
        ShardReader(folder).get_many(["x"])


def test_ray_data_actors_write_the_same_vectors(world: dict, tmp_path: Path) -> None:
    try:
        import ray
    except ImportError:
        missing_part("Ray is not installed: pip install 'visfeed[ray]' (make install does)")
    cache = tmp_path / "emb.sqlite"
    src = Path(__file__).resolve().parents[2] / "src"  # the code under test, wherever the package is installed
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(src)}}
    )
    try:
        report = embed_split(job(world, cache), world["paths"], shard_size=8, ray_workers=2)
    finally:
        ray.shutdown()
    assert report.embedded == 21 and report.shards == 3 and report.executor == "ray x2"
    assert 0 < report.busy_s <= report.wall_s
    assert len(list(Path(report.folder).glob("*.keys"))) == 3
    vlm = VLM(BackboneRef(world["backbone"]), EmbeddingCache(cache), device="cpu", num_workers=0)
    got = vlm.embed_images(world["paths"])
    assert vlm.stats.images_embedded == 0
    np.testing.assert_allclose(got, reference(world, tmp_path / "plain.sqlite"), atol=1e-5)
