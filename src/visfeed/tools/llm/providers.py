"""Provider selection by one string: ``local``, ``openai:MODEL``, ``openai-compatible:MODEL``, plug-ins.

Why: the optimizer must run unchanged on the embedded model, on OpenAI, on any OpenAI-compatible server
and on any LangChain chat model a user plugs in. :func:`resolve_provider` turns a spec string into a
:class:`ProviderHandle`: the chat model plus the facts the client needs (how to ask for structured
output, whether tools work, how to pass sampling parameters, whether calls cost money) and ownership of
the local server's lifetime. Plug-ins are a ``package.module:factory`` string or an installed package's
entry point in the ``visfeed.llm_providers`` group; a factory returns a ``BaseChatModel`` (or a ready
``ProviderHandle`` when it wants to declare capabilities). Providers that ship with visfeed but build on
this package (the eyes, :mod:`visfeed.tools.world.eyes.provider`) are named in :data:`BUILTIN_PROVIDERS` by
``module:builder`` and loaded on first use, as entry points are, so nothing here imports them back.

Nothing here reads the process environment: the caller passes it (``env``), so a key or proxy comes
from where the caller says, and tests need no patched ``os.environ``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class ProviderRequest:
    """Everything :func:`resolve_provider` was asked, for the builders of :data:`BUILTIN_PROVIDERS`."""

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    temperature: float | None = None
    timeout_s: float = 120.0
    structured_mode: StructuredMode | None = None
    supports_tools: bool | None = None
    local_chat_format: str | None = None
    local_n_ctx: int = 4096
    local_seed: int = 0
    local_n_threads: int | None = None
    local_replicas: int = 1
    local_log_path: str | Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


ProviderBuilder = Callable[[str | None, ProviderRequest], ProviderHandle]
"""A built-in provider: (the part of the spec after ``NAME:`` or None, the request) -> its handle."""

BUILTIN_PROVIDERS: dict[str, str] = {
    "eyes": "visfeed.tools.world.eyes.provider:eyes_provider",
}
"""Providers shipped with visfeed outside this package: name -> ``module:builder`` (a :data:`ProviderBuilder`)."""


def _redact_url(url: str) -> str:
    """The URL without user info, query or fragment (it enters cache keys and logs)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def env_proxies(env: Mapping[str, str]) -> dict[str, str]:
    """Scheme -> proxy from ``*_proxy`` variables in ``env``, read the way urllib reads ``os.environ``.

    Any case counts, a lower-case name wins over its upper-case twin (an empty lower-case one removes
    it), and under CGI (``REQUEST_METHOD`` set) an upper-case ``HTTP_PROXY`` is ignored: a client can set
    that one through a ``Proxy:`` header. ``no_proxy`` lands under ``"no"``.
    """
    proxies = {name.lower()[:-6]: value for name, value in env.items() if value and name.lower().endswith("_proxy")}
    if "REQUEST_METHOD" in env:
        proxies.pop("http", None)
    for name, value in env.items():
        if name.endswith("_proxy"):  # lower-case names, applied last
            if value:
                proxies[name.lower()[:-6]] = value
            else:
                proxies.pop(name.lower()[:-6], None)
    return proxies


def _bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``no_proxy`` (``*``, or comma-separated names of the host or a domain above it) exempts ``host``."""
    if no_proxy == "*":
        return True
    host = host.lower()
    for name in (n.strip().lstrip(".").lower() for n in no_proxy.split(",")):
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def proxy_for(url: str, env: Mapping[str, str]) -> str | None:
    """The proxy ``env`` names for ``url`` (none for loopback or a ``no_proxy`` host)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    proxies = env_proxies(env)
    if host in ("127.0.0.1", "localhost", "::1") or _bypassed(host, proxies.get("no", "")):
        return None
    return proxies.get(parts.scheme)


def _chat_openai(
    model: str,
    base_url: str | None,
    api_key: str,
    temperature: float | None,
    timeout_s: float,
    env: Mapping[str, str],
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
        http_async_client=per_loop_async_client(
            timeout_s, proxy=proxy_for(base_url or "https://api.openai.com/v1", env)
        ),
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
    - ``openai:MODEL``: OpenAI; the key is ``api_key`` or ``OPENAI_API_KEY`` in ``env``.
    - ``openai-compatible:MODEL``: any OpenAI-compatible server at ``base_url`` (vLLM, Ollama,
      llama.cpp, LM Studio); key from ``api_key`` or ``OPENAI_API_KEY`` in ``env``, else a placeholder.
    - ``eyes`` (or ``eyes:/path/eyes.pt``), and any other name in :data:`BUILTIN_PROVIDERS`: built by
      its module (:func:`visfeed.tools.world.eyes.provider.eyes_provider`: the embedded stand-in for a
      multimodal LLM; ``options={"no_text": True}`` leaves its SmolLM2 out).
    - ``NAME`` or ``NAME:MODEL``: a factory registered under the ``visfeed.llm_providers`` entry point.
    - ``package.module:factory``: any callable returning a ``BaseChatModel`` (or a ``ProviderHandle``).

    ``local_replicas`` starts that many local servers (``llama_cpp.server`` answers one request at a
    time) so that ``max_concurrency`` > 1 really runs calls in parallel; give each ``local_n_threads``
    so that replicas times threads fits the cores. ``options`` are keyword arguments for plug-in
    factories. ``env`` is where ``OPENAI_API_KEY`` and the ``*_proxy`` variables are looked up; nothing
    here reads ``os.environ``: a caller that wants the process environment passes it (a run's builder,
    :func:`visfeed.agents.resources.provider_handle`, and :func:`visfeed.evals.image_side.open_mllm` do).
    """
    req = ProviderRequest(
        base_url=base_url, api_key=api_key, temperature=temperature, timeout_s=timeout_s,
        structured_mode=structured_mode, supports_tools=supports_tools, local_chat_format=local_chat_format,
        local_n_ctx=local_n_ctx, local_seed=local_seed, local_n_threads=local_n_threads,
        local_replicas=local_replicas, local_log_path=local_log_path, options=dict(options or {}), env=dict(env or {}),
    )  # fmt: skip
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    if kind == "local":
        return _local_handle(rest or None, req)
    if kind in ("openai", "openai-compatible"):
        return _openai_handle(spec, kind, rest, req)
    if kind in BUILTIN_PROVIDERS:
        return _builtin_handle(kind, rest or None, req)
    return _plugin_handle(spec, req.options, structured_mode, supports_tools)


def _openai_handle(spec: str, kind: str, model: str, req: ProviderRequest) -> ProviderHandle:
    """OpenAI, or any server that speaks its API at ``req.base_url``."""
    if not model:
        raise ConfigError(f"provider {spec!r} needs a model name, e.g. '{kind}:gpt-4o-mini'")
    if kind == "openai":
        key = req.api_key or req.env.get("OPENAI_API_KEY")
        if not key:
            raise ConfigError(
                f"provider {spec!r} needs an OpenAI API key: set OPENAI_API_KEY, or use "
                "--provider local for the embedded offline model"
            )
    else:
        if not req.base_url:
            raise ConfigError(f"provider {spec!r} needs a base URL, e.g. --base-url http://localhost:8000/v1")
        key = req.api_key or req.env.get("OPENAI_API_KEY") or _NO_KEY
    url, temperature, timeout_s, env = req.base_url, req.temperature, req.timeout_s, req.env
    return ProviderHandle(
        provider=kind,
        model=model,
        factory=lambda: _chat_openai(model, url, key, temperature, timeout_s, env),
        supports_tools=True if req.supports_tools is None else req.supports_tools,
        structured_mode=req.structured_mode or ("openai_json_schema" if kind == "openai" else "json_object_schema"),
        call_style=kind,  # type: ignore[arg-type]
        endpoint=_redact_url(url) if url else None,
        default_params={"temperature": temperature},
        secrets=(key,),
        accepts_images=True,  # the model may still refuse: vision.ask_about_images turns that into a clear error
    )


def _builtin_handle(name: str, rest: str | None, req: ProviderRequest) -> ProviderHandle:
    """The handle of a provider in :data:`BUILTIN_PROVIDERS`, its module imported now."""
    module, _, attr = BUILTIN_PROVIDERS[name].partition(":")
    builder: ProviderBuilder = getattr(importlib.import_module(module), attr)
    return builder(rest, req)


def _local_handle(model_path: str | None, req: ProviderRequest) -> ProviderHandle:
    """The embedded SmolLM2 (or the GGUF file at ``model_path``) behind ``req.local_replicas`` local servers."""
    replicas, log_path, chat_format = req.local_replicas, req.local_log_path, req.local_chat_format
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
            n_ctx=req.local_n_ctx,
            seed=req.local_seed,
            n_threads=req.local_n_threads,
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
        return [_chat_openai(alias, url, _NO_KEY, req.temperature, req.timeout_s, req.env) for url in urls]

    # The cache identity of a local model is its file, not the (per-run) port.
    endpoint = None if model_path is None else f"file:{Path(model_path).name}:{_size(model_path)}"
    return ProviderHandle(
        provider="local",
        model=alias if model_path is not None else DEFAULT_LOCAL_MODEL,
        factory=build,
        supports_tools=(chat_format in _FUNCTION_CALLING_FORMATS) if req.supports_tools is None else req.supports_tools,
        structured_mode=req.structured_mode or "json_object_schema",
        call_style="openai-compatible",
        endpoint=endpoint,
        free=True,
        servers=servers,
        default_params={"temperature": req.temperature},
        accepts_images=False,
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
        known = ", ".join(["local", *BUILTIN_PROVIDERS, "openai:MODEL", "openai-compatible:MODEL", *sorted(eps)])
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
