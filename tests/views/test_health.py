"""/healthz answers without touching anything; /readyz and `manage.py ready` say whether the
database, the broker and beat are working, each in plain words."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from celery import current_app
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from dashboard.erasure import ticks
from dashboard.models import Tick


@pytest.mark.django_db
def test_readyz_needs_beat_to_have_swept_recently(client):
    never = client.get("/readyz")  # no sign-in: load balancers ask it
    assert never.status_code == 503
    assert never.json()["beat"].startswith("has never swept")
    assert never.json()["database"] == never.json()["broker"] == "ok"

    ticks.take("sweep", 5)
    assert client.get("/readyz").status_code == 200

    Tick.objects.update(last_at=timezone.now() - timedelta(minutes=10))
    late = client.get("/readyz")
    assert late.status_code == 503
    assert re.fullmatch(r"last swept 60\d s ago \(is beat running\?\)", late.json()["beat"])


@pytest.mark.django_db
def test_readyz_says_when_the_broker_is_unreachable(client, monkeypatch):
    ticks.take("sweep", 5)
    # Celery reads CELERY_BROKER_URL from the environment before its own settings (the
    # suite sets it to memory://), so both must point at the closed port.
    monkeypatch.setattr(current_app.conf, "broker_url", "redis://127.0.0.1:9/0")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:9/0")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["broker"].startswith("unreachable")


@pytest.mark.django_db
def test_the_ready_command_fails_with_what_is_wrong(capsys):
    with pytest.raises(CommandError, match="not ready"):
        call_command("ready")
    assert "beat: has never swept" in capsys.readouterr().out
    ticks.take("sweep", 5)
    call_command("ready")
    assert "database: ok\nbroker: ok\nbeat: ok" in capsys.readouterr().out
