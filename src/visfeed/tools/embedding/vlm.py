"""Vision-language backbones through open_clip, with cached, batched, offline-by-default embedding.

A backbone is named the way open_clip names it: a built-in model plus a pretrained tag
(``ViT-B-32`` + ``openai``), a local checkpoint file (``ViT-B-32`` + ``/path/model.pt``), a local folder
(``local-dir:/path``) or a hub id (``hf-hub:org/name``). Only a hub id, or ``allow_download=True``, may
touch the network: a pretrained tag whose weights are not already in the local cache is an error that
says how to fetch them. The project's own default (see :mod:`visfeed.tools.embedding.builtin_models`) goes through
exactly the same code path.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from visfeed.errors import DataError, EmbeddingError, ModelError
from visfeed.fileio import sha256_file
from visfeed.tools.embedding.cache import EmbeddingCache, file_key, text_key
from visfeed.tools.embedding.device import pick_device
from visfeed.tools.embedding.text_fit import fit_text, token_counter

log = logging.getLogger(__name__)

_HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


@dataclass
class EmbedStats:
    """How many inputs were actually run through the model versus served by the cache."""

    texts_embedded: int = 0
    texts_cached: int = 0
    images_embedded: int = 0
    images_cached: int = 0


@dataclass(frozen=True)
class BackboneRef:
    """What the user named: an open_clip model and where its weights come from."""

    model: str
    pretrained: str | None = None
    allow_download: bool = False
    cache_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _sha256_file(path: Path) -> str:
    return sha256_file(path)[:16]


def _cached_tag_weights(model: str, tag: str, cache_dir: str | None) -> str | None:
    """Local path of a pretrained tag's weights if they were downloaded before, else None (no network)."""
    cfg = open_clip.get_pretrained_cfg(model, tag)
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
        for name in ([filename] if filename else []) + list(_HF_WEIGHT_FILES):
            found = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
            if isinstance(found, str):
                return found
    url = cfg.get("url", "")
    if url:
        local = Path(cache_dir or Path.home() / ".cache" / "clip") / os.path.basename(url)
        if local.is_file():
            return str(local)
    return None


def load_open_clip(ref: BackboneRef, device: torch.device) -> tuple[torch.nn.Module, Callable[..., Any], Any, str]:
    """Create an open_clip model offline where possible; returns (model, preprocess, tokenizer, identity).

    The identity names the weights precisely (a local file's content hash included), so caches keyed by
    it never mix vectors from different weights.
    """
    from visfeed.tools.embedding.builtin_models import register_builtin_models

    register_builtin_models()
    model_name, pretrained = ref.model, ref.pretrained
    kwargs: dict[str, Any] = dict(ref.extra)
    schema, ident = open_clip.factory.parse_model_name(model_name)
    if schema == "local-dir":
        if not Path(ident).is_dir():
            raise ModelError(f"local model folder {ident} does not exist")
        files = sorted(p for p in Path(ident).iterdir() if p.suffix in (".json", ".safetensors", ".bin", ".pth"))
        identity = f"{model_name}@" + hashlib.sha256("".join(_sha256_file(p) for p in files).encode()).hexdigest()[:16]
    elif schema == "hf-hub":
        identity = model_name  # the user named a hub model: downloading it is what they asked for
    else:
        if model_name not in open_clip.list_models():
            raise ModelError(
                f"unknown model {model_name!r}; open_clip knows {len(open_clip.list_models())} models "
                "(see `open_clip.list_models()`), or use 'hf-hub:ORG/NAME' or 'local-dir:PATH'"
            )
        if pretrained is None:
            identity = f"{model_name}@random"
        elif open_clip.get_pretrained_cfg(model_name, pretrained):
            identity = f"{model_name}@{pretrained}"
            if not ref.allow_download:
                local = _cached_tag_weights(model_name, pretrained, ref.cache_dir)
                if local is None:
                    raise ModelError(
                        f"weights for {model_name} / {pretrained} are not in the local cache and downloads are "
                        "off; pass --download (allow_download=True) to fetch them once"
                    )
                tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
                for key, arg in (
                    ("mean", "image_mean"),
                    ("std", "image_std"),
                    ("interpolation", "image_interpolation"),
                    ("resize_mode", "image_resize_mode"),
                ):
                    if key in tag_cfg:
                        kwargs.setdefault(arg, tag_cfg[key])
                kwargs.setdefault("force_quick_gelu", bool(tag_cfg.get("quick_gelu", False)))
                pretrained = local
        else:
            path = Path(pretrained).expanduser()
            if not path.is_file():
                raise ModelError(
                    f"pretrained {pretrained!r} is neither a known tag of {model_name} "
                    f"({', '.join(open_clip.list_pretrained_tags_by_model(model_name)) or 'none'}) "
                    "nor an existing checkpoint file"
                )
            pretrained = str(path)
            identity = f"{model_name}@file:{_sha256_file(path)}"
    precision = "fp16" if device.type == "cuda" else "fp32"
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name,
            pretrained=pretrained if schema is None else None,
            precision=precision,
            device=device,
            cache_dir=ref.cache_dir,
            **kwargs,
        )
        tokenizer = open_clip.get_tokenizer(model_name, cache_dir=ref.cache_dir)
    except (RuntimeError, FileNotFoundError, OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load backbone {model_name} ({pretrained}): {exc}") from exc
    model.eval()
    return model, preprocess, tokenizer, identity


class _ImageFiles(Dataset[torch.Tensor]):
    """Paths to preprocessed tensors; unreadable files raise a DataError that names them."""

    def __init__(self, paths: Sequence[str], preprocess: Callable[..., Any]) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        try:
            with Image.open(self.paths[i]) as img:
                tensor: torch.Tensor = self.preprocess(img.convert("RGB"))
                return tensor
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"cannot read image {self.paths[i]}: {exc}") from exc


class VLM:
    """One loaded backbone plus its embedding caches: texts and images in, normalized float32 rows out."""

    def __init__(
        self,
        ref: BackboneRef,
        cache: EmbeddingCache,
        *,
        device: str = "auto",
        batch_size: int = 256,
        num_workers: int | None = None,
    ) -> None:
        self.ref = ref
        self.device = pick_device(device)
        self.model: Any
        self.model, self.preprocess, self.tokenizer, self.identity = load_open_clip(ref, self.device)
        self.cache = cache
        self.batch_size = batch_size
        self.num_workers = min(2, os.cpu_count() or 1) if num_workers is None else num_workers
        self.stats = EmbedStats()
        self.preprocess_key = hashlib.sha256(repr(self.preprocess).encode()).hexdigest()[:16]
        self.dim: int | None = None
        self._count_tokens: Callable[[str], int] | None = None

    @property
    def logit_scale(self) -> float | None:
        """The temperature the backbone learned (``logit_scale.exp()``), or None if the model has none."""
        raw = getattr(self.model, "logit_scale", None)
        if not isinstance(raw, torch.Tensor):
            return None
        return float(raw.detach().float().exp())

    def fit_text(self, text: str) -> str:
        """``text`` cut by whole words to what the text tower accepts, counted by its own tokenizer."""
        if self._count_tokens is None:
            self._count_tokens = token_counter(self.tokenizer)
        return fit_text(text, self._count_tokens, int(self.tokenizer.context_length))

    @property
    def text_namespace(self) -> str:
        """Cache namespace for text embeddings: backbone identity only (tokenizer is part of the model)."""
        return f"text|{self.identity}"

    @property
    def image_namespace(self) -> str:
        """Cache namespace for image embeddings: backbone identity plus preprocessing."""
        return f"image|{self.identity}|{self.preprocess_key}"

    @torch.no_grad()
    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(texts[start : start + self.batch_size]).to(self.device)
            emb = self.model.encode_text(tokens, normalize=True)
            out.append(emb.float().cpu().numpy())
        return np.concatenate(out)

    @torch.no_grad()
    def _encode_images(self, paths: list[str]) -> np.ndarray:
        workers = self.num_workers if len(paths) >= 4 * self.batch_size else 0
        loader = DataLoader(_ImageFiles(paths, self.preprocess), batch_size=self.batch_size, num_workers=workers)
        out = []
        dtype = next(self.model.parameters()).dtype
        for batch in loader:
            emb = self.model.encode_image(batch.to(self.device, dtype=dtype), normalize=True)
            out.append(emb.float().cpu().numpy())
        return np.concatenate(out)

    def _check(self, what: str, emb: np.ndarray) -> np.ndarray:
        if not np.isfinite(emb).all():
            raise EmbeddingError(f"backbone {self.identity} produced NaN or infinite {what} embeddings")
        self.dim = int(emb.shape[1])
        return emb

    def encode_images(self, paths: Sequence[str]) -> np.ndarray:
        """Normalized embeddings of image files (N, d), computed now and not cached (``visfeed embed`` shards them)."""
        return self._check("image", self._encode_images(list(paths)))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Normalized embeddings of ``texts`` (N, d); each unique text runs through the model once, ever."""
        if not texts:
            raise EmbeddingError("no texts to embed")
        keys = [text_key(t) for t in texts]
        found = self.cache.get_many(self.text_namespace, keys)
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in found))
        self.stats.texts_cached += len(texts) - len(missing)
        if missing:
            emb = self._check("text", self._encode_texts(missing))
            new = {text_key(t): e for t, e in zip(missing, emb, strict=True)}
            self.cache.put_many(self.text_namespace, new)
            found.update(new)
            self.stats.texts_embedded += len(missing)
        return np.stack([found[k] for k in keys])

    def embed_images(self, paths: Sequence[str]) -> np.ndarray:
        """Normalized embeddings of image files (N, d), cached by content hash."""
        if not paths:
            raise EmbeddingError("no images to embed")
        try:
            keys = [file_key(p) for p in paths]
        except OSError as exc:
            raise DataError(f"cannot read image file: {exc}") from exc
        found = self.cache.get_many(self.image_namespace, keys)
        todo: dict[str, str] = {}
        for p, k in zip(paths, keys, strict=True):
            if k not in found:
                todo.setdefault(k, p)
        self.stats.images_cached += len(paths) - len(todo)
        if todo:
            emb = self._check("image", self._encode_images(list(todo.values())))
            new = dict(zip(todo.keys(), emb, strict=True))
            self.cache.put_many(self.image_namespace, new)
            found.update(new)
            self.stats.images_embedded += len(todo)
        return np.stack([found[k] for k in keys])
