"""The HTTP client every upstream call goes through: httpx's API over aiohttp's connection pool.

httpcore's pool scans every connection for every request; at 32 requests in flight on this
2-core machine that costs ~3.9 ms of CPU per request, against ~0.7 ms through aiohttp
(measured with bench/gate_bench.py; see docs/operations.md). Callers keep the httpx API and its
exception types (httpx_aiohttp maps aiohttp's errors onto httpx's).
"""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport


def make_client(max_connections: int = 64, timeout_s: float = 60.0, connect_s: float = 5.0) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(transport=AiohttpTransport(limits=limits),
                             timeout=httpx.Timeout(timeout_s, connect=connect_s), limits=limits)


def is_timeout(exc: BaseException) -> bool:
    """True for a real timeout. httpx_aiohttp maps every aiohttp connection error (a reset, a
    server that hung up) to ``httpx.ConnectTimeout``; look at the original error to tell them apart."""
    import asyncio

    import aiohttp

    cause = exc.__cause__
    if isinstance(cause, (aiohttp.ServerTimeoutError, asyncio.TimeoutError, TimeoutError)):
        return True
    if isinstance(cause, aiohttp.ClientError):
        return False
    return isinstance(exc, httpx.TimeoutException)
