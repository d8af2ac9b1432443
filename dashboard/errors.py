"""What a page answers when something below it is down, instead of a bare 500."""

from __future__ import annotations

import sys

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.template.loader import render_to_string
from django.views.defaults import server_error


def unavailable_or_error(request: HttpRequest) -> HttpResponse:
    """handler500: a database outage gets a plain "try again shortly" (503, without
    anything that would need the database to render); anything else Django's 500."""
    if isinstance(sys.exc_info()[1], DatabaseError):
        unavailable = HttpResponse(render_to_string("503.html"), status=503)
        unavailable["Retry-After"] = "10"
        return unavailable
    error: HttpResponseServerError = server_error(request)
    return error
