"""What a run needs besides its state: class names, embedded splits, a text encoder and an LLM provider.

Built once per process from the :class:`RunConfig` (dataset, backbone, provider). Tests and
benchmarks can pass their own :class:`RunResources` (e.g. a synthetic encoder and a scripted chat model).
The test split is behind a loader that the runner calls once, after the graph has finished, so no
selection can ever see it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from visfeed.errors import DataError
from visfeed.state.config import DEFAULT_MODEL, RunConfig
from visfeed.tools.datasets.base import Split
from visfeed.tools.feedback.visual_words import Vocabulary, load_vocabulary, word_sentences
from visfeed.tools.feedback.words import word_source
from visfeed.tools.llm import ProviderHandle, resolve_provider
from visfeed.tools.scoring.image_line import ImageLine, fit_image_line
from visfeed.tools.scoring.session import FALLBACK_LOGIT_SCALE, TextEncoder
from visfeed.tools.search.items import (
    NAME_TEMPLATES,
    ItemLibrary,
    SearchResult,
    build_library,
    search_items,
    single,
)
from visfeed.tools.search.proapo import ProapoResult, proapo

AGENT_CHAT_FORMAT = "chatml-function-calling"  # llama.cpp's chat format with tools (and forced tool choice)

if TYPE_CHECKING:
    from visfeed.tools.embedding.vlm import VLM

log = logging.getLogger(__name__)


@dataclass
class EmbeddedSplit:
    """Image embeddings (N, d) and labels (N,) of one split, and the image files (the image side reads them)."""

    image_emb: np.ndarray
    labels: np.ndarray
    paths: list[str] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class ScoringData:
    """A dataset embedded by a backbone: what scoring needs, without any LLM (``visfeed eval`` uses it)."""

    dataset: str
    classnames: list[str]
    encoder: TextEncoder
    feedback: EmbeddedSplit
    test_loader: Callable[[], EmbeddedSplit]
    validation: EmbeddedSplit | None = None
    backbone: str = ""
    extras: dict[str, object] = field(default_factory=dict)
    vocabulary: Vocabulary | None = None
    logit_scale: float | None = None  # the backbone's learned scale, if it has one


@dataclass
class RunResources(ScoringData):
    """Everything heavy a run uses: the scoring data plus an LLM provider; never checkpointed.

    A subclass rather than a holder of :class:`ScoringData`: whatever scores (the finalizer, the
    sessions) takes a run's resources as they are, and tests build one from the same flat fields.
    """

    handle: ProviderHandle = field(kw_only=True)

    def close(self) -> None:
        """Stop the local LLM server if this run started one."""
        self.handle.close()


def searched_words(data: ScoringData, extra: Sequence[str] = ()) -> tuple[ItemLibrary, SearchResult] | None:
    """The searched-words line: a search over name templates and visual-word sentences, no LLM.

    Per class: six name templates and sentences of its ten best visual words (ranked on the feedback
    images); the set is searched on the feedback split and picked on validation. No LLM and no test image: the line an LLM loop must beat (issue 25). None without a vocabulary or
    with a single class.
    """
    source = word_source(data)
    if source is None or len(data.classnames) < 2:  # one class: nothing to choose between
        return None
    probe = source.probe(extra)
    items = [
        [*(single(t.format(name), "template") for t in NAME_TEMPLATES),
         *(single(w, "words") for w in word_sentences(probe, c))]
        for c, name in enumerate(data.classnames)
    ]  # fmt: skip
    library = build_library(data.classnames, items, lambda texts: data.encoder.embed_texts(texts))
    init = [list(range(len(NAME_TEMPLATES)))] * len(data.classnames)
    val = data.validation
    result = search_items(
        library, data.feedback.image_emb, data.feedback.labels, init=init,
        val_emb=val.image_emb if val is not None else None, val_labels=val.labels if val is not None else None,
    )  # fmt: skip
    return library, result


PROAPO_METHODS = ("proapo", "proapo_words")
"""ProAPO's rows: its library (templates, the name, the run's one-shot descriptions), and with visual words."""


def proapo_lines(
    data: ScoringData, cfg: RunConfig, oneshot: Mapping[str, Sequence[str]], extra: Sequence[str] = ()
) -> dict[str, ProapoResult]:
    """ProAPO's search on the feedback split, picked on validation: without and with visual-word sentences.

    Both share stage 1 (the template set). No LLM call: the descriptions are the run's one-shot ones. Empty
    for a single class; ``proapo_words`` only with a vocabulary.
    """
    if len(data.classnames) < 2:
        return {}
    names = list(data.classnames)
    fb, val = data.feedback, data.validation
    common: dict[str, Any] = {
        "embed": data.encoder.embed_texts, "image_emb": fb.image_emb, "labels": fb.labels,
        "scale": data.logit_scale or FALLBACK_LOGIT_SCALE, "seed": cfg.seed,
        "val_emb": val.image_emb if val is not None else None, "val_labels": val.labels if val is not None else None,
    }  # fmt: skip
    descs = [list(oneshot.get(n, [])) for n in names]
    run_template = cfg.resolved_template
    out = {"proapo": proapo(names, descs, [[] for _ in names], run_template=run_template, **common)}
    source = word_source(data)
    if source is not None:
        probe = source.probe(extra)
        words = [word_sentences(probe, c) for c in range(len(names))]
        out["proapo_words"] = proapo(
            names, descs, words, run_template=run_template, templates=out["proapo"].templates, **common
        )
    return out


def image_line(data: ScoringData, seed: int) -> ImageLine | None:
    """The image line fitted on the feedback images, the probe's C chosen on validation (None for one class)."""
    if len(data.classnames) < 2:  # a classifier needs two classes to tell apart
        return None
    val = data.validation
    return fit_image_line(
        data.feedback.image_emb, data.feedback.labels, len(data.classnames), seed=seed,
        val_emb=val.image_emb if val is not None else None, val_labels=val.labels if val is not None else None,
    )  # fmt: skip


def cache_dir() -> Path:
    """Visfeed's cache folder: ``$VISFEED_CACHE_DIR`` or ``~/.cache/visfeed``, read here, where a run meets its process."""
    from visfeed.tools.embedding.builtin_models import visfeed_cache_dir

    return visfeed_cache_dir(os.environ)


def build_vlm(cfg: RunConfig) -> VLM:
    """The config's backbone with the shared embedding cache (the embedded default when none is named)."""
    from visfeed.tools.embedding.builtin_models import default_pretrained
    from visfeed.tools.embedding.cache import EmbeddingCache
    from visfeed.tools.embedding.vlm import VLM, BackboneRef

    pretrained = cfg.backbone.pretrained
    if pretrained is None and cfg.backbone.model == DEFAULT_MODEL:
        pretrained = str(default_pretrained(cache_dir()))
    cache = EmbeddingCache(cfg.backbone.embedding_cache or cache_dir() / "embeddings.sqlite")
    return VLM(
        BackboneRef(cfg.backbone.model, pretrained, cfg.backbone.allow_download), cache, device=cfg.backbone.device
    )


def build_scoring(cfg: RunConfig) -> ScoringData:
    """Load the data and the backbone, embedding the feedback and validation images through the cache."""
    from visfeed.tools.datasets import load_for_config

    vocabulary = load_vocabulary(
        cfg.signals.visual_words.vocabulary
    )  # a bad file is a usage error, raised before any work
    splits, report = load_for_config(cfg, cache_dir())
    vlm = build_vlm(cfg)
    cache = vlm.cache

    def embed(split: Split) -> EmbeddedSplit:
        return EmbeddedSplit(vlm.embed_images(split.paths), np.asarray(split.labels, dtype=np.int64), list(split.paths))

    def embed_test() -> EmbeddedSplit:
        """Test images were only identified by header when loading; leave out those that do not decode."""
        try:
            return embed(splits.test)
        except DataError:
            from visfeed.tools.datasets._files import check_images

            bad = check_images(splits.test.paths, "decode")
            if not bad:
                raise
            first = next(iter(bad.items()))
            log.warning(
                "%s: %d test image(s) could not be decoded and are left out (e.g. %s: %s)",
                splits.name, len(bad), first[0], first[1],
            )  # fmt: skip
            keep = [i for i, p in enumerate(splits.test.paths) if p not in bad]
            return embed(
                Split(paths=[splits.test.paths[i] for i in keep], labels=[splits.test.labels[i] for i in keep])
            )

    validation = embed(splits.validation) if splits.validation is not None and len(splits.validation) else None
    # skipped files, short classes: recorded in the trace
    extras: dict[str, object] = {"vlm": vlm, "cache": cache, "load_report": report.model_dump(mode="json")}
    return ScoringData(
        dataset=splits.name,
        classnames=list(splits.classnames),
        encoder=vlm,
        feedback=embed(splits.feedback),
        validation=validation,
        test_loader=embed_test,
        backbone=vlm.identity,
        extras=extras,
        vocabulary=vocabulary,
        logit_scale=vlm.logit_scale,
    )


def provider_handle(cfg: RunConfig) -> ProviderHandle:
    """The config's LLM provider (a local server starts when the handle's chat model is first needed).

    The agent mode on the embedded model needs llama.cpp's tool-calling chat format; it is chosen for the
    user unless they named another one. The process environment (``OPENAI_API_KEY``, ``*_proxy``) is
    read here, where a run meets its process, and handed to the provider.
    """
    chat_format = cfg.llm.local_chat_format
    if chat_format is None and cfg.is_local and cfg.llm.mutation_mode == "agent":
        chat_format = AGENT_CHAT_FORMAT
    return resolve_provider(
        cfg.llm.provider,
        base_url=cfg.llm.base_url,
        temperature=cfg.resolved_temperature,
        timeout_s=cfg.llm.timeout_s,
        local_seed=cfg.seed,
        local_chat_format=chat_format,
        env=os.environ,
    )


def build_resources(cfg: RunConfig) -> RunResources:
    """Scoring data (:func:`build_scoring`) plus the LLM provider, started first.

    A local server starts (and answers one tiny completion) before any image is embedded, so a server
    that cannot generate on this machine fails in seconds, not after the embedding.
    """
    handle = provider_handle(cfg)
    try:
        handle.start()
        data = build_scoring(cfg)
    except BaseException:
        handle.close()
        raise
    return RunResources(**vars(data), handle=handle)
