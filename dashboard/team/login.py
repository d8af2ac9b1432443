"""Local sign-in (only where no SSO is configured) with throttling, and the audit of
sign-ins whatever the method."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, UsernameField
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from ..models import AuditEvent
from . import audit


def who(request: HttpRequest | None, raw_name: object) -> str:
    """Who is trying to sign in, as the lockout counts it: the address and the name as
    authentication reads it (trimmed, NFKC-normalised), folded to one case, so " bob",
    "BOB" and "ｂob" are one name to the lockout as to the sign-in. Hashed, so that the
    audit trail does not keep whatever a form was sent."""
    name = str(UsernameField().to_python(str(raw_name or "").strip()) or "").casefold()
    address = audit.client_address(request) if request is not None else ""
    return hashlib.sha256(f"{address}\n{name}".encode()).hexdigest()[:32]


def recent_failures(key: str) -> int:
    """Failed sign-ins of ``key`` within the lockout: counted from the audit trail, so the
    lockout holds with the cache away (and across every web process)."""
    since = timezone.now() - timedelta(seconds=settings.LETHE_LOGIN_LOCKOUT)
    return AuditEvent.objects.filter(action=audit.Action.SIGN_IN_FAILED, at__gte=since,
                                     details__who=key).count()


class ThrottledAuthenticationForm(AuthenticationForm):
    """After LETHE_LOGIN_MAX_FAILURES wrong passwords for one name from one address, refuse
    further tries for LETHE_LOGIN_LOCKOUT seconds, right or wrong (see ``who``)."""

    def clean(self) -> dict[str, Any]:
        key = who(self.request, self.data.get("username", ""))
        if recent_failures(key) >= settings.LETHE_LOGIN_MAX_FAILURES:
            audit.record(None, audit.Action.SIGN_IN_FAILED, None, self.request,
                         username=str(self.data.get("username", "")).strip()[:150],
                         who=key, reason="locked out")
            raise self.get_invalid_login_error().__class__(
                "Too many failed sign-ins for this name from this address. "
                f"Try again in {settings.LETHE_LOGIN_LOCKOUT // 60} minutes.",
                code="throttled",
            )
        return super().clean()


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
                 username=str(credentials.get("username", ""))[:150],
                 who=who(request, credentials.get("username", "")))
