"""The gates' ceiling for a caption design: what a tower with *perfect vision* would score.

The image tower is replaced by a small network reading the true attributes of each picture (one-hot), and
trained exactly like the real tower (same caption pool, text projection on the frozen MiniLM, multi-positive
loss, logit-scale limits). Whatever it cannot reach, no image tower can: the limit then lies in the captions
or the text tower. It runs in minutes instead of the half hour of a real training, so caption and text-side
designs can be compared before paying for one, and it splits the paraphrase gate's loss between held-out
sentence shapes and each family of held-out synonyms.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from visfeed.tools.world import gates
from visfeed.tools.world.captions import caption_pool, complete, constraint_codes, image_codes
from visfeed.tools.world.spec import load_spec
from visfeed.tools.world.train import build_model, caption_features, multi_positive_loss, pooled_texts, positives
from visfeed.tools.world.vocab import ATTRIBUTES, VOCABULARY

# Gate wording with the training words put back, per held-out family (the sentence shapes stay held out).
TRAINING_WORDS: dict[str, dict[str, str]] = {
    "HELD_OUT_COLOR": {c: c for c in gates.HELD_OUT_COLOR},
    "HELD_OUT_SHAPE": dict(gates._SHAPE),
    "HELD_OUT_PATTERN": dict(gates._PATTERN),
    "HELD_OUT_TOP": dict(gates._TOP),
    "HELD_OUT_SIZE": dict(gates._SIZE),
    "HELD_OUT_COUNT": {"pair": "two of them", "cluster": "a bunch of them"},
}


def onehot(codes: torch.Tensor) -> torch.Tensor:
    """Attribute codes ``(n, attributes)`` -> concatenated one-hot; hidden attributes (< 0) stay all zero."""
    sizes = [len(VOCABULARY[a]) for a in ATTRIBUTES]
    out = torch.zeros(len(codes), sum(sizes))
    offset = 0
    for j, size in enumerate(sizes):
        rows = torch.nonzero(codes[:, j] >= 0).squeeze(1)
        out[rows, offset + codes[rows, j]] = 1.0
        offset += size
    return out


@contextmanager
def _wording(**families: dict[str, str]) -> Iterator[None]:
    """Temporarily replace held-out wording tables of :mod:`gates`."""
    saved = {name: getattr(gates, name) for name in families}
    try:
        for name, table in families.items():
            setattr(gates, name, table)
        yield
    finally:
        for name, table in saved.items():
            setattr(gates, name, table)


def ceiling(
    *,
    pool_size: int = 32_000,
    steps: int = 3_000,
    batch_size: int = 256,
    seed: int = 0,
    per_class: int = 50,
    text_head: str | None = None,
    embed_dim: int | None = None,
) -> dict[str, Any]:
    """Gate figures of a perfect-vision tower, plus the paraphrase gate with each synonym family restored.

    ``text_head``/``embed_dim`` try another text projection than the shipped config's.
    """
    torch.manual_seed(seed)
    model, tokenizer = build_model(torch.device("cpu"), text_head=text_head, embed_dim=embed_dim)
    model.eval()
    texts, cons = caption_pool(pool_size, seed)
    feats = torch.from_numpy(caption_features(model, tokenizer, texts))
    cap_codes = torch.from_numpy(constraint_codes(cons))
    width = onehot(torch.zeros(1, len(ATTRIBUTES), dtype=torch.long)).shape[1]
    dim = model.text.output_dim
    net = torch.nn.Sequential(torch.nn.Linear(width, 512), torch.nn.GELU(), torch.nn.Linear(512, dim))
    proj = model.text.proj
    scale = torch.nn.Parameter(torch.tensor(np.log(20.0), dtype=torch.float32))
    opt = torch.optim.AdamW([*net.parameters(), *proj.parameters(), scale], lr=2e-3, weight_decay=0.05)
    rng = np.random.default_rng([seed, 13])
    for _ in range(steps):
        idx = rng.integers(0, len(cons), batch_size)
        codes = torch.from_numpy(np.stack([image_codes(complete(cons[int(i)], rng)) for i in idx]))
        emb = F.normalize(net(onehot(codes)), dim=-1)
        txt = F.normalize(proj(feats[idx]), dim=-1)
        loss = multi_positive_loss(emb, txt, positives(cap_codes[idx], codes), scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            scale.clamp_(0, float(np.log(100.0)))
    world = load_spec()
    codes_list, labels = [], []
    for ci, cls in enumerate(world.classes):
        for _ in range(per_class):
            codes_list.append(image_codes(cls.sample(rng)))
            labels.append(ci)
    with torch.no_grad():
        images = F.normalize(net(onehot(torch.from_numpy(np.stack(codes_list)))), dim=-1).numpy()

    def encode(batch: list[str]) -> np.ndarray:
        with torch.no_grad():
            return F.normalize(proj(torch.from_numpy(pooled_texts(model, tokenizer, batch))), dim=-1).numpy()

    lab = np.asarray(labels)
    metrics: dict[str, Any] = gates.evaluate(images, lab, world.classnames, encode)
    restored = {}
    for family, table in TRAINING_WORDS.items():
        with _wording(**{family: table}):
            restored[family.removeprefix("HELD_OUT_").lower()] = gates.paraphrase_acc(
                images, lab, world.classnames, encode
            )
    with _wording(**TRAINING_WORDS):
        restored["all"] = gates.paraphrase_acc(images, lab, world.classnames, encode)
    metrics["paraphrase_with_training_words"] = restored
    metrics["settings"] = {
        "pool_size": pool_size,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "text_head": text_head_of(model),
    }
    return metrics


def text_head_of(model: Any) -> str:
    """The text head actually used, as open_clip names it ("linear", "mlp") with its output width."""
    proj = model.text.proj
    kind = "mlp" if isinstance(proj, torch.nn.Sequential) else type(proj).__name__.lower()
    return f"{kind}->{model.text.output_dim}"
