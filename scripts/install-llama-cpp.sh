#!/usr/bin/env bash
# Install llama-cpp-python into a virtual environment, built for a CPU level the machine can run.
#
# Why a script of its own: pip builds llama-cpp-python from source with llama.cpp's default *native* CPU
# flags, and some virtual machines advertise AVX-512/AMX that they do not enable for processes; a native
# build dies there with SIGILL on its first completion. pip's wheel cache ignores CMAKE_ARGS, so a native
# wheel built once would be reused forever. This script builds the wheel with --no-cache-dir into a
# wheelhouse keyed by (version, flags, Python, arch), installs exactly that wheel, and records the build in
# $VENV/llama-cpp-build.json, which `visfeed doctor` and the tests read.
#
# Usage: scripts/install-llama-cpp.sh VENV [portable|native]
set -euo pipefail

venv=${1:?usage: $0 VENV [portable|native]}
mode=${2:-portable}
version=${LLAMA_CPP_VERSION:-0.3.36}
python="$venv/bin/python"
record="$venv/llama-cpp-build.json"

case "$mode" in
  portable)
    if [ "$(uname -m)" = "x86_64" ]; then
      # x86-64-v3 (AVX2, FMA, F16C, BMI2): every current x86-64 server runs it; no AVX-512, no AMX.
      cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
    else
      cmake_args="-DGGML_NATIVE=OFF"
    fi ;;
  native) cmake_args="-DGGML_NATIVE=ON" ;;
  *) echo "error: build mode must be 'portable' or 'native', got '$mode'" >&2; exit 2 ;;
esac

pytag=$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
key=$(printf '%s|%s|%s|%s' "$version" "$cmake_args" "$pytag" "$(uname -m)" | sha256sum | cut -c1-12)
wheelhouse="${VISFEED_WHEELHOUSE:-$HOME/.cache/visfeed/wheels}/llama-cpp-python-$version-$mode-$key"

if [ -f "$record" ] && grep -q "\"key\": \"$key\"" "$record" && "$python" -c 'import llama_cpp' 2>/dev/null; then
  echo "llama-cpp-python $version ($mode build $key) is already installed in $venv"
  exit 0
fi

if ! ls "$wheelhouse"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $version from source ($mode: $cmake_args); about 5-8 minutes on 2 cores"
  tmp="$wheelhouse.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  start=$(date +%s)
  CMAKE_ARGS="$cmake_args" FORCE_CMAKE=1 "$python" -m pip wheel --no-deps --no-cache-dir \
    --no-binary llama-cpp-python -w "$tmp" "llama-cpp-python==$version"
  echo "built in $(( $(date +%s) - start )) s"
  rm -rf "$wheelhouse" && mv "$tmp" "$wheelhouse"
fi

wheel=$(ls "$wheelhouse"/llama_cpp_python-*.whl | head -n1)
"$python" -m pip install --force-reinstall --no-deps "$wheel"
"$python" -m pip install "llama-cpp-python[server]==$version"  # the extra's dependencies; the wheel stays

cat > "$record" <<JSON
{"package": "llama-cpp-python", "version": "$version", "build": "$mode", "cmake_args": "$cmake_args", "key": "$key", "wheel": "$wheel"}
JSON
echo "installed llama-cpp-python $version ($mode build) from $wheel"
