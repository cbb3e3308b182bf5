"""The tool-calling chat path (agent mode) reads the response cache like the structured path does.

A resumed agent run must not pay again for turns it already had; the resume and cache tests went through
the structured path only, so a client that skipped the cache read on this path passed the suite.
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import tool

from support.scripted_provider import ToolScriptedChat
from visfeed.state.llm import LLMSettings
from visfeed.tools.llm import LLMClient, ProviderHandle, ResponseCache


@tool
def score_descriptions(class_name: str, descriptions: list[str]) -> str:
    """Score trial descriptions of one class."""
    return "accuracy 0.5"


def test_a_repeated_tool_turn_is_served_from_the_cache(tmp_path: Path) -> None:
    chat = ToolScriptedChat(attrs={"lemon": ["yellow", "oval"]})
    handle = ProviderHandle(provider="scripted", model="scripted-1", chat_model=chat, supports_tools=True)
    messages = [SystemMessage("You improve class descriptions."), HumanMessage('Class: "lemon"')]
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        client = LLMClient(handle, LLMSettings(), cache=cache)
        try:
            first = client.invoke(messages, tools=[score_descriptions], task="agent")
            second = client.invoke(messages, tools=[score_descriptions], task="agent")
        finally:
            client.close()
    assert first.tool_calls and first.tool_calls[0]["name"] == "score_descriptions"
    assert second.tool_calls == first.tool_calls
    assert chat.state["calls"] == 1, "the second identical turn went to the model instead of the cache"
    assert client.totals.cache_hits == 1
