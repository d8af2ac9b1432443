"""Every page needs a signed-in person; only the login page and static files do not."""

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url

PUBLIC_PREFIXES = ("/accounts/login/", "/admin/login/", "/static/", "/healthz", "/readyz",
                   "/metrics", "/oidc/")


class LoginRequiredMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The path first: /healthz must answer without the session (and so the database).
        if request.path.startswith(PUBLIC_PREFIXES) or request.user.is_authenticated:
            return self.get_response(request)
        if getattr(request, "htmx", False):
            # A fragment must not swap a login form into the page: send the browser there.
            response = HttpResponse(status=401)
            response["HX-Redirect"] = resolve_url(settings.LOGIN_URL)
            return response
        return redirect_to_login(request.get_full_path())
