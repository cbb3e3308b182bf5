"""The scoring engine on CUDA gives the CPU's answers: feedback, the objective and candidate sweeps.

Skipped where torch sees no GPU; run on a machine with one (``pytest -m gpu``). Scores are float32 on
both devices, so sums may differ in the last bits: counts are compared exactly on data whose score gaps
are far from any threshold, margins to a tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.tools.scoring.test_engine import _unit
from tests.tools.scoring.test_engine import _world as engine_world

from visfeed.tools.scoring.engine import ScoringEngine

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (torch.cuda.is_available() is false)"),
]


def _world(seed: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """test_engine's world, larger: 12 classes of 40 images in 64 dimensions."""
    return engine_world(seed, n_classes=12, per_class=40, n_desc=6, dim=64)


def _engines(x: np.ndarray, labels: np.ndarray, descs: list[np.ndarray]) -> tuple[ScoringEngine, ScoringEngine]:
    cpu = ScoringEngine(x, labels, len(descs), device="cpu")
    gpu = ScoringEngine(x, labels, len(descs), device="cuda")
    for eng in (cpu, gpu):
        eng.set_all(descs)
    assert gpu.scores.device.type == "cuda"
    return cpu, gpu


def test_feedback_on_cuda_equals_cpu() -> None:
    _, _, labels, x, descs = _world(0)
    cpu, gpu = _engines(x, labels, descs)
    torch.testing.assert_close(gpu.scores.cpu(), cpu.scores, rtol=0, atol=1e-5)
    for lam, scale in ((0.9, 100.0), (0.5, 25.7), (1.0, 100.0)):
        a, b = cpu.feedback(lam=lam, logit_scale=scale), gpu.feedback(lam=lam, logit_scale=scale)
        assert a.n_correct == b.n_correct and a.accuracy == b.accuracy
        assert a.mean_margin == pytest.approx(b.mean_margin, abs=1e-5)
        np.testing.assert_array_equal(a.confusion, b.confusion)
        np.testing.assert_array_equal(a.per_class_count, b.per_class_count)
        np.testing.assert_allclose(a.per_class_accuracy, b.per_class_accuracy)
        # lambda counts may differ only for an image sitting on the threshold to float precision
        assert np.abs(a.lam_confusion - b.lam_confusion).sum() <= 1
        assert a.lam_confusion.sum() > 0


def test_set_class_and_objective_on_cuda_equal_cpu() -> None:
    rng, protos, labels, x, descs = _world(1)
    cpu, gpu = _engines(x, labels, descs)
    new = _unit(protos[3] + rng.normal(size=(9, x.shape[1])))
    cpu.set_class(3, new)
    gpu.set_class(3, new)
    (n_cpu, m_cpu), (n_gpu, m_gpu) = cpu.objective(), gpu.objective()
    assert n_cpu == n_gpu
    assert m_cpu == pytest.approx(m_gpu, abs=1e-5)


def test_candidate_sweep_on_cuda_equals_cpu() -> None:
    rng, protos, labels, x, descs = _world(2)
    cpu, gpu = _engines(x, labels, descs)
    pool = _unit(np.concatenate([descs[5], protos[5] + 1.0 * rng.normal(size=(10, x.shape[1]))]))
    members = [sorted(rng.choice(len(pool), size=int(rng.integers(1, 8)), replace=False).tolist()) for _ in range(300)]
    a = cpu.evaluate_candidates(5, pool, members)
    b = gpu.evaluate_candidates(5, pool, members)
    assert np.abs(a.n_correct - b.n_correct).max() <= 1  # an image may sit on a tie to float precision
    np.testing.assert_allclose(a.mean_margin, b.mean_margin, atol=1e-5)
    assert a.best() == b.best() or a.n_correct[a.best()] == b.n_correct[b.best()]
