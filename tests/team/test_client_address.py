"""Behind the reverse proxy every request comes from the proxy: the audit trail and the
sign-in lockout must see the client's address, which only the proxy may tell."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from dashboard.models import AuditEvent
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db

PROXY = "127.0.0.1"


def fail_sign_in(client: Client, peer: str, forwarded: str | None = None) -> AuditEvent:
    headers = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    client.post(reverse("login"), {"username": "owner", "password": "wrong"}, **headers)
    return AuditEvent.objects.filter(action="sign_in_failed").latest("id")


def test_behind_the_proxy_the_trail_records_the_address_the_proxy_forwarded(
    client, owner, settings
):
    settings.LETHE_PROXY_ADDRESSES = ["127.0.0.1/32"]
    assert fail_sign_in(client, PROXY, "203.0.113.9").remote_addr == "203.0.113.9"
    # A client's own header comes first; nginx overwrites it, and the last one counts.
    assert fail_sign_in(client, PROXY, "10.9.9.9, 198.51.100.4").remote_addr == "198.51.100.4"
    assert fail_sign_in(client, PROXY, "not an address").remote_addr == PROXY


def test_the_header_is_ignored_from_anywhere_but_the_proxy(client, owner, settings):
    assert fail_sign_in(client, PROXY, "203.0.113.9").remote_addr == PROXY  # no proxy set
    settings.LETHE_PROXY_ADDRESSES = ["127.0.0.1/32"]
    assert fail_sign_in(client, "192.0.2.7", "203.0.113.9").remote_addr == "192.0.2.7"


def test_behind_the_proxy_one_client_s_failures_do_not_lock_out_another(
    client, owner, settings
):
    settings.LETHE_PROXY_ADDRESSES = ["127.0.0.1/32"]
    settings.LETHE_LOGIN_MAX_FAILURES = 3
    for _ in range(3):
        fail_sign_in(client, PROXY, "203.0.113.66")
    locked = client.post(reverse("login"), {"username": "owner", "password": PASSWORD},
                         REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.66")
    assert "Too many failed sign-ins" in locked.content.decode()

    other = Client()
    other.post(reverse("login"), {"username": "owner", "password": PASSWORD},
               REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.20")
    assert "_auth_user_id" in other.session
