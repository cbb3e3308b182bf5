from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from visfeed.errors import ModelError
from visfeed.state.config import DEFAULT_MODEL
from visfeed.tools.embedding.builtin_models import create_default_model, register_builtin_models, shipped_checkpoint

_SCRIPT = r"""
import json, os, socket, sys
def _no_network(*a, **k):
    raise OSError("network access attempted while loading the default model")
socket.socket.connect = _no_network
socket.create_connection = _no_network

import numpy as np, open_clip, torch
from PIL import Image
from transformers import AutoModel, AutoTokenizer
from visfeed.state.config import DEFAULT_MODEL
from visfeed.tools.embedding.builtin_models import default_pretrained, minilm_dir, register_builtin_models, visfeed_cache_dir

register_builtin_models()
register_builtin_models()
model, _, preprocess = open_clip.create_model_and_transforms(DEFAULT_MODEL, pretrained=str(default_pretrained(visfeed_cache_dir(os.environ))))
tokenizer = open_clip.get_tokenizer(DEFAULT_MODEL)
model.eval()
texts = ["a photo of a lemon.", "a small red round fruit with a green stem", "Its skin is violet."]
imgs = torch.stack([preprocess(Image.new("RGB", (64, 64), c)) for c in ((200, 30, 30), (40, 60, 170))])
with torch.no_grad():
    t = model.encode_text(tokenizer(texts), normalize=True)
    i = model.encode_image(imgs, normalize=True)
    print("--- reference load ---", file=sys.stderr, flush=True)  # transformers may report below this line
    # reference: sentence-transformers style MiniLM (mean-pooled over the attention mask), then the shipped
    # text projection: the installed MiniLM is used as it is, frozen
    hf_tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    hf = AutoModel.from_pretrained(str(minilm_dir())).eval()
    enc = hf_tok(texts, padding=True, return_tensors="pt")
    h = hf(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize(model.text.proj((h * m).sum(1) / m.sum(1)), dim=-1)
print(json.dumps({
    "text_shape": list(t.shape), "image_shape": list(i.shape),
    "text_norms": t.norm(dim=-1).tolist(), "image_norms": i.norm(dim=-1).tolist(),
    "cos_to_minilm": (t * ref).sum(-1).tolist(), "image_cos": float(i[0] @ i[1]),
    "models": open_clip.list_models().count(DEFAULT_MODEL),
}))
"""


def test_shipped_checkpoint_is_small() -> None:
    assert shipped_checkpoint().stat().st_size <= 25 * 1024 * 1024


def test_register_is_idempotent() -> None:
    import open_clip

    register_builtin_models()
    register_builtin_models()
    assert open_clip.list_models().count(DEFAULT_MODEL) == 1
    cfg = open_clip.get_model_config(DEFAULT_MODEL)
    assert cfg["embed_dim"] == 64 and cfg["text_cfg"]["hf_proj_type"] == "linear"
    assert Path(cfg["text_cfg"]["hf_model_name"]).is_dir()


@pytest.mark.slow
def test_default_model_loads_offline_and_embeds(tmp_path: Path) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VISFEED_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loading = proc.stderr.split("--- reference load ---")[0]  # assembling + loading the default model
    assert "LOAD REPORT" not in loading and "initialized" not in loading and "Loading weights" not in loading, loading
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["text_shape"] == [3, 64] and out["image_shape"] == [2, 64]
    assert all(abs(n - 1) < 1e-4 for n in out["text_norms"] + out["image_norms"])
    assert all(c > 0.9999 for c in out["cos_to_minilm"]), out["cos_to_minilm"]
    assert out["image_cos"] < 0.999  # a red and a blue picture do not collapse to one vector
    assert out["models"] == 1


def test_default_model_is_created_quietly_with_the_minilm_weights(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    import logging

    from safetensors.torch import load_file

    from visfeed.tools.embedding.builtin_models import minilm_dir

    with caplog.at_level(logging.INFO):
        model = create_default_model()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    out, err = capfd.readouterr()
    assert "LOAD REPORT" not in out + err and "Loading weights" not in out + err
    assert not logging.getLogger().filters  # the notice filter is gone after creation
    word = load_file(minilm_dir() / "model.safetensors")["embeddings.word_embeddings.weight"]
    assert model.text.transformer.embeddings.word_embeddings.weight.equal(word)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda s: s.pop("encoder.layer.0.output.dense.bias"), "encoder.layer.0.output.dense.bias"),
        (lambda s: s.__setitem__("encoder.layer.9.extra", s["pooler.dense.bias"]), "encoder.layer.9.extra"),
    ],
)
def test_a_minilm_that_does_not_fit_fails_loudly(monkeypatch: pytest.MonkeyPatch, change: object, named: str) -> None:
    import safetensors.torch

    real = safetensors.torch.load_file

    def tampered(path: object) -> dict[str, object]:
        state = real(path)  # type: ignore[arg-type]
        change(state)  # type: ignore[operator]
        return state  # type: ignore[return-value]

    monkeypatch.setattr(safetensors.torch, "load_file", tampered)
    with pytest.raises(ModelError, match=named.replace(".", r"\.")):
        create_default_model()


def test_the_cache_folder_comes_from_the_environment_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """``VISFEED_CACHE_DIR`` counts only in the mapping the caller passes; the process's own is not read."""
    from visfeed.tools.embedding.builtin_models import visfeed_cache_dir

    monkeypatch.setenv("VISFEED_CACHE_DIR", "/somewhere/else")
    assert visfeed_cache_dir() == Path.home() / ".cache" / "visfeed"
    assert visfeed_cache_dir({"VISFEED_CACHE_DIR": "~/vc"}) == Path.home() / "vc"
    assert visfeed_cache_dir(os.environ) == Path("/somewhere/else")
