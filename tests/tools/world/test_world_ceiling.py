from __future__ import annotations

from pathlib import Path

import pytest
import torch

from visfeed.tools.world import gates
from visfeed.tools.world.ceiling import TRAINING_WORDS, ceiling, onehot
from visfeed.tools.world.vocab import ATTRIBUTES, VOCABULARY


def test_onehot_marks_one_value_per_visible_attribute() -> None:
    codes = torch.tensor([[0] * len(ATTRIBUTES), [1] * (len(ATTRIBUTES) - 1) + [-2]])
    x = onehot(codes)
    assert x.shape == (2, sum(len(VOCABULARY[a]) for a in ATTRIBUTES))
    assert x[0].sum() == len(ATTRIBUTES)
    assert x[1].sum() == len(ATTRIBUTES) - 1  # the hidden attribute marks nothing
    assert x[0, 0] == 1 and x[1, 1] == 1


@pytest.mark.slow
def test_tiny_ceiling_run_reports_gates_and_restores_wording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISFEED_CACHE_DIR", str(tmp_path))
    before = {name: dict(getattr(gates, name)) for name in TRAINING_WORDS}
    m = ceiling(pool_size=300, steps=5, batch_size=32, per_class=2)
    for key in ("names_acc", "oracle_acc", "paraphrase_acc", "wrong_acc", "binding_acc"):
        assert 0.0 <= m[key] <= 100.0
    assert set(m["paraphrase_with_training_words"]) == {"color", "shape", "pattern", "top", "size", "count", "all"}
    # the gate's held-out wording is back in place after the ablation
    assert {name: getattr(gates, name) for name in TRAINING_WORDS} == before
