"""Provider specs: built-ins, missing keys and extras, factory strings and entry-point plug-ins."""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel
from tests.support.required import missing_part
from tests.support.scripted_provider import ScriptedChat

from visfeed.errors import ConfigError, ProviderError
from visfeed.state.llm import LLMSettings
from visfeed.tools.llm import LLMClient, ProviderHandle, resolve_provider
from visfeed.tools.llm.local_server import missing_local_modules
from visfeed.tools.llm.providers import BUILTIN_PROVIDERS, ProviderRequest, proxy_for


class TransientError(Exception):
    """Looks like another SDK's HTTP error: only a status_code attribute."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"status {status_code}")
        self.status_code = status_code


def make_scripted(model: str = "scripted-1", script: list[Any] | None = None) -> ScriptedChat:
    return ScriptedChat(script=script or ['{"label": "ok"}'], model_name=model)


def make_not_a_model() -> str:
    return "nope"


class Label(BaseModel):
    label: str


def test_openai_needs_a_key() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        resolve_provider("openai:gpt-4o-mini", env={})
    handle = resolve_provider("openai:gpt-4o-mini", env={"OPENAI_API_KEY": "sk-x"})
    assert (handle.provider, handle.model, handle.call_style) == ("openai", "gpt-4o-mini", "openai")
    assert handle.supports_native_structured and handle.supports_tools and not handle.free


def test_compatible_needs_a_base_url_and_model() -> None:
    with pytest.raises(ConfigError, match="base URL"):
        resolve_provider("openai-compatible:llama3", env={})
    with pytest.raises(ConfigError, match="model name"):
        resolve_provider("openai-compatible:", base_url="http://127.0.0.1:1/v1", env={})
    handle = resolve_provider(
        "openai-compatible:llama3", base_url="http://user:secret@gpu-box:8000/v1/?token=abc", env={}
    )
    assert handle.structured_mode == "json_object_schema" and not handle.supports_native_structured
    assert handle.endpoint == "http://gpu-box:8000/v1"  # credentials never enter cache keys or logs


def test_unknown_provider_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown LLM provider 'gpt5'.*local, eyes, openai:MODEL, openai-compatible"):
        resolve_provider("gpt5")


def test_builtin_providers_are_builders_loaded_by_name() -> None:
    """Each registry line names an importable builder; a new one is reached without an edit to the resolver."""
    import importlib

    for name, ref in BUILTIN_PROVIDERS.items():
        module, _, attr = ref.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), name
    seen: list[tuple[str | None, ProviderRequest]] = []

    def builder(rest: str | None, req: ProviderRequest) -> ProviderHandle:
        seen.append((rest, req))
        return ProviderHandle(provider="toy", model=rest or "default", chat_model=make_scripted())

    module = type(sys)("toy_builtin_provider")
    module.build = builder  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "toy_builtin_provider", module)
        mp.setitem(BUILTIN_PROVIDERS, "toy", "toy_builtin_provider:build")
        handle = resolve_provider("toy:m-1", timeout_s=7.0, options={"k": 1}, env={"OPENAI_API_KEY": "sk-toy"})
    assert (handle.provider, handle.model) == ("toy", "m-1")
    rest, req = seen[0]
    assert rest == "m-1" and req.timeout_s == 7.0 and req.options == {"k": 1}
    assert "sk-toy" not in repr(req)  # a request may be logged: its environment and key are not shown


def test_the_process_environment_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tools take the environment from their caller: the key in os.environ counts only when it is passed."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-process")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        resolve_provider("openai:gpt-4o-mini")
    handle = resolve_provider("openai:gpt-4o-mini", env=os.environ)
    assert handle.redact("key sk-from-the-process") == "key ***"  # the passed key is the handle's secret


PROXY_ENVS = [
    {},
    {"HTTPS_PROXY": "http://corp:3128"},
    {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"},
    {"HTTPS_PROXY": "http://upper:1", "https_proxy": ""},
    {"https_proxy": "http://p:1", "NO_PROXY": "api.openai.com"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://q:2", "no_proxy": ".example.org, gpu-box"},
    {"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"},
    {"http_proxy": "http://p:1", "REQUEST_METHOD": "GET"},
    {"http_proxy": "http://p:1", "no_proxy": "*"},
    {"http_proxy": "http://p:1", "https_proxy": "http://p:1", "no_proxy": " * , gpu-box:8000, EXAMPLE.org"},
]
URLS = ["https://api.openai.com/v1", "http://gpu-box:8000/v1", "http://127.0.0.1:8080/v1", "https://a.example.org/v1"]


@pytest.mark.parametrize("env", PROXY_ENVS)
def test_proxies_from_env_match_what_urllib_read_from_the_process(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy a provider gets from ``env`` is the one it got before, when urllib read ``os.environ``."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for url in URLS:
        host = urlsplit(url).hostname or ""
        loopback = host in ("127.0.0.1", "localhost", "::1")
        before = (
            None
            if loopback or urllib.request.proxy_bypass(host)
            else urllib.request.getproxies().get("https" if url.startswith("https") else "http")
        )
        assert proxy_for(url, env) == before, (url, env)


def test_factory_string_plugin_runs_through_the_client() -> None:
    script = [TransientError(503), 'Here you go: ```json\n{"label": "cat"}\n```']
    handle = resolve_provider(f"{__name__}:make_scripted", options={"script": script})
    assert handle.provider == f"{__name__}:make_scripted" and handle.model == "scripted-1"
    assert handle.structured_mode == "prompt" and not handle.supports_tools  # no bind_tools on this model
    client = LLMClient(handle, LLMSettings(backoff_base_s=0.01, backoff_max_s=0.02))
    assert asyncio.run(client.astructured([HumanMessage("label it")], Label, task="t")) == Label(label="cat")
    assert client.records[0].attempts == 2  # the 503 from an unknown SDK was retried
    assert client.records[0].tokens_estimated  # no usage from this model: estimated, flagged


def test_factory_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="cannot import"):
        resolve_provider("no_such_pkg.mod:factory")
    with pytest.raises(ConfigError, match="must return a LangChain BaseChatModel"):
        resolve_provider(f"{__name__}:make_not_a_model")


def test_entry_point_plugin_gets_the_model_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "visfeed_fakeplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: visfeed-fakeplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[visfeed.llm_providers]\nfakeplug = {__name__}:make_scripted\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    handle = resolve_provider("fakeplug:tiny-7b")
    assert isinstance(handle, ProviderHandle)
    assert (handle.provider, handle.model) == ("fakeplug", "tiny-7b")
    with pytest.raises(ConfigError, match="fakeplug"):  # installed plug-ins are listed in the error
        resolve_provider("nothere")


def test_local_without_the_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail, as if absent
    with pytest.raises(ProviderError, match=r"pip install 'visfeed\[local\]'.*--provider openai:"):
        resolve_provider("local")


def test_local_handle_is_lazy() -> None:
    if missing_local_modules():
        missing_part("the 'local' extra is not installed: pip install 'visfeed[local]'")
    with resolve_provider("local") as handle:
        assert handle.provider == "local" and handle.free and not handle.supports_tools
        assert handle.structured_mode == "json_object_schema"
        assert not handle.ready and handle.server is not None and handle.server.pid is None
    tools_handle = resolve_provider("local", local_chat_format="chatml-function-calling")
    assert tools_handle.supports_tools
    replicas = resolve_provider("local", local_replicas=2, local_n_threads=1)
    assert len(replicas.servers) == 2 and all(s.n_threads == 1 for s in replicas.servers)
    with pytest.raises(ConfigError, match="local_replicas"):
        resolve_provider("local", local_replicas=0)


def test_request_kwargs_follow_each_dialect() -> None:
    openai = resolve_provider("openai:gpt-4o", env={"OPENAI_API_KEY": "k"})
    compat = resolve_provider("openai-compatible:m", base_url="http://127.0.0.1:9/v1", env={})
    fmt = {"type": "json_object"}
    assert openai.request_kwargs(temperature=0.5, max_tokens=10, seed=1, response_format=fmt) == {
        "temperature": 0.5,
        "max_completion_tokens": 10,
        "seed": 1,
        "extra_body": {"response_format": fmt},
    }
    assert compat.request_kwargs(temperature=None, max_tokens=10, seed=None) == {"extra_body": {"max_tokens": 10}}
