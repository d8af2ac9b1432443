"""The transport every provider request leaves through: it resolves the host itself,
refuses internal addresses an admin did not allow (`hosts.HostRules`), and connects to
the address it checked, so a name cannot resolve to something else between the check and
the connection. TLS still verifies the certificate of the host name.

Behind an outbound proxy (HTTPS_PROXY and friends) the proxy resolves names and is the
egress control; then only the host name is checked, when the connection is saved.
"""

from __future__ import annotations

import functools
import socket
import ssl
import urllib.request
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx

from .errors import PermanentError
from .hosts import HostRules
from .pool import Pool


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes tens of milliseconds; one context serves every client.
    return httpx.create_ssl_context()


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, rules: HostRules, label: str) -> None:
        self.rules = rules
        self.label = label
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"could not resolve the host ({exc})") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        usable = [a for a in addresses if self.rules.address_ok(host, a)]
        if not usable:
            raise PermanentError(
                f"{self.label}: {host} resolves to an internal address ({addresses[0]}), "
                "which Lethe does not call unless an admin allows it (LETHE_PROVIDER_HOSTS)")
        for address in usable[:-1]:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout,
                                                     local_address=local_address,
                                                     socket_options=socket_options)
            except httpcore.ConnectError:
                continue  # the next address may answer
        return await self._inner.connect_tcp(usable[-1], port, timeout=timeout,
                                             local_address=local_address,
                                             socket_options=socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise PermanentError(f"{self.label}: Lethe does not call local sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def transport_for(url: str, rules: HostRules, label: str) -> httpx.AsyncBaseTransport:
    """The transport for requests to ``url`` (its scheme decides the proxy, if any)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        return httpx.AsyncHTTPTransport(verify=_ssl_context(), proxy=proxy)
    transport = httpx.AsyncHTTPTransport(verify=_ssl_context())
    # httpx has no parameter for the network backend; its pool (httpcore) has. The pool is
    # rebuilt with httpx's own defaults, as one whose free locks cost no turn of the event
    # loop (`pool`); tests/providers/test_egress.py proves it is used.
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20,
                          keepalive_expiry=5.0)
    transport._pool = Pool(
        ssl_context=_ssl_context(), max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(rules, label))
    return transport
