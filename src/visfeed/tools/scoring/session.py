"""A scoring session: one backbone, one labelled split, class names and a prompt template.

This is the single object graph nodes and LangChain tools share: it turns description *texts* into
cached embeddings, keeps the incremental :class:`~visfeed.tools.scoring.engine.ScoringEngine` in step with the
current descriptions, and renders visual feedback as text. Large arrays live here and in the embedding
cache, never in the graph state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import torch

from visfeed.errors import DataError
from visfeed.state.templates import DEFAULT_TEMPLATE, check_template, render_prompt
from visfeed.tools.scoring.engine import CandidateScores, ScoringEngine
from visfeed.tools.scoring.index import DescriptionIndex, Neighbour
from visfeed.tools.scoring.measures import Feedback

FALLBACK_LOGIT_SCALE = 100.0
"""CLIP's scale, for a backbone that learned none (e.g. a test's text table)."""
BATCH_SHARE = 8
"""A change of at least 1/BATCH_SHARE of the classes rescans the scores once instead of keeping the top two
up to date per class: the upkeep costs O(N) per class and the rescan O(N x C), so the rescan wins above a
fixed share of the classes (1/8 is a round choice on the safe side, not a tuned one)."""

log = logging.getLogger(__name__)


class TextEncoder(Protocol):
    """Anything that maps texts to normalized embeddings (a :class:`~visfeed.tools.embedding.vlm.VLM`, or a test table)."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Normalized (N, d) float32 embeddings of ``texts``."""
        ...


def resolve_logit_scale(configured: float | None, backbone: float | None) -> tuple[float, str]:
    """The lambda test's logit scale and where it came from: the user's, else the backbone's, else CLIP's.

    The softmax temperature decides which near misses count, so it must be the one the backbone was trained
    with; a fixed 100 would make the test far stricter than intended for a model that learned, say, 25.
    """
    if configured is not None:
        return configured, "config"
    if backbone is not None:
        return backbone, "backbone"
    log.info("the backbone has no learned logit scale; the lambda test uses %g", FALLBACK_LOGIT_SCALE)
    return FALLBACK_LOGIT_SCALE, "fallback"


class ScoringSession:
    """Descriptions in, accuracy and feedback out, for one split."""

    def __init__(
        self,
        encoder: TextEncoder,
        classnames: Sequence[str],
        image_emb: np.ndarray,
        labels: Sequence[int] | np.ndarray,
        *,
        template: str = DEFAULT_TEMPLATE,
        device: str = "auto",
        lam: float = 0.9,
        m: int = 5,
        logit_scale: float = 100.0,
    ) -> None:
        self.encoder = encoder
        self.classnames = list(classnames)
        self.index_of = {c: i for i, c in enumerate(self.classnames)}
        self.template = check_template(template)
        self.engine = ScoringEngine(image_emb, labels, len(self.classnames), device=device)
        self.lam, self.m, self.logit_scale = lam, m, logit_scale
        self.current: dict[str, list[str]] = {}
        self._feedback: Feedback | None = None  # of the current descriptions; dropped when one changes

    def class_index(self, name: str) -> int:
        """Index of a class name, with an error that lists close names when it is unknown."""
        try:
            return self.index_of[name]
        except KeyError:
            raise DataError(f"unknown class {name!r}; classes are: {', '.join(self.classnames[:20])}") from None

    def embed(self, classname: str, descriptions: Sequence[str]) -> np.ndarray:
        """Embeddings of a class's descriptions joined with the template (cached by exact text)."""
        if not descriptions:
            raise DataError(f"class {classname!r} has an empty description list")
        return self.encoder.embed_texts([render_prompt(self.template, classname, d) for d in descriptions])

    def set_descriptions(self, descriptions: Mapping[str, Sequence[str]]) -> None:
        """Make ``descriptions`` current; only classes whose list changed are re-embedded and re-scored."""
        missing = [c for c in self.classnames if c not in descriptions and c not in self.current]
        if missing:
            raise DataError(f"no descriptions for classes {missing[:5]}")
        changed = {name: list(descs) for name, descs in descriptions.items() if self.current.get(name) != list(descs)}
        if not changed:
            return
        if len(changed) * BATCH_SHARE >= len(self.classnames):
            # Many columns: write them all, then rescan once (the per-class upkeep would cost C x N).
            self.engine.set_classes((self.class_index(n), self.embed(n, d)) for n, d in changed.items())
        else:
            for name, descs in changed.items():
                self.engine.set_class(self.class_index(name), self.embed(name, descs))
        self.current.update(changed)
        self._feedback = None

    def feedback(self) -> Feedback:
        """Visual feedback on the current descriptions (computed once per set of descriptions).

        Every node of an iteration asks for the feedback of the same descriptions; with 1,000 classes one
        computation is a large share of an iteration's non-LLM time, so it is kept until a class changes.
        """
        if self._feedback is None:
            self._feedback = self._compute_feedback()
        return self._feedback

    def _compute_feedback(self) -> Feedback:
        return self.engine.feedback(lam=self.lam, m=self.m, logit_scale=self.logit_scale)

    def trial_feedback(self, classname: str, descriptions: Sequence[str]) -> Feedback:
        """Feedback as if ``classname`` used ``descriptions``; the session's state is left unchanged."""
        c = self.class_index(classname)
        eng = self.engine
        saved_cen, saved_col = eng.centroids[c].clone(), eng.scores[:, c].clone()
        try:
            eng.set_class(c, self.embed(classname, descriptions))
            return self._compute_feedback()
        finally:
            eng.set_column(c, saved_cen, saved_col)

    def evaluate_sets(self, classname: str, candidate_sets: Sequence[Sequence[str]]) -> CandidateScores:
        """Objective of each candidate description set for one class, in one vectorized sweep."""
        pool: dict[str, int] = {}
        members = [[pool.setdefault(d, len(pool)) for d in dict.fromkeys(s)] for s in candidate_sets]
        pool_emb = self.embed(classname, list(pool))
        return self.engine.evaluate_candidates(self.class_index(classname), pool_emb, members)

    def description_index(self, classes: Sequence[str] | None = None) -> DescriptionIndex:
        """FAISS index over the current descriptions (of ``classes``, or of all), as raw texts.

        Raw texts, not templated prompts: the similarity filter asks whether two *descriptions* say the same
        thing, and the class names inside the prompts would dominate that comparison.
        """
        texts: list[str] = []
        owners: list[int] = []
        embs: list[np.ndarray] = []
        for name in classes if classes is not None else self.classnames:
            descs = self.current.get(name, [])
            if descs:
                texts += descs
                owners += [self.class_index(name)] * len(descs)
                embs.append(self.encoder.embed_texts(descs))
        if not embs:
            raise DataError("no descriptions to index")
        return DescriptionIndex(texts, owners, np.concatenate(embs))

    def nearest(self, texts: Sequence[str], classes: Sequence[str], k: int = 5) -> list[list[Neighbour]]:
        """For each text, the current descriptions of ``classes`` nearest to it (cosine, best first)."""
        if not classes or not any(self.current.get(c) for c in classes):
            return [[] for _ in texts]
        query = self.encoder.embed_texts(list(texts))
        ids = [self.class_index(c) for c in classes]
        return self.description_index(classes).nearest(query, ids, k)

    def objective(self) -> tuple[int, float]:
        """Correct images and mean margin of the current descriptions."""
        return self.engine.objective()

    @property
    def n_images(self) -> int:
        """Images in the split."""
        return self.engine.n_images

    def device(self) -> torch.device:
        """Where the dense scoring runs."""
        return self.engine.device
