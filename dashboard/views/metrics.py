"""/metrics for Prometheus: off unless LETHE_METRICS_TOKEN or LETHE_METRICS_ALLOW is set,
then answered only with that bearer token and from those addresses (both, when both are
set). A refusal is a plain 404, so the endpoint's existence tells a stranger nothing."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from ..erasure.metrics import LetheCollector


def _allowed(request: HttpRequest) -> bool:
    token, networks = settings.LETHE_METRICS_TOKEN, settings.LETHE_METRICS_ALLOW
    if not (token or networks):
        return False
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return False
    if networks:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        if not any(address in ipaddress.ip_network(n, strict=False) for n in networks):
            return False
    return True


def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        raise Http404
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LetheCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
