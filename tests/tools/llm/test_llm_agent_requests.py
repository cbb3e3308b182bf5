"""What agent-mode requests look like on the wire, and which refusals are not retried (loopback fault server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from tests.support.fault_server import FaultServer, reply, status, tool_call_reply
from tests.tools.llm.test_llm_client_faults import MESSAGES, make_client

from visfeed.errors import ConfigError, ProviderError

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look up a class.",
        "parameters": {
            "type": "object",
            "properties": {"name": {"type": "string", "enum": ["apple", "pear"]}},
            "required": ["name"],
        },
    },
}
# llama-cpp-python's server answers the old null-content assistant turn with this (HTTP 500)
VALIDATION_500 = (
    "7 validation errors for ChatCompletionRequest messages.2.ChatCompletionRequestAssistantMessage.content: "
    "Input should be a valid string"
)
OVERFLOW_400 = (
    "This model's maximum context length is 4096 tokens. However, you requested 5120 tokens "
    "(4864 in the messages, 256 in the completion). Please reduce the length of the messages or completion."
)


def test_assistant_tool_call_turn_goes_out_with_empty_string_content(fault_server: FaultServer) -> None:
    fault_server.script(tool_call_reply("lookup", {"name": "apple"}), reply("done"))
    client = make_client(fault_server)
    first = asyncio.run(client.ainvoke(MESSAGES, tools=[LOOKUP], task="agent"))
    convo = [*MESSAGES, first, ToolMessage(content="an apple is red", tool_call_id=first.tool_calls[0]["id"])]
    asyncio.run(client.ainvoke(convo, tools=[LOOKUP], task="agent"))
    body = fault_server.requests[1].body
    assert body is not None
    assistant = body["messages"][2]
    assert assistant["role"] == "assistant" and assistant["tool_calls"][0]["function"]["name"] == "lookup"
    assert assistant["content"] == ""  # not null: llama.cpp's server rejects null


def test_forced_tool_choice_names_the_tool_and_sends_its_schema(fault_server: FaultServer) -> None:
    fault_server.script(tool_call_reply("lookup", {"name": "pear"}))
    client = make_client(fault_server)
    answer = asyncio.run(client.ainvoke(MESSAGES, tools=[LOOKUP], tool_choice="lookup", task="agent"))
    assert answer.tool_calls[0]["args"] == {"name": "pear"}
    body = fault_server.requests[0].body
    assert body is not None
    assert body["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert body["tools"][0]["function"]["parameters"]["properties"]["name"]["enum"] == ["apple", "pear"]
    assert client.handle.forces_tools


def test_forcing_a_tool_not_given_is_a_config_error(fault_server: FaultServer) -> None:
    client = make_client(fault_server)
    with pytest.raises(ConfigError, match="submit"):
        asyncio.run(client.ainvoke(MESSAGES, tools=[LOOKUP], tool_choice="submit", task="agent"))
    assert fault_server.request_count == 0


@pytest.mark.parametrize(
    ("code", "body", "reason"), [(500, VALIDATION_500, "validation"), (400, OVERFLOW_400, "context")]
)
def test_a_rejected_request_fails_at_once_with_the_servers_reason(
    fault_server: FaultServer, code: int, body: str, reason: str
) -> None:
    fault_server.script(status(code, message=body), reply("never sent"))
    client = make_client(fault_server, settings={"max_retries": 3})
    with pytest.raises(ProviderError, match="not retried") as err:
        asyncio.run(client.ainvoke(MESSAGES, tools=[LOOKUP], task="agent"))
    assert reason in str(err.value) and err.value.status == code
    assert fault_server.request_count == 1
    assert client.records[-1].attempts == 1 and client.records[-1].error is not None


def test_a_plain_server_error_is_still_retried(fault_server: FaultServer) -> None:
    fault_server.script(status(500, message="worker crashed"), reply("fine"))
    client = make_client(fault_server, settings={"max_retries": 3})
    answer: Any = asyncio.run(client.ainvoke(MESSAGES, task="agent"))
    assert isinstance(answer, AIMessage) and answer.content == "fine"
    assert fault_server.request_count == 2
