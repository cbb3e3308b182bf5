"""A run imports only what it uses: open_clip's model code and scikit-learn wait until a run needs them.

Why it matters: the CUDA build of torch alone holds about 540 MB; open_clip (with torchvision, timm and
transformers) added 240 MB and scikit-learn 140 MB to every run, also to runs on cached or synthetic
embeddings that never load a backbone (issue 28's peak-memory goal for 1,000 classes).
"""

from __future__ import annotations

import json
import subprocess
import sys

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

HEAVY = ("open_clip", "sklearn", "transformers", "timm", "torchvision", "pandas")

PROBE = """
import json, sys
import visfeed.agents.run
from visfeed.tools.feedback.baselines import template_prompts
prompts = template_prompts(["cat"])["cat"]
print(json.dumps({"loaded": [m for m in %r if m in sys.modules], "prompts": prompts}))
"""


def test_the_run_and_the_template_baseline_load_no_model_code() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,)], capture_output=True, text=True, check=False, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["loaded"] == []
    assert got["prompts"] == [t("cat") for t in OPENAI_IMAGENET_TEMPLATES]  # open_clip's own 80 templates
    assert len(got["prompts"]) == 80
