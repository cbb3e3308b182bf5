"""Pure scoring math: description ensembling, accuracy, margins and the lambda-confusion feedback.

Everything here takes arrays and returns arrays; nothing reads files or models, so the graph nodes, the
LangChain tools and the benchmarks share one implementation (DESIGN.md section 2).

Class score: s(x, c) = mean_{d in D(c)} cos(phi_I(x), phi_T(t(c, d))). With normalized embeddings this is
the dot product of the image embedding with the class's *mean* description embedding (its centroid), so
a class is one column of ``S = X @ centroids.T`` and changing one class changes one column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from visfeed.errors import EmbeddingError
from visfeed.tools.embedding.device import pick_device


def check_embeddings(name: str, emb: np.ndarray | torch.Tensor, dim: int | None = None) -> None:
    """Raise :class:`EmbeddingError` for empty, non-2-D, non-finite or wrongly sized embeddings."""
    shape = tuple(emb.shape)
    if len(shape) != 2:
        raise EmbeddingError(f"{name}: expected a 2-D array of embeddings, got shape {shape}")
    if shape[0] == 0:
        raise EmbeddingError(f"{name}: no embeddings (empty input)")
    if dim is not None and shape[1] != dim:
        raise EmbeddingError(f"{name}: embeddings have dimension {shape[1]}, expected {dim}")
    finite = torch.isfinite(emb).all() if isinstance(emb, torch.Tensor) else np.isfinite(emb).all()
    if not bool(finite):
        raise EmbeddingError(f"{name}: embeddings contain NaN or infinite values")


def centroid(desc_emb: torch.Tensor) -> torch.Tensor:
    """Mean description embedding of one class: the vector whose dot product is the ensembled score."""
    if desc_emb.shape[0] == 0:
        raise EmbeddingError("a class has an empty description list: it needs at least one description")
    return desc_emb.mean(dim=0)


DENSE_CLASSES = 4096
"""Up to this many classes the (C, C) confusion tables are dense arrays; above, SciPy sparse (CSR) arrays.

At 21,000 classes a dense table is 1.8-3.5 GB, while each image adds at most a handful of entries."""

Table = Any
"""A (C, C) count table: a numpy array, or a ``scipy.sparse.csr_array`` above :data:`DENSE_CLASSES` classes.

Both answer ``t[y, c]``; :func:`dense` turns either into a numpy array (only for small C)."""


@dataclass(frozen=True)
class Feedback:
    """Visual feedback on one split (all arrays on CPU, numpy or SciPy sparse).

    ``lam_confusion[y, c]`` counts images of true class y for which class c came within the lambda
    threshold of the true class (a near miss or a miss); ``top_confused[y]`` lists up to m classes with
    the highest counts (only counts > 0), most confused first.
    """

    accuracy: float
    mean_margin: float
    per_class_accuracy: np.ndarray
    per_class_count: np.ndarray
    confusion: Table
    lam_confusion: Table
    top_confused: list[list[int]]
    n_correct: int


def dense(table: Table) -> np.ndarray:
    """A count table as a dense numpy array."""
    return table.toarray() if sp.issparse(table) else np.asarray(table)


def predictions(scores: torch.Tensor) -> torch.Tensor:
    """Argmax class per image."""
    return scores.argmax(dim=1)


def margins(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per image: true-class score minus the best other class's score (positive = correct)."""
    true = scores.gather(1, labels[:, None]).squeeze(1)
    other = scores.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    return true - other


def lambda_confusion(
    scores: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    *,
    lam: float = 0.9,
    logit_scale: float = 100.0,
    use_softmax: bool = True,
) -> torch.Tensor:
    """Paper Eq. 3-5: count M[y, c'] += 1 when p(c'|x) >= lam * p(y|x), for c' != y.

    With p = softmax(logit_scale * s) the softmax normalizer cancels, so the test is exactly
    ``logit_scale * (s_c' - s_y) >= ln(lam)``: no softmax is materialized. ``use_softmax=False`` compares
    raw scores instead (``s_c' >= lam * s_y``).
    """
    hit = lambda_hits(scores, labels, lam=lam, logit_scale=logit_scale, use_softmax=use_softmax)
    counts = torch.zeros((n_classes, n_classes), dtype=torch.float32, device=scores.device)
    counts.index_add_(0, labels, hit.to(torch.float32))
    return counts


def lambda_hits(
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    lam: float = 0.9,
    logit_scale: float = 100.0,
    use_softmax: bool = True,
) -> torch.Tensor:
    """Per image and class: does the class come within the lambda threshold of the true class (bool, N x C)."""
    if not 0.0 < lam <= 1.0:
        raise ValueError(f"lambda must be in (0, 1], got {lam}")
    true = scores.gather(1, labels[:, None])
    if use_softmax:
        hit = (scores - true) * logit_scale >= math.log(lam)
    else:
        hit = scores >= lam * true
    hit.scatter_(1, labels[:, None], False)
    return hit


def top_confused(lam_conf: Table, m: int = 5) -> list[list[int]]:
    """For each class, up to ``m`` classes with the largest confusion counts (counts > 0 only; ties: lower index)."""
    if sp.issparse(lam_conf):
        csr = sp.csr_array(lam_conf)
        out = []
        for y in range(csr.shape[0]):
            lo, hi = csr.indptr[y], csr.indptr[y + 1]
            cols, vals = csr.indices[lo:hi], csr.data[lo:hi]
            keep = np.lexsort((cols, -vals))[:m]
            out.append([int(cols[i]) for i in keep if vals[i] > 0])
        return out
    order = np.argsort(-lam_conf, axis=1, kind="stable")[:, :m]
    return [[int(c) for c in row if lam_conf[y, c] > 0] for y, row in enumerate(order)]


def feedback(
    scores: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    *,
    lam: float = 0.9,
    m: int = 5,
    logit_scale: float = 100.0,
    use_softmax: bool = True,
) -> Feedback:
    """Accuracy, per-class accuracy, mean margin, argmax confusion and lambda-confusion in one pass."""
    pred = predictions(scores)
    marg = margins(scores, labels)
    correct = marg > 0  # a tie is not a win: the same rule as the candidate sweeps in the engine
    n_img = labels.numel()
    per_count = torch.bincount(labels, minlength=n_classes)
    per_correct = torch.bincount(labels[correct], minlength=n_classes)
    conf = torch.bincount(labels * n_classes + pred, minlength=n_classes * n_classes).view(n_classes, n_classes)
    lam_conf = lambda_confusion(scores, labels, n_classes, lam=lam, logit_scale=logit_scale, use_softmax=use_softmax)
    lam_np = lam_conf.cpu().numpy()
    counts_np = per_count.cpu().numpy()
    per_acc = np.divide(per_correct.cpu().numpy(), counts_np, out=np.full(n_classes, np.nan), where=counts_np > 0)
    n_correct = int(correct.sum())
    return Feedback(
        accuracy=n_correct / n_img,
        mean_margin=float(marg.mean()),
        per_class_accuracy=per_acc,
        per_class_count=counts_np,
        confusion=conf.cpu().numpy(),
        lam_confusion=lam_np,
        top_confused=top_confused(lam_np, m),
        n_correct=n_correct,
    )


def feedback_in_blocks(
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    lam: float = 0.9,
    m: int = 5,
    logit_scale: float = 100.0,
    use_softmax: bool = True,
    block_elements: int = 1 << 24,
) -> Feedback:
    """:func:`feedback` computed a block of images (rows of ``scores``) at a time.

    Blocks of about ``block_elements`` scores keep the temporaries small however many classes there are;
    counts are accumulated as (row, column) pairs, so the tables are exact (dense up to
    :data:`DENSE_CLASSES`, sparse above, where a dense (C, C) table would not fit).
    """
    n_classes, n_img = int(scores.shape[1]), int(labels.numel())
    rows = max(1, block_elements // max(1, n_classes))
    n_correct, margin_sum = 0, 0.0
    preds, corrects, conf_y, conf_c = [], [], [], []
    for start in range(0, n_img, rows):
        block = scores[start : start + rows]
        lab = labels[start : start + rows]
        marg = margins(block, lab)
        corrects.append(marg > 0)  # a tie is not a win, as in feedback()
        n_correct += int(corrects[-1].sum())
        margin_sum += float(marg.sum(dtype=torch.float64))
        preds.append(predictions(block))
        hit_r, hit_c = torch.nonzero(
            lambda_hits(block, lab, lam=lam, logit_scale=logit_scale, use_softmax=use_softmax), as_tuple=True
        )
        conf_y.append(lab[hit_r].cpu().numpy())
        conf_c.append(hit_c.cpu().numpy())
    pred_np = torch.cat(preds).cpu().numpy()
    lab_np = labels.cpu().numpy()
    per_count = np.bincount(lab_np, minlength=n_classes)
    per_correct = np.bincount(lab_np[torch.cat(corrects).cpu().numpy()], minlength=n_classes)
    conf = _table(lab_np, pred_np, n_classes, np.int64)
    lam_conf = _table(np.concatenate(conf_y), np.concatenate(conf_c), n_classes, np.float32)
    per_acc = np.divide(per_correct, per_count, out=np.full(n_classes, np.nan), where=per_count > 0)
    return Feedback(
        accuracy=n_correct / n_img,
        mean_margin=margin_sum / n_img,
        per_class_accuracy=per_acc,
        per_class_count=per_count,
        confusion=conf,
        lam_confusion=lam_conf,
        top_confused=top_confused(lam_conf, m),
        n_correct=n_correct,
    )


def _table(rows: np.ndarray, cols: np.ndarray, n: int, dtype: type) -> Table:
    """Count table of (row, column) pairs: dense up to DENSE_CLASSES classes, CSR above."""
    if n <= DENSE_CLASSES:
        out: np.ndarray = np.zeros((n, n), dtype=dtype)
        np.add.at(out, (rows, cols), 1)
        return out
    return sp.csr_array((np.ones(len(rows), dtype=dtype), (rows, cols)), shape=(n, n))


def similarity_matrix(
    image_emb: np.ndarray, text_emb: np.ndarray, *, scale: float = 1.0, device: str = "auto"
) -> np.ndarray:
    """``scale * X @ T.T``: the cosine of every image to every text (both normalized), as float32 (N, M).

    The concept classifiers' features: one column per clue, on the same device as the rest of scoring.
    """
    check_embeddings("image embeddings", image_emb)
    check_embeddings("text embeddings", text_emb, int(np.asarray(image_emb).shape[1]))
    dev = pick_device(device)
    x = torch.as_tensor(np.asarray(image_emb), dtype=torch.float32, device=dev)
    t = torch.as_tensor(np.asarray(text_emb), dtype=torch.float32, device=dev)
    return (scale * (x @ t.T)).cpu().numpy()
