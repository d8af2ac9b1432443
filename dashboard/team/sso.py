"""Single sign-on through a trusted reverse proxy (oauth2-proxy, Authelia, authentik style).

Off unless LETHE_SSO_HEADER_USER is set. The header is believed only from the addresses in
LETHE_SSO_TRUSTED_PROXIES: from anywhere else it is dropped, in either spelling (WSGI maps
`X-Remote-User` and `X_Remote_User` to the same key, which is how such headers get
smuggled past a proxy that strips only one). A session signed in by the header ends when a
request comes without it. Users are created on first sign-in; the groups header, when set,
becomes the person's groups, and so their role (see roles.py) and what is shared with them.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import Any, cast

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import RemoteUserBackend
from django.contrib.auth.middleware import RemoteUserMiddleware
from django.contrib.auth.models import Group
from django.http import HttpRequest, HttpResponse

log = logging.getLogger(__name__)


def meta_key(header: str) -> str:
    """`X-Forwarded-User` (or `HTTP_X_FORWARDED_USER`) → the WSGI key `HTTP_X_FORWARDED_USER`."""
    name = header.strip().upper().replace("-", "_")
    return name if name.startswith("HTTP_") else f"HTTP_{name}"


def trusted(remote_addr: str | None) -> bool:
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False)
               for net in settings.LETHE_SSO_TRUSTED_PROXIES)


class ProxyHeaderBackend(RemoteUserBackend):
    create_unknown_user = True

    def configure_user(self, request: HttpRequest | None, user: Any, created: bool = True
                       ) -> Any:
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
            self.process_request(request)
        return cast(HttpResponse, self.get_response(request))

    def process_request(self, request: HttpRequest) -> None:
        if not trusted(request.META.get("REMOTE_ADDR")):
            if self.header in request.META:
                log.warning("dropped an SSO header sent from an untrusted address")
            for header in (settings.LETHE_SSO_HEADER_USER, settings.LETHE_SSO_HEADER_EMAIL,
                           settings.LETHE_SSO_HEADER_GROUPS):
                if header:
                    request.META.pop(meta_key(header), None)
        had_user = request.user.is_authenticated
        super().process_request(request)
        if (request.user.is_authenticated and settings.LETHE_SSO_HEADER_GROUPS
                and self.header in request.META and not had_user):
            self.sync_groups(request)

    def sync_groups(self, request: HttpRequest) -> None:
        raw = request.META.get(meta_key(settings.LETHE_SSO_HEADER_GROUPS), "")
        names = {g.strip() for g in raw.replace(";", ",").split(",") if g.strip()}
        groups = [Group.objects.get_or_create(name=name[:150])[0] for name in sorted(names)]
        user: Any = request.user
        user.groups.set(groups)

    def _remove_invalid_user(self, request: HttpRequest) -> None:
        # Only sessions the header started end with it; a local admin session is left alone.
        backend = request.session.get(auth.BACKEND_SESSION_KEY, "")
        if backend == f"{ProxyHeaderBackend.__module__}.{ProxyHeaderBackend.__qualname__}":
            auth.logout(request)
