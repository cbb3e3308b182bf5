"""Contrastive training of the market image tower against the frozen MiniLM text tower.

Data: a fixed pool of generated captions (embedded once, cached on disk). Each training image starts from a
pool caption, which fixes the attributes it mentions; the other attributes are drawn uniformly and the
picture is rendered on the fly in DataLoader workers. In a batch, every caption consistent with an image is
a positive (soft targets spread over the positives, both directions), so short captions such as "a red
thing" teach what they should. Only the image tower and the logit scale learn. Batch ``b`` is rendered from
a generator seeded by ``(seed, b)``, so the data stream is fixed by the seed whatever the worker count.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from visfeed.fileio import write_atomic
from visfeed.state.config import DEFAULT_MODEL
from visfeed.tools.embedding.builtin_models import MINILM_PREFIX, create_default_model, model_config, visfeed_cache_dir
from visfeed.tools.world.captions import caption_pool, complete, constraint_codes, image_codes, twin
from visfeed.tools.world.render import render_array
from visfeed.tools.world.settings import TrainConfig

log = logging.getLogger(__name__)

MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip's default (OpenAI) image normalisation
STD = (0.26862954, 0.26130258, 0.27577711)


def normalize_uint8(batch: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, 3)`` uint8 -> normalised float ``(B, 3, H, W)``, as open_clip's preprocess does."""
    x = batch.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def model_image_size(model: Any) -> int:
    """Input side of the model's image tower (renders are 64 px; a larger tower input means upsampling)."""
    size = model.visual.image_size
    return int(size if isinstance(size, int) else size[0])


def fit_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a normalised batch to the tower's input side, bicubic like open_clip's eval transform."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)


def encode_texts(model: Any, tokenizer: Any, texts: list[str], batch: int = 256) -> np.ndarray:
    """Normalised text-tower embeddings (after the text projection)."""
    with torch.no_grad():
        pooled = torch.from_numpy(pooled_texts(model, tokenizer, texts, batch))
        return F.normalize(model.text.proj(pooled.to(_device(model))), dim=-1).float().cpu().numpy()


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def pooled_texts(model: Any, tokenizer: Any, texts: list[str], batch: int = 256) -> np.ndarray:
    """Frozen MiniLM sentence features before the trainable projection, as open_clip's text tower pools them.

    Batches are sorted by length and trimmed of padding (same result, much faster).
    """
    text = model.text
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    width_out = text.transformer.config.hidden_size
    out = np.zeros((len(texts), width_out), dtype=np.float32)
    with torch.no_grad():
        for k in range(0, len(order), batch):
            idx = order[k : k + batch]
            tok = tokenizer([texts[i] for i in idx]).to(_device(model))
            pad = text.config.pad_token_id
            width = int((tok != pad).sum(1).max())
            tok = tok[:, :width]
            mask = (tok != pad).long()
            pooled = text.pooler(text.transformer(input_ids=tok, attention_mask=mask), mask)
            out[idx] = pooled.float().cpu().numpy()
    return out


def caption_features(model: Any, tokenizer: Any, texts: list[str]) -> np.ndarray:
    """Pooled MiniLM features of the pool, cached under ``<cache>/world/captions-<hash>.npy`` (hash of the texts).

    The text transformer is frozen, so these never change during training; only the projection learns.
    """
    h = hashlib.sha256(("\n".join(texts) + "|pooled|" + DEFAULT_MODEL).encode("utf-8")).hexdigest()[:16]
    path = visfeed_cache_dir(os.environ) / "world" / f"captions-{h}.npy"  # evals meet the process: they read it
    width = model.text.transformer.config.hidden_size
    if path.is_file():
        emb = np.load(path)
        if emb.shape == (len(texts), width):
            return emb
    t0 = time.time()
    emb = pooled_texts(model, tokenizer, texts)
    log.info("embedded %d captions in %.0f s", len(texts), time.time() - t0)
    write_atomic(path, lambda f: np.save(f, emb))
    return emb


class _Stream(IterableDataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Batches of (uint8 images, pool caption indices, image attribute codes).

    The first ``batch_size`` images come from their captions; then ``twins`` hard negatives follow: copies
    of the first images with one attribute their caption mentions changed, drawn with the same nuisance
    randomness (background, position), so a caption must tell the two apart by what it says.
    """

    def __init__(self, cons: list[dict[str, str]], n_batches: int, batch_size: int, seed: int, twins: int) -> None:
        self.cons, self.n_batches, self.batch_size, self.seed, self.twins = cons, n_batches, batch_size, seed, twins

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        n = self.batch_size + self.twins
        for b in range(wid, self.n_batches, nw):
            rng = np.random.default_rng([self.seed, 11, b])
            idx = rng.integers(0, len(self.cons), self.batch_size)
            imgs = np.empty((n, 64, 64, 3), dtype=np.uint8)
            codes = np.empty((n, 8), dtype=np.int64)
            for k, i in enumerate(idx):
                cons = self.cons[int(i)]
                attrs = complete(cons, rng)
                if k < self.twins:
                    other = twin(attrs, cons, rng)
                    same = copy.deepcopy(rng)
                    imgs[self.batch_size + k] = render_array(other, same)
                    codes[self.batch_size + k] = image_codes(other)
                imgs[k] = render_array(attrs, rng)
                codes[k] = image_codes(attrs)
            yield torch.from_numpy(imgs), torch.from_numpy(idx), torch.from_numpy(codes)


def positives(caption_codes: torch.Tensor, image_codes: torch.Tensor) -> torch.Tensor:
    """``(images, captions)`` bool: caption j fits image i (every attribute it mentions agrees)."""
    c = caption_codes[None, :, :]
    return ((c == -1) | (c == image_codes[:, None, :])).all(-1)


def multi_positive_loss(img: torch.Tensor, txt: torch.Tensor, pos: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric contrastive loss with soft targets over all positives (``pos[i, j]``: caption j fits image i).

    Images that fit no caption of the batch (hard-negative twins) only act as negatives for the captions.
    """
    logits = scale * img @ txt.t()
    p = pos.float()
    rows = p.sum(1) > 0
    li = -(p[rows] / p[rows].sum(1, keepdim=True) * F.log_softmax(logits[rows], 1)).sum(1).mean()
    lt = -(p / p.sum(0, keepdim=True).clamp_min(1) * F.log_softmax(logits, 0)).sum(0).mean()
    return (li + lt) / 2


def build_model(device: torch.device, *, text_head: str | None = None, embed_dim: int | None = None) -> tuple[Any, Any]:
    """A fresh ``visfeed-market`` model (random image tower, MiniLM text tower) and its tokenizer.

    ``text_head`` ("linear" or "mlp") and ``embed_dim`` override the shipped config, for design studies
    such as :mod:`visfeed.tools.world.ceiling`; a tower trained that way needs the same config to load.
    """
    import open_clip

    overrides: dict[str, Any] = {}
    if text_head is not None or embed_dim is not None:
        cfg = model_config()
        overrides["text_cfg"] = {**cfg["text_cfg"], **({"hf_proj_type": text_head} if text_head else {})}
        overrides["embed_dim"] = embed_dim or cfg["embed_dim"]
    model = create_default_model(**overrides)
    tokenizer = open_clip.get_tokenizer(DEFAULT_MODEL)
    model.lock_text_tower()
    return model.to(device), tokenizer


def _save_tower(model: Any, out: Path) -> None:
    """Write what training learned: image tower, text projection, logit scale (MiniLM is installed), atomically."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if not k.startswith(MINILM_PREFIX)}
    write_atomic(out, lambda f: torch.save(state, f), mode=0o644)  # a checkpoint is meant to be shared


def train(cfg: TrainConfig, out: Path, *, progress: Callable[[dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train, write the image tower + logit scale to ``out``; returns a record of the run."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer = build_model(device)
    texts, cons = caption_pool(cfg.pool_size, cfg.seed)
    model.eval()
    t0 = time.time()
    txt_all = torch.from_numpy(caption_features(model.cpu(), tokenizer, texts)).to(device)
    model.to(device)
    t_text = time.time() - t0
    cap_codes = torch.from_numpy(constraint_codes(cons)).to(device)
    with torch.no_grad():
        model.logit_scale.fill_(cfg.init_logit_scale)
    params = [p for n, p in model.named_parameters() if n.startswith(("visual.", "text.proj."))]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
            {"params": [model.logit_scale], "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )
    n_batches = max(1, cfg.images // cfg.batch_size)
    warm = max(1, int(cfg.warmup_frac * n_batches))

    def lr_at(step: int) -> float:
        if step < warm:
            return cfg.lr * (step + 1) / warm
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, n_batches - warm)))

    loader = DataLoader(
        _Stream(cons, n_batches, cfg.batch_size, cfg.seed, cfg.twins),
        batch_size=None,
        num_workers=cfg.workers,
        persistent_workers=False,
        prefetch_factor=4 if cfg.workers else None,
    )
    model.visual.train()
    size = model_image_size(model)
    t_start = time.time()
    seen, ema = 0, None
    for step, (imgs, idx, codes) in enumerate(loader):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x = fit_size(normalize_uint8(imgs.to(device, non_blocking=True)), size)
        idx, codes = idx.to(device), codes.to(device)
        c = cap_codes[idx]  # (B, A) captions of this batch
        pos = positives(c, codes)
        emb = F.normalize(model.visual(x), dim=-1)
        txt = F.normalize(model.text.proj(txt_all[idx]), dim=-1)
        loss = multi_positive_loss(emb, txt, pos, model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, cfg.max_logit_scale)
        seen += len(idx)
        if cfg.checkpoint_every and step and step % cfg.checkpoint_every == 0:
            _save_tower(model, out.with_name(out.stem + ".partial.pt"))
        ema = float(loss.detach()) if ema is None else 0.98 * ema + 0.02 * float(loss.detach())
        if progress is not None and (step % 50 == 0 or step == n_batches - 1):
            el = time.time() - t_start
            progress(
                {
                    "step": step,
                    "images": seen,
                    "loss": ema,
                    "images_per_s": seen / max(el, 1e-9),
                    "logit_scale": float(model.logit_scale.detach().exp()),
                    "elapsed_s": el,
                }
            )
    wall = time.time() - t_start
    model.eval()
    _save_tower(model, out)
    return {
        "images_seen": seen,
        "steps": n_batches,
        "caption_pool": len(texts),
        "epochs_over_caption_pool": seen / len(texts),
        "unique_images": seen,
        "train_wall_s": round(wall, 1),
        "caption_embed_s": round(t_text, 1),
        "final_loss": ema,
        "final_logit_scale": float(model.logit_scale.detach().exp()),
        "device": str(device),
        "torch_threads": cfg.threads,
        "workers": cfg.workers,
        "model": model,
        "tokenizer": tokenizer,
    }
