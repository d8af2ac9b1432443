"""Single sign-on through a trusted reverse proxy (oauth2-proxy, Authelia, authentik style).

Off unless LETHE_SSO_HEADER_USER is set. The header is believed only from the addresses in
LETHE_SSO_TRUSTED_PROXIES: from anywhere else it is dropped, in either spelling (WSGI maps
`X-Remote-User` and `X_Remote_User` to the same key, which is how such headers get
smuggled past a proxy that strips only one). A session signed in by the header ends when a
request comes without it.

- People are created on first sign-in, with a ProxyIdentity; the header signs in only
  accounts that have one, never a local account with a password (an admin links one by
  adding a proxy identity in the admin).
- The groups header, when set, is read on every request that carries the user header and
  becomes exactly the person's groups, and so their role (see roles.py) and what is shared
  with them: a group the proxy stops sending is gone on the next request.
- A user name that is not a valid one (too long, odd characters) is refused with a 403.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import RemoteUserBackend
from django.contrib.auth.middleware import RemoteUserMiddleware
from django.contrib.auth.models import Group
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse

from ..models import ProxyIdentity
from .audit import in_networks

log = logging.getLogger(__name__)


def meta_key(header: str) -> str:
    """`X-Forwarded-User` (or `HTTP_X_FORWARDED_USER`) → the WSGI key `HTTP_X_FORWARDED_USER`."""
    name = header.strip().upper().replace("-", "_")
    return name if name.startswith("HTTP_") else f"HTTP_{name}"


def trusted(remote_addr: str | None) -> bool:
    return in_networks(remote_addr, settings.LETHE_SSO_TRUSTED_PROXIES)


def acceptable(name: str) -> bool:
    """A user name Lethe can store and that names nobody by accident."""
    try:
        USERNAME(name)
    except ValidationError:
        return False
    return 0 < len(name) <= USERNAME_LENGTH


class ProxyHeaderBackend(RemoteUserBackend):
    create_unknown_user = True

    def configure_user(self, request: HttpRequest | None, user: Any, created: bool = True
                       ) -> Any:
        if created:
            user.set_unusable_password()  # the proxy signs it in; it has no password
            user.save(update_fields=["password"])
            ProxyIdentity.objects.create(user=user)
        elif not ProxyIdentity.objects.filter(user=user).exists():
            log.warning("refused an SSO header naming an account the proxy did not create")
            return None
        email = request.META.get(meta_key(settings.LETHE_SSO_HEADER_EMAIL), "") \
            if request is not None and settings.LETHE_SSO_HEADER_EMAIL else ""
        if email and user.email != email:
            user.email = email[:254]
            user.save(update_fields=["email"])
        return user


class ProxyHeaderMiddleware(RemoteUserMiddleware):
    force_logout_if_no_header = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        super().__init__(get_response)
        self.enabled = bool(settings.LETHE_SSO_HEADER_USER)
        self.header = meta_key(  # type: ignore[misc]
            settings.LETHE_SSO_HEADER_USER or "X-Remote-User")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.enabled:
            refused = self.refusal(request)
            if refused is not None:
                return refused
        return cast(HttpResponse, self.get_response(request))

    def refusal(self, request: HttpRequest) -> HttpResponse | None:
        """Sign in (or out) by the header; a 403 when it names nobody Lethe may sign in."""
        if not trusted(request.META.get("REMOTE_ADDR")):
            if self.header in request.META:
                log.warning("dropped an SSO header sent from an untrusted address")
            for header in (settings.LETHE_SSO_HEADER_USER, settings.LETHE_SSO_HEADER_EMAIL,
                           settings.LETHE_SSO_HEADER_GROUPS):
                if header:
                    request.META.pop(meta_key(header), None)
        name = request.META.get(self.header)
        if name is not None and not acceptable(name):
            log.warning("refused an SSO user name that is not a valid one")
            return _forbidden("The single sign-on user name is not one Lethe accepts (at "
                              f"most {USERNAME_LENGTH} letters, digits and @ . + - _).")
        self.process_request(request)
        if name is None:
            return None
        if not request.user.is_authenticated:
            return _forbidden("This account does not sign in through single sign-on; an "
                              "admin of Lethe can link it.")
        if settings.LETHE_SSO_HEADER_GROUPS and self.signed_in_here(request):
            self.sync_groups(request)
        return None

    @staticmethod
    def signed_in_here(request: HttpRequest) -> bool:
        return bool(request.session.get(auth.BACKEND_SESSION_KEY, "") == BACKEND)

    def sync_groups(self, request: HttpRequest) -> None:
        """The person's groups become exactly those the header names (cheaply: the usual
        request finds them equal and writes nothing)."""
        raw = request.META.get(meta_key(settings.LETHE_SSO_HEADER_GROUPS), "")
        names = {g.strip()[:150] for g in raw.replace(";", ",").split(",") if g.strip()}
        user: Any = request.user
        if set(user.groups.values_list("name", flat=True)) == names:
            return
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in sorted(names)])
        user._lethe_role = None  # the role is read from the groups again

    def _remove_invalid_user(self, request: HttpRequest) -> None:
        # Only sessions the header started end with it; a local admin session is left alone.
        if self.signed_in_here(request):
            auth.logout(request)


BACKEND = f"{ProxyHeaderBackend.__module__}.{ProxyHeaderBackend.__qualname__}"
USERNAME = UnicodeUsernameValidator()
USERNAME_LENGTH = 150


def _forbidden(reason: str) -> HttpResponse:
    return HttpResponse(reason, status=403, content_type="text/plain; charset=utf-8")
