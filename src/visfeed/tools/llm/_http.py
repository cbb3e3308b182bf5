"""An httpx transport that keeps one connection pool per asyncio event loop.

Why: ``langchain-openai`` shares one cached ``httpx.AsyncClient`` per base URL across all ``ChatOpenAI``
objects. Its pooled connections belong to the event loop that opened them, so a second ``asyncio.run``
(a sync wrapper, a test, a resumed run) reuses a dead connection and fails with "Event loop is closed".
Giving each provider its own client whose transport keys its pool by the running loop removes that trap
while keeping keep-alive connections within a loop.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import httpx


class PerLoopAsyncTransport(httpx.AsyncBaseTransport):
    """Delegates to one ``httpx.AsyncHTTPTransport`` per running event loop."""

    def __init__(self, **transport_kwargs: Any) -> None:
        self._kwargs = transport_kwargs
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncHTTPTransport] = (
            weakref.WeakKeyDictionary()
        )

    def _transport(self) -> httpx.AsyncHTTPTransport:
        loop = asyncio.get_running_loop()
        transport = self._by_loop.get(loop)
        if transport is None:
            transport = httpx.AsyncHTTPTransport(**self._kwargs)
            self._by_loop[loop] = transport
        return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request through the current loop's pool."""
        return await self._transport().handle_async_request(request)

    async def aclose(self) -> None:
        """Close the current loop's pool (pools of finished loops die with their loop)."""
        loop = asyncio.get_running_loop()
        transport = self._by_loop.pop(loop, None)
        if transport is not None:
            await transport.aclose()


def per_loop_async_client(timeout_s: float, *, proxy: str | None = None) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` safe to use from several event loops in turn.

    An explicit transport disables httpx's own proxy lookup, so the caller passes the proxy (if any).
    """
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    return httpx.AsyncClient(
        transport=PerLoopAsyncTransport(limits=limits, proxy=proxy),
        timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
        follow_redirects=True,
    )
