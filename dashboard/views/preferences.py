"""The time zone a person reads times in. By default the browser says (lethe.js keeps the
``lethe_tz`` cookie up to date); here a person may fix another one for this browser, e.g. to
read a receipt in the zone of whoever it is for, or go back to following the browser."""

from __future__ import annotations

import zoneinfo

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from ..lib.timezones import COOKIE, FIXED, zone

YEAR = 365 * 24 * 3600


def _back(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return target
    return reverse("time_zone")


@require_http_methods(["GET", "POST"])
def time_zone(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        name = request.POST.get("zone", "")
        response = redirect(_back(request))
        if name == "":  # follow the browser again: its script rewrites the zone
            response.delete_cookie(FIXED)
            messages.success(request, "Times follow your browser's time zone again.")
            return response
        if zone(name) is None:
            messages.error(request, f"“{name[:64]}” is not a time zone; nothing changed.")
            return redirect(reverse("time_zone"))
        secure = request.is_secure()
        response.set_cookie(COOKIE, name, max_age=YEAR, samesite="Lax", secure=secure)
        response.set_cookie(FIXED, "1", max_age=YEAR, samesite="Lax", secure=secure)
        messages.success(request, f"Times are now shown in {name}.")
        return response
    return render(request, "preferences/time_zone.html", {
        "zones": sorted(zoneinfo.available_timezones()),
        "current": timezone.get_current_timezone_name(),
        "fixed": request.COOKIES.get(FIXED) == "1",
        "next": _back(request),
    })
