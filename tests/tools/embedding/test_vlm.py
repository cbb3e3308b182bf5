from pathlib import Path

import numpy as np
import pytest

from visfeed.errors import DataError, EmbeddingError, ModelError
from visfeed.tools.embedding.cache import EmbeddingCache
from visfeed.tools.embedding.vlm import VLM, BackboneRef

TINY = "visfeed-test-tiny"


def _vlm(ckpt: Path, cache_path: Path) -> VLM:
    return VLM(BackboneRef(TINY, str(ckpt)), EmbeddingCache(cache_path), device="cpu", batch_size=4)


def test_local_checkpoint_embeds_normalized_and_caches_across_runs(
    tiny_checkpoint: Path, image_files: list[str], tmp_path: Path
) -> None:
    cache = tmp_path / "emb.sqlite"
    first = _vlm(tiny_checkpoint, cache)
    texts = ["a red round fruit", "a long yellow fruit", "a red round fruit"]
    t1 = first.embed_texts(texts)
    i1 = first.embed_images(image_files)
    assert t1.shape == (3, 32) and i1.shape == (12, 32)
    np.testing.assert_allclose(np.linalg.norm(t1, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(i1, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(t1[0], t1[2])
    assert first.stats.texts_embedded == 2  # the duplicate text ran once
    assert first.stats.images_embedded == 11  # img11 has img0's content

    second = _vlm(tiny_checkpoint, cache)  # a new process would see the same file
    t2 = second.embed_texts(texts)
    i2 = second.embed_images(image_files)
    assert second.stats.texts_embedded == 0 and second.stats.images_embedded == 0
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(i1, i2)
    assert first.identity == second.identity and "file:" in first.identity


def test_cached_vectors_match_a_fresh_forward_pass(
    tiny_checkpoint: Path, image_files: list[str], tmp_path: Path
) -> None:
    cached = _vlm(tiny_checkpoint, tmp_path / "a.sqlite")
    cached.embed_images(image_files[:3])
    fresh = _vlm(tiny_checkpoint, tmp_path / "b.sqlite")
    np.testing.assert_allclose(cached.embed_images(image_files[:3]), fresh.embed_images(image_files[:3]), atol=1e-6)


def test_bad_backbones_and_inputs_give_clear_errors(tiny_checkpoint: Path, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    with pytest.raises(ModelError, match="unknown model 'no-such-model'"):
        VLM(BackboneRef("no-such-model"), cache, device="cpu")
    with pytest.raises(ModelError, match="neither a known tag .* nor an existing checkpoint file"):
        VLM(BackboneRef(TINY, str(tmp_path / "missing.pt")), cache, device="cpu")
    with pytest.raises(ModelError, match="not in the local cache and downloads are off"):
        VLM(BackboneRef("ViT-B-32", "openai", cache_dir=str(tmp_path / "hub")), cache, device="cpu")
    vlm = _vlm(tiny_checkpoint, tmp_path / "d.sqlite")
    with pytest.raises(EmbeddingError, match="no texts"):
        vlm.embed_texts([])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.png"):
        vlm.embed_images([str(bad)])
    assert cache.count() == 0 and vlm.cache.count() == 0
