"""The viewer's time zone: the browser names it (lethe.js stores
``Intl.DateTimeFormat().resolvedOptions().timeZone`` in a cookie) and every page then shows
times in it, with the zone beside them. A name that is not a known IANA zone is ignored:
the page falls back to ``LETHE_TIME_ZONE``."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

COOKIE = "lethe_tz"
# Set when a person chose a zone on the time-zone page: the script then leaves COOKIE alone.
FIXED = "lethe_tz_fixed"
# IANA names are short and made of these; anything else is not looked up at all.
_NAME = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+){0,2}$")


def zone(name: str | None) -> zoneinfo.ZoneInfo | None:
    if not name or len(name) > 64 or not _NAME.match(name):
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


class ViewerTimeZoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The script URL-encodes the value ("Asia%2FTokyo"); Django hands it over as sent.
        found = zone(unquote(request.COOKIES.get(COOKIE, "")))
        if found is None:
            timezone.deactivate()
        else:
            timezone.activate(found)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
