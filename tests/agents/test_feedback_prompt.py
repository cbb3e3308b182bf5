"""The visual feedback reaches the mutation prompt: a known near miss, counted under the run's lambda and scale.

The world is built so the counts are known exactly: each class's initial description embeds to its own
basis vector, and three of the four lemon images sit between lemon and lime (scores 0.78 and 0.62, a gap
of 0.16). Under lambda 0.1 and logit scale 10 the lambda test counts a near miss when the gap is at most
ln(10) / 10 = 0.23, so lime is confused with lemon on exactly 3 images; under the default lambda 0.9 (a gap
of at most 0.01), or with the scale 100, none of them counts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from tests.agents.conftest import CLASSES, DIM, CountingTest, SyntheticEncoder, fruit_chat

from visfeed.agents.resources import EmbeddedSplit, RunResources
from visfeed.agents.run import optimize
from visfeed.state.rundir import read_trace
from visfeed.tools.llm import ProviderHandle

INIT = {
    "apple": "crimson",
    "cherry": "maroon",
    "lemon": "citrine",
    "lime": "emerald",
    "banana": "crescent",
    "grape": "violet",
}
BASIS = {INIT[c]: np.eye(DIM, dtype=np.float32)[i] for i, c in enumerate(CLASSES)}


class TableEncoder(SyntheticEncoder):
    """The initial descriptions map to orthonormal vectors; anything the LLM writes to bag-of-words vectors."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        bag = super().embed_texts
        return np.stack([BASIS[t] if t in BASIS else bag([t])[0] for t in texts]).astype(np.float32)


def near_miss_split() -> EmbeddedSplit:
    """Four images per class on the class's vector; three lemon images pulled towards lime."""
    embs, labels = [], []
    for ci, c in enumerate(CLASSES):
        for k in range(4):
            v = BASIS[INIT[c]] + (0.8 * BASIS[INIT["lime"]] if c == "lemon" and k < 3 else 0)
            embs.append(v / np.linalg.norm(v))
            labels.append(ci)
    return EmbeddedSplit(np.stack(embs).astype(np.float32), np.asarray(labels))


@pytest.mark.parametrize(
    ("configured", "learned", "source"), [(10.0, None, "config"), (None, 10.0, "backbone")], ids=["config", "backbone"]
)
def test_mutate_prompt_names_the_near_miss_with_its_lambda_count(
    base_config, tmp_path: Path, configured: float | None, learned: float | None, source: str
) -> None:
    init = tmp_path / "init.json"
    init.write_text(json.dumps({c: [d] for c, d in INIT.items()}))
    cfg = base_config(
        backbone={"template": "{description}"},
        method={"lam": 0.1, "logit_scale": configured, "init_file": init, "max_iterations": 1, "n_mutations": 1},
    )
    chat = fruit_chat()
    res = RunResources(
        dataset="near-miss",
        classnames=list(CLASSES),
        encoder=TableEncoder(),
        feedback=near_miss_split(),
        test_loader=CountingTest(near_miss_split()),
        handle=ProviderHandle(provider="scripted", model="scripted-1", chat_model=chat, structured_mode="prompt"),
        backbone="table",
        logit_scale=learned,
    )
    result = optimize(cfg, resources=res)
    assert result.status == "completed", result.error
    assert (result.logit_scale, result.logit_scale_source) == (10.0, source)
    prompts = [
        "\n".join(str(m["content"]) for m in e["messages"])
        for e in read_trace(cfg.run_dir, events={"llm_call"})
        if e["task"] == "mutate"  # one iteration: every mutation prompt shows the initial descriptions' feedback
    ]
    lemon = [p for p in prompts if 'Class "lemon":' in p]
    assert lemon, prompts
    for prompt in lemon:
        block = re.search(r'Class "lemon": 100% of 4 images correct\.\n  Current: citrine\n(.*)', prompt)
        assert block is not None, prompt
        assert block.group(1).startswith('  Confused with: "lime" (3 images; described as: emerald)'), block.group(1)
    # the clear classes are not confused: a count from the near miss only, not from a lenient threshold
    assert all('Class "banana": 100% of 4 images correct.\n  Current: crescent\n  Not confused' in p
               for p in prompts if 'Class "banana":' in p)  # fmt: skip
