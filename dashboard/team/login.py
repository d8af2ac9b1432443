"""Local sign-in (only where no SSO is configured) with throttling, and the audit of
sign-ins whatever the method."""

from __future__ import annotations

import hashlib
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from . import audit


class ThrottledAuthenticationForm(AuthenticationForm):
    """After LETHE_LOGIN_MAX_FAILURES wrong passwords for one name from one address, refuse
    further tries for LETHE_LOGIN_LOCKOUT seconds, right or wrong. The name is counted as
    authentication reads it (trimmed, NFKC-normalised), folded to one case, so " bob",
    "BOB" and "ｂob" are the same name to the lockout as to the sign-in."""

    def _key(self) -> str:
        if not self.request:
            return ""
        raw = str(self.data.get("username", ""))
        name = str(self.fields["username"].to_python(raw.strip()) or "").casefold()
        # Hashed: a cache key must not carry whatever a form was sent.
        who = hashlib.sha256(f"{self.request.META.get('REMOTE_ADDR', '')}\n{name}".encode())
        return f"lethe:login-failures:{who.hexdigest()}"

    def clean(self) -> dict[str, Any]:
        key = self._key()
        if key and cache.get(key, 0) >= settings.LETHE_LOGIN_MAX_FAILURES:
            audit.record(None, audit.Action.SIGN_IN_FAILED, None, self.request,
                         username=str(self.data.get("username", "")).strip()[:150],
                         reason="locked out")
            raise self.get_invalid_login_error().__class__(
                "Too many failed sign-ins for this name from this address. "
                f"Try again in {settings.LETHE_LOGIN_LOCKOUT // 60} minutes.",
                code="throttled",
            )
        try:
            return super().clean()
        except Exception:
            if key:
                cache.add(key, 0, settings.LETHE_LOGIN_LOCKOUT)
                cache.incr(key)
            raise


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if settings.LETHE_OIDC_ENABLED and not settings.LETHE_LOCAL_LOGIN:
            return redirect("oidc_authentication_init")
        if settings.LETHE_SSO_HEADER_USER and not settings.LETHE_LOCAL_LOGIN:
            return HttpResponse("Sign in through your organisation's single sign-on.",
                                status=403, content_type="text/plain")
        return cast(HttpResponse, super().dispatch(request, *args, **kwargs))


def on_signed_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    audit.record(user, audit.Action.SIGN_IN, None, request,
                 method=getattr(user, "backend", "") or "")


def on_sign_in_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None,
                      **kwargs: Any) -> None:
    # Only the name: credentials also hold the (masked) password.
    audit.record(None, audit.Action.SIGN_IN_FAILED, None, request,
                 username=str(credentials.get("username", ""))[:150])
