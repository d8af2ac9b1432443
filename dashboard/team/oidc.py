"""OpenID Connect sign-in (mozilla-django-oidc): RS256 tokens checked against the provider's
keys, PKCE, nonce and a timeout. People are keyed by the provider's `sub`, never by e-mail
(an address can be reused or changed); their groups claim becomes their groups, and so
their role."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import models, transaction
from django.http import Http404, HttpRequest, HttpResponse
from mozilla_django_oidc import views as oidc_views
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from ..models import OIDCIdentity


class SubjectOIDCBackend(OIDCAuthenticationBackend):  # type: ignore[misc]
    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("sub"))

    def filter_users_by_claims(self, claims: dict[str, Any]) -> models.QuerySet[Any]:
        return get_user_model().objects.filter(oidc_identity__sub=str(claims["sub"]))

    def create_user(self, claims: dict[str, Any]) -> Any:
        User = get_user_model()
        wanted = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])
        username, n = wanted[:140], 1
        while User.objects.filter(username=username).exists():
            n += 1
            username = f"{wanted[:140]}-{n}"
        with transaction.atomic():
            user = User.objects.create_user(username, email=str(claims.get("email", ""))[:254])
            OIDCIdentity.objects.create(user=user, sub=str(claims["sub"]))
        return self.update_user(user, claims)

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        email = str(claims.get("email", ""))[:254]
        if email and user.email != email:
            user.email = email
            user.save(update_fields=["email"])
        names = claims.get(settings.LETHE_OIDC_GROUPS_CLAIM)
        if isinstance(names, list):
            user.groups.set([Group.objects.get_or_create(name=str(name)[:150])[0]
                             for name in names if str(name).strip()])
        return user


def _enabled() -> None:
    if not settings.LETHE_OIDC_ENABLED:
        raise Http404("OpenID Connect sign-in is not configured.")


class AuthenticationRequestView(oidc_views.OIDCAuthenticationRequestView):  # type: ignore[misc]
    def get(self, request: HttpRequest) -> HttpResponse:
        _enabled()
        return cast(HttpResponse, super().get(request))


class CallbackView(oidc_views.OIDCAuthenticationCallbackView):  # type: ignore[misc]
    def get(self, request: HttpRequest) -> HttpResponse:
        _enabled()
        return cast(HttpResponse, super().get(request))
