"""Pictures to multimodal providers over real HTTP: payload, cache by content, budget, rejection, cost."""

from __future__ import annotations

import asyncio
import base64
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.support.fault_server import FaultServer, reply, status

from visfeed.errors import BudgetExceeded, ConfigError
from visfeed.state.llm import LLMSettings
from visfeed.tools.llm import Budget, LLMClient, ResponseCache, resolve_provider
from visfeed.tools.llm.vision import DESCRIBE_PROMPT, ask_about_images, check_accepts_images, project_cost

REJECTION = "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"


def _client(url: str, cache: Path | None = None, budget: Budget | None = None) -> LLMClient:
    handle = resolve_provider("openai-compatible:vision-1", base_url=url)
    settings = LLMSettings(max_retries=0, max_tokens=64)
    return LLMClient(handle, settings, cache=ResponseCache(cache) if cache else None, budget=budget)


def _images_of(body: dict[str, Any]) -> list[bytes]:
    """The pictures a chat-completion request carried, decoded from their base64 data URLs."""
    found = []
    for message in body["messages"]:
        content = message["content"]
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "image_url":
                url = block["image_url"]["url"]
                assert url.startswith("data:image/png;base64,")
                found.append(base64.b64decode(url.partition(",")[2], validate=True))
    return found


def test_the_server_receives_the_exact_picture_and_a_repeat_is_a_cache_hit(
    fault_server: FaultServer, image_files: list[str], tmp_path: Path
) -> None:
    fault_server.default = reply("a red round fruit")
    client = _client(fault_server.url, tmp_path / "cache.sqlite")
    paths = image_files[:3]
    answers = asyncio.run(ask_about_images(client, paths, DESCRIBE_PROMPT, task="image_describe"))
    assert answers == ["a red round fruit"] * 3
    sent = list(fault_server.requests)
    pictures = [_images_of(r.body or {}) for r in sent]
    assert sorted(p[0] for p in pictures) == sorted(Path(p).read_bytes() for p in paths)
    assert all(len(p) == 1 for p in pictures)
    texts = [b["text"] for r in sent for b in (r.body or {})["messages"][0]["content"] if b["type"] == "text"]
    assert texts == [DESCRIBE_PROMPT] * 3
    # a second client on the same cache file, the same pictures under new names: no request at all
    moved = []
    for i, p in enumerate(paths):
        moved.append(str(tmp_path / f"copy{i}.png"))
        shutil.copy(p, moved[-1])
    again = _client(fault_server.url, tmp_path / "cache.sqlite")
    assert asyncio.run(ask_about_images(again, moved, DESCRIBE_PROMPT, task="image_describe")) == answers
    assert fault_server.request_count == 3 and again.totals.cache_hits == 3 and again.totals.calls == 0
    # another question about the same picture is another key
    asyncio.run(ask_about_images(again, moved[:1], "Which fruit is it?", task="image_label"))
    assert fault_server.request_count == 4


def test_a_provider_that_rejects_images_is_a_clear_usage_error(
    fault_server: FaultServer, image_files: list[str]
) -> None:
    fault_server.default = status(400, message=REJECTION)
    client = _client(fault_server.url)
    with pytest.raises(ConfigError, match=r"openai-compatible:vision-1 rejected an image.*mmproj"):
        asyncio.run(ask_about_images(client, image_files[:2], DESCRIBE_PROMPT, task="image_describe"))
    # a text-only provider is refused before anything is sent (the local model is not started)
    with resolve_provider("local") as local, pytest.raises(ConfigError, match="does not take images"):
        check_accepts_images(local)
    assert not local.ready


def test_image_calls_spend_the_budget_with_the_pictures_counted(
    fault_server: FaultServer, image_files: list[str]
) -> None:
    fault_server.default = reply("ok")
    budget = Budget(max_calls=2)
    client = _client(fault_server.url, budget=budget)
    asyncio.run(ask_about_images(client, image_files[:2], DESCRIBE_PROMPT, task="image_describe"))
    with pytest.raises(BudgetExceeded):
        asyncio.run(ask_about_images(client, image_files[2:3], DESCRIBE_PROMPT, task="image_describe"))
    assert fault_server.request_count == 2 and budget.used_calls == 2
    assert client.records[0].prompt_tokens == 10  # the server's usage; the reservation counted the picture


def test_projected_cost_counts_calls_pictures_and_prices() -> None:
    handle = resolve_provider("openai:gpt-4o-mini", api_key="sk-test-key")
    p = project_cost(handle, 100, [DESCRIBE_PROMPT, "label?"], max_tokens=50)
    assert p.calls == 200 and p.completion_tokens == 10_000
    assert p.prompt_tokens == 100 * ((len(DESCRIBE_PROMPT) // 4) + 85 + 1 + 85)
    assert p.cost_usd == pytest.approx((p.prompt_tokens * 0.15 + p.completion_tokens * 0.60) / 1e6)
    unknown = resolve_provider("openai-compatible:my-vlm", base_url="http://127.0.0.1:9/v1")
    assert project_cost(unknown, 10, ["x"], max_tokens=5).cost_usd is None
