"""Where a provider may be reached: its own hosts, or what an admin allowed; and at every
connection, only to addresses that are public or allowed (the transport checks what the
host resolves to, then connects to that very address)."""

from __future__ import annotations

import asyncio

import pytest

from providers import PermanentError
from providers.egress import transport_for
from providers.fakes.convai import ConvaiFake
from providers.hosts import HostRules, is_public
from providers.http import HttpClient, HttpPolicy

CONVAI = HostRules(("api.convai.com",))


@pytest.mark.parametrize("url, reason", [
    ("https://api.convai.com", ""),
    ("https://API.Convai.com/", ""),
    ("http://api.convai.com", "over https"),
    ("https://evil.example", "not one of the provider's own hosts"),
    ("https://u:p@api.convai.com", "credentials"),
    ("ftp://api.convai.com", "https URL"),
    ("https://10.0.0.5", "not one of the provider's own hosts"),
])
def test_an_address_is_one_of_the_providers_own(url: str, reason: str) -> None:
    if not reason:
        assert CONVAI.check_url(url, "Convai") == url.rstrip("/")
        return
    with pytest.raises(PermanentError, match=reason):
        CONVAI.check_url(url, "Convai")


@pytest.mark.parametrize("allowed, url", [
    (("gateway.corp.example",), "http://gateway.corp.example/convai"),
    (("*.corp.example",), "https://eu.corp.example"),
    (("10.0.0.0/8",), "http://10.1.2.3:8080"),
])
def test_an_admin_may_allow_more(allowed: tuple[str, ...], url: str) -> None:
    assert HostRules(("api.convai.com",), allowed).check_url(url, "Convai") == url


@pytest.mark.parametrize("address, public", [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("192.168.0.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False),  # noqa: S104
    ("::1", False), ("fe80::1", False), ("::ffff:127.0.0.1", False), ("224.0.0.1", False),
])
def test_special_addresses_are_not_public(address: str, public: bool) -> None:
    import ipaddress

    assert is_public(ipaddress.ip_address(address)) is public


def test_internal_addresses_only_where_allowed_by_name_or_network() -> None:
    assert not CONVAI.address_ok("api.convai.com", "10.0.0.7")
    assert HostRules((), ("10.0.0.0/8",)).address_ok("api.convai.com", "10.0.0.7")
    assert HostRules((), ("gw.corp.example",)).address_ok("gw.corp.example", "10.0.0.7")
    assert CONVAI.address_ok("api.convai.com", "93.184.216.34")


def ask(url: str, rules: HostRules) -> object:
    async def call() -> object:
        async with HttpClient(url, label="Convai", policy=HttpPolicy(retries=0),
                              transport=transport_for(url, rules, "Convai")) as http:
            return await http.read("POST", "/character/list", json_body={})

    return asyncio.run(call())


def test_the_transport_refuses_a_name_that_resolves_inside() -> None:
    # "localhost" plays a provider's own name that DNS points inside.
    with pytest.raises(PermanentError, match="internal address"):
        ask("http://localhost:9", HostRules(("localhost",)))


def test_the_transport_reaches_an_allowed_network() -> None:
    fake = ConvaiFake(seed=1, characters=1, sessions=1)
    with fake.serve() as server:
        port = server.url.rsplit(":", 1)[1]
        # The fake answers (it wants a key): the request got through the guard to it.
        with pytest.raises(PermanentError, match="answered 400: API Key not found"):
            ask(f"http://localhost:{port}", HostRules((), ("127.0.0.0/8", "::1")))
    assert fake.count("POST", "/character/list") == 1
