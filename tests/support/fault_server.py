"""A scriptable OpenAI-compatible fault server on loopback, for tests.

It exists so that retries, timeouts, budget stops and the cache are tested against a real HTTP server and
the real ``openai``/``langchain-openai`` client stack, not a mock of the client. Each request to
``/v1/chat/completions`` pops the next scripted :class:`Action` (or uses the default one): a valid reply,
an HTTP error with an optional ``retry-after``, a malformed body, empty choices, a slow reply, or a dropped
connection. The server records every request (body and headers) and counts requests in flight, so tests
can assert "zero HTTP requests" on a cache hit or "never more than 2 in flight" for bounded concurrency.

Usage::

    with FaultServer() as srv:
        srv.script(status(429, retry_after=0.1), reply('{"a": 1}'))
        ... point a client at srv.url ...
        assert srv.request_count == 2
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Kind = Literal["reply", "status", "malformed", "empty_choices", "drop"]


@dataclass(frozen=True)
class Action:
    """What the server does with one request."""

    kind: Kind
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    prompt_tokens: int = 10
    completion_tokens: int = 5
    finish_reason: str = "stop"
    status: int = 200
    retry_after: float | None = None
    delay_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def reply(
    content: str | None = "{}",
    *,
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    finish_reason: str = "stop",
    delay_s: float = 0.0,
    tool_calls: list[dict[str, Any]] | None = None,
) -> Action:
    """A valid chat completion with ``content`` and the given token usage."""
    return Action(
        "reply",
        content=content,
        tool_calls=tool_calls,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=finish_reason,
        delay_s=delay_s,
    )


def tool_call_reply(name: str, arguments: dict[str, Any], **kw: Any) -> Action:
    """A valid chat completion that calls one tool."""
    call = {
        "id": f"call_{uuid.uuid4().hex[:8]}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
    return reply(None, tool_calls=[call], finish_reason="tool_calls", **kw)


def status(code: int, *, retry_after: float | None = None, delay_s: float = 0.0, message: str | None = None) -> Action:
    """An HTTP error response with an OpenAI-style error body (``message``: the server's words)."""
    return Action("status", content=message, status=code, retry_after=retry_after, delay_s=delay_s)


def malformed() -> Action:
    """HTTP 200 with a JSON content type but a body that is not JSON."""
    return Action("malformed")


def empty_choices() -> Action:
    """HTTP 200 with a well-formed completion whose ``choices`` list is empty."""
    return Action("empty_choices")


def slow(delay_s: float, content: str | None = "{}") -> Action:
    """A valid reply sent only after ``delay_s`` seconds (to trip client timeouts)."""
    return reply(content, delay_s=delay_s)


def drop() -> Action:
    """Close the connection without sending any response."""
    return Action("drop")


@dataclass
class Recorded:
    """One received request."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


class FaultServer:
    """Threaded loopback HTTP server speaking enough of the OpenAI chat API for client tests."""

    def __init__(self, *, default: Action | None = None, model: str = "fault-model") -> None:
        self.default = default or reply("{}")
        # Answers by request body (e.g. by the picture sent) where a fixed script cannot; None: script/default.
        self.answer_by_body: Callable[[dict[str, Any]], Action | None] | None = None
        self.model = model
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._queue: deque[Action] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- control
    def script(self, *actions: Action) -> None:
        """Queue actions for the next requests, in order; later requests get the default."""
        with self._lock:
            self._queue.extend(actions)

    @property
    def request_count(self) -> int:
        """Number of chat-completion requests received so far."""
        with self._lock:
            return sum(1 for r in self.requests if r.path.endswith("/chat/completions"))

    @property
    def url(self) -> str:
        """Base URL to give an OpenAI client (ends in ``/v1``)."""
        if self._httpd is None:
            raise RuntimeError("FaultServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FaultServer:
        """Bind a free loopback port and serve in a daemon thread."""
        server = self

        class Handler(_Handler):
            fault = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fault-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- internal
    def _next(self, body: dict[str, Any]) -> Action:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            responder = self.answer_by_body
        answer = responder(body) if responder is not None else None
        return answer if answer is not None else self.default


class _Handler(BaseHTTPRequestHandler):
    fault: FaultServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        return

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": self.fault.model, "object": "model"}]})
        else:
            self._send_json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        srv = self.fault
        with srv._lock:
            srv.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            self._answer(srv._next(body or {}), body or {})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout); that is the point of a slow reply
        finally:
            with srv._lock:
                srv.in_flight -= 1

    def _answer(self, action: Action, body: dict[str, Any]) -> None:
        if action.delay_s:
            time.sleep(action.delay_s)
        if action.kind == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if action.kind == "status":
            headers = {}
            if action.retry_after is not None:
                headers["retry-after"] = f"{action.retry_after:g}"
            text = action.content or f"scripted error {action.status}"
            payload = {"error": {"message": text, "type": "fault", "code": None}}
            self._send_json(action.status, payload, headers)
            return
        if action.kind == "malformed":
            self._send_raw(200, b'{"id": "x", "choices": [ {"message": ', "application/json")
            return
        completion: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.fault.model),
            "choices": [],
            "usage": {
                "prompt_tokens": action.prompt_tokens,
                "completion_tokens": action.completion_tokens,
                "total_tokens": action.prompt_tokens + action.completion_tokens,
            },
        }
        if action.kind == "reply":
            message: dict[str, Any] = {"role": "assistant", "content": action.content}
            if action.tool_calls:
                message["tool_calls"] = action.tool_calls
            completion["choices"] = [
                {"index": 0, "message": message, "finish_reason": action.finish_reason, "logprobs": None}
            ]
        self._send_json(200, completion)

    def _send_json(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(code, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(self, code: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
