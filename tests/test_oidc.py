"""OpenID Connect sign-in against a small real identity provider on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from dashboard.models import AuditEvent, OIDCIdentity
from dashboard.roles import Role, role_of
from tests.oidc_provider import IdentityProvider, Person

pytestmark = pytest.mark.django_db


@pytest.fixture
def idp(settings) -> Iterator[IdentityProvider]:  # type: ignore[no-untyped-def]
    provider = IdentityProvider()
    for name, value in provider.settings().items():
        setattr(settings, name, value)
    yield provider
    provider.stop()


def sign_in(client: Client, idp: IdentityProvider) -> httpx.Response:
    start = client.get(reverse("login"))
    assert start.status_code == 302  # local sign-in is off: straight to the provider
    start = client.get(start["Location"])
    authorize = start["Location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"]
    answer = httpx.get(authorize, follow_redirects=False, timeout=5)
    callback = urlsplit(answer.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")


def test_sign_in_with_pkce_creates_the_user_keyed_by_sub_with_roles(idp):
    idp.person = Person("sub-123", "alice", "alice@example.com", ["lethe-approvers", "support"])
    client = Client()
    done = sign_in(client, idp)
    assert done.status_code == 302 and done["Location"] == reverse("home")
    user = get_user_model().objects.get(oidc_identity__sub="sub-123")
    assert user.username == "alice" and user.email == "alice@example.com"
    assert role_of(user) == Role.APPROVER
    assert set(user.groups.values_list("name", flat=True)) == {"lethe-approvers", "support"}
    assert client.get(reverse("connections")).status_code == 200
    assert idp.token_requests[0]["code_verifier"]
    assert AuditEvent.objects.filter(action="sign_in", actor=user).exists()


def test_the_same_sub_is_the_same_person_whatever_their_name_or_email(idp):
    idp.person = Person("sub-9", "bob", "bob@example.com")
    sign_in(Client(), idp)
    idp.person = Person("sub-9", "robert", "robert@example.org", ["lethe-operators"])
    sign_in(Client(), idp)
    assert OIDCIdentity.objects.count() == 1
    user = OIDCIdentity.objects.get().user
    assert user.username == "bob" and user.email == "robert@example.org"
    assert role_of(get_user_model().objects.get(pk=user.pk)) == Role.OPERATOR
    # A different person who happens to reuse the name gets their own account.
    idp.person = Person("sub-10", "bob", "other@example.com")
    sign_in(Client(), idp)
    assert get_user_model().objects.filter(username__startswith="bob").count() == 2


def test_a_token_signed_by_another_key_is_refused(idp):
    idp.person = Person("sub-5", "eve", "eve@example.com")
    impostor = IdentityProvider()
    idp.sign = impostor.sign  # type: ignore[method-assign]
    client = Client()
    done = sign_in(client, idp)
    impostor.stop()
    # The library refuses a bad signature as a suspicious request (400).
    assert done.status_code in (400, 403) or done["Location"] == "/accounts/login/"
    assert not OIDCIdentity.objects.exists()
    assert "_auth_user_id" not in client.session


def test_oidc_routes_are_404_when_it_is_not_configured(client):
    assert client.get(reverse("oidc_authentication_init")).status_code == 404
