"""httpcore's connection pool, less three trips through the event loop a request.

httpcore guards each connection with anyio locks, and an anyio lock nobody holds still
yields to the event loop when taken (a checkpoint, to keep Trio's semantics). A request
takes three: its connection's request lock and the HTTP/1.1 state lock before it is sent,
and the state lock again once its answer is read. With a sync's requests in flight, each
yield puts the request behind every other task that is ready, such as an answer being
parsed, so the waits grow with the load, and most with a slow host. anyio's
``fast_acquire`` takes a free lock without the yield; httpcore merged its use
(encode/httpcore#953) and reverted it the same day (#1002). Until it is back, the
connections of this pool swap their locks for such ones: the request lock when the
connection is made, the HTTP/1.1 state lock after its first request (which makes it).
Only the locks change: what each connection does is httpcore's. The figures are in
docs/architecture.md (Data flow, the sync); tests/providers/test_pool.py counts the turns
on the pinned httpcore, so an upgrade that changes what this reaches into fails there.
"""

from __future__ import annotations

import ssl
from typing import Any

import anyio
import httpcore
from httpcore._synchronization import AsyncLock


class FreeLock(AsyncLock):
    """httpcore's lock, taken without a yield when nobody holds it (under asyncio)."""

    def setup(self) -> None:
        super().setup()
        if self._backend == "asyncio":
            self._anyio_lock = anyio.Lock(fast_acquire=True)


class _Connection(httpcore.AsyncHTTPConnection):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._request_lock = FreeLock()

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        response = await super().handle_async_request(request)
        # The HTTP/1.1 connection is made by the first request; its state lock is free
        # again by now (held only while the state changes), so it can be swapped.
        inner = self._connection
        if isinstance(inner, httpcore.AsyncHTTP11Connection) and not isinstance(
                inner._state_lock, FreeLock):
            inner._state_lock = FreeLock()
        return response


class Pool(httpcore.AsyncConnectionPool):
    """An HTTP/1.1 pool of such connections, direct (no proxy). It takes only the options
    its connections are built with, so none can be passed and silently dropped."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None, keepalive_expiry: float | None,
                 network_backend: httpcore.AsyncNetworkBackend, max_connections: int | None = 10,
                 max_keepalive_connections: int | None = None) -> None:
        super().__init__(ssl_context=ssl_context, keepalive_expiry=keepalive_expiry,
                         network_backend=network_backend, max_connections=max_connections,
                         max_keepalive_connections=max_keepalive_connections)
        self.connection_options = {"ssl_context": ssl_context,
                                   "keepalive_expiry": keepalive_expiry,
                                   "network_backend": network_backend}

    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        return _Connection(origin=origin, **self.connection_options)
