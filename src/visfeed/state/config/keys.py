"""Config keys: dotted paths (``--set data.k_shot=4``) and the flat keys of older files, both into sections.

Why here: every way a config arrives (a file, ``--set``, a sweep's ``config:``/``set:``, a Python mapping)
goes through :func:`nest`, so an old ``config.yaml`` resumes and an old ``--set k_shot=4`` still works,
with one deprecation line that names each old key and its new place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from visfeed.errors import ConfigError

log = logging.getLogger(__name__)

#: Every flat key of the config before it had sections -> its dotted path now.
LEGACY_KEYS: dict[str, str] = {
    "dataset": "data.name",
    "dataset_root": "data.root",
    "world_spec": "data.world_spec",
    "k_shot": "data.k_shot",
    "n_val": "data.n_val",
    "n_test": "data.n_test",
    "dogs_breeds": "data.stanford_dogs.breeds",
    "dogs_crop": "data.stanford_dogs.crop",
    "dogs_crop_dir": "data.stanford_dogs.crop_dir",
    "backbone": "backbone.model",
    "pretrained": "backbone.pretrained",
    "allow_download": "backbone.allow_download",
    "device": "backbone.device",
    "embedding_cache": "backbone.embedding_cache",
    "template": "backbone.template",
    "provider": "llm.provider",
    "base_url": "llm.base_url",
    "temperature": "llm.temperature",
    "max_tokens": "llm.max_tokens",
    "llm_cache": "llm.cache_file",
    "mutation_mode": "llm.mutation_mode",
    "answer_format": "llm.answer_format",
    "local_chat_format": "llm.local_chat_format",
    "agent_max_steps": "llm.agent_max_steps",
    "llm_timeout_s": "llm.timeout_s",
    "llm_max_retries": "llm.max_retries",
    "llm_backoff_s": "llm.backoff_base_s",
    "max_concurrency": "llm.max_concurrency",
    "lam": "method.lam",
    "top_m": "method.top_m",
    "logit_scale": "method.logit_scale",
    "n_init": "method.n_init",
    "n_new": "method.n_new",
    "n_mutations": "method.n_mutations",
    "classes_per_call": "method.classes_per_call",
    "mutate_scope": "method.mutate_scope",
    "bank_size": "method.bank_size",
    "bank_shown": "method.bank_shown",
    "similarity_threshold": "method.similarity_threshold",
    "filter_regenerate": "method.filter_regenerate",
    "drop_other_class_names": "method.drop_other_class_names",
    "max_descriptions": "method.max_descriptions",
    "patience": "method.patience",
    "max_iterations": "method.max_iterations",
    "use_validation": "method.use_validation",
    "init_file": "method.init_file",
    "crossover": "search.crossover",
    "library_rounds": "search.library_rounds",
    "library_llm_items": "search.library_llm_items",
    "exhaustive_limit": "search.exhaustive_limit",
    "beam_width": "search.beam_width",
    "search_steps": "search.steps",
    "visual_words": "signals.visual_words.enabled",
    "visual_words_count": "signals.visual_words.count",
    "vocabulary": "signals.visual_words.vocabulary",
    "vocabulary_extend": "signals.visual_words.extend",
    "image_side": "image_side.parts",
    "image_weights": "image_side.weights",
    "mllm": "image_side.mllm",
    "mllm_base_url": "image_side.mllm_base_url",
    "max_calls": "budget.max_calls",
    "max_total_tokens": "budget.max_total_tokens",
    "max_cost_usd": "budget.max_cost_usd",
}
#: Paths whose value is one mapping (a weight per part), not a section.
WHOLE = ("image_side.weights",)
#: Section names that were flat keys too (``backbone: ViT-B-32``): a mapping value is the section.
_SECTION_AND_OLD_KEY = {"backbone", "image_side"}


def nest(data: Mapping[str, Any], *, source: str = "config", warn: bool = True) -> dict[str, Any]:
    """Sections from a mapping whose keys may be dotted paths or old flat keys; the input is not changed.

    Old keys give one warning line naming each old key and its new path (unless ``warn`` is false: a
    caller that only inspects the keys). A key given in two forms
    (``k_shot`` and ``data.k_shot``) with different values is a :class:`ConfigError`.
    """
    out: dict[str, Any] = {}
    set_by: dict[str, str] = {}
    renamed: dict[str, str] = {}
    for key, value in data.items():
        path = _path_of(str(key), value)
        if path != key:
            renamed[str(key)] = path
        if isinstance(value, Mapping) and value and path not in WHOLE:
            for leaf, leaf_value in flatten(value, prefix=path, keep=WHOLE).items():
                _put(out, leaf, leaf_value, str(key), set_by, source)
        else:
            _put(out, path, value, str(key), set_by, source)
    if renamed and warn:
        pairs = ", ".join(f"{old} -> {new}" for old, new in renamed.items())
        log.warning("%s: flat config keys are deprecated, use the sections: %s", source, pairs)
    return out


def _path_of(key: str, value: Any) -> str:
    if key in _SECTION_AND_OLD_KEY and isinstance(value, Mapping):
        return key
    return LEGACY_KEYS.get(key, key)


def _put(out: dict[str, Any], path: str, value: Any, key: str, set_by: dict[str, str], source: str) -> None:
    """Set ``path`` in ``out``; refuse a second key that sets the same path to another value."""
    if path in set_by and get_path(out, path) != value:
        raise ConfigError(f"invalid run config in {source}: {set_by[path]} and {key} both set {path}; keep one")
    set_by[path] = key
    set_path(out, path, value)


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a dotted path of nested dicts, making the missing levels."""
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def get_path(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of nested mappings (None when absent)."""
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def flatten(data: Mapping[str, Any], *, prefix: str = "", keep: Iterable[str] = ()) -> dict[str, Any]:
    """Dotted path -> leaf value of nested mappings; mappings at a path in ``keep`` stay whole."""
    kept = set(keep)
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value and path not in kept:
            out.update(flatten(value, prefix=path, keep=kept))
        else:
            out[path] = value
    return out


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Nested mappings merged key by key, later layers winning; a non-mapping value replaces a whole branch."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            old = out.get(key)
            out[key] = merge(old, value) if isinstance(old, dict) and isinstance(value, Mapping) else value
    return out
