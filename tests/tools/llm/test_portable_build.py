"""The installed llama.cpp runs on every current x86-64 machine unless the user opted into a native build.

A native build on a machine that advertises AVX-512/AMX but does not enable them dies with SIGILL on its
first completion (issue 29). The check disassembles the installed libraries, so it holds whatever the
build record says: AVX2 code present (the disassembly works), no AVX-512 register and no AMX tile op.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from support.required import missing_part
from visfeed.tools.doctor import llama_build_record

_AVX512_OR_AMX = re.compile(r"%zmm\d|\btile(loadd|stored|zero|release)\b|\btdpb[su][su]d\b|\btdpbf16ps\b")


def _libraries() -> list[Path]:
    try:
        import llama_cpp
    except ImportError:
        missing_part("llama-cpp-python is not installed (`make install`)")
    libs = sorted((Path(llama_cpp.__file__).parent / "lib").glob("lib*.so"))
    assert libs, "llama_cpp ships no shared libraries?"
    return libs


@pytest.mark.skipif(platform.machine() != "x86_64", reason="AVX-512/AMX are x86-64 instruction sets")
def test_installed_llama_cpp_has_no_avx512_or_amx_code() -> None:
    record = llama_build_record()
    if record is None:
        missing_part("llama-cpp-python was not installed by `make install` (no llama-cpp-build.json)")
    if record.get("build") == "native":
        pytest.skip("the user opted into a native build (LLAMA_BUILD=native)")
    if shutil.which("objdump") is None:
        missing_part("objdump (binutils) is not installed")
    ymm = 0
    for lib in _libraries():
        text = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", str(lib)], capture_output=True, text=True, check=True
        ).stdout
        bad = _AVX512_OR_AMX.search(text)
        assert bad is None, f"{lib.name} contains {bad.group(0)!r}: not a portable build"
        ymm += text.count("%ymm")
    assert ymm > 1000, "no AVX2 code found: the disassembly did not work, or the build is below AVX2"


def test_the_pattern_catches_avx512_and_amx() -> None:
    for line in ("vmovups (%rax),%zmm1", "tileloadd (%rsi,%rdx,1),%tmm0", "tdpbssd %tmm2,%tmm1,%tmm0"):
        assert _AVX512_OR_AMX.search(line), line
    assert not _AVX512_OR_AMX.search("vfmadd231ps %ymm1,%ymm2,%ymm0")
