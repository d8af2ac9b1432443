"""Helpers the tests of every domain share: users with a role, a connection to the Convai
fake, erasure jobs drafted or confirmed from a mirror, and waiting on another thread or
process. Fixtures built on them live in tests/conftest.py."""

from __future__ import annotations

import glob
import json
import shutil
import subprocess  # nosec B404 - pg_dump, for the tests that read the whole database
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dashboard.erasure import freeze, lifecycle
from dashboard.models import Connection, ErasureJob, MirrorState
from providers.fakes.base import FakeProvider
from providers.fakes.convai import DEMO_KEY

T = TypeVar("T")
# The checkout: where manage.py is, for tests that start the project's own programs.
ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery"  # noqa: S105 - test users only


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll until `predicate()` is truthy; fail with `what` when it never becomes so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def with_role(user, role: str):  # type: ignore[no-untyped-def]
    """Put a user in the group that carries `role` (viewer, operator, approver, admin)."""
    from django.conf import settings
    from django.contrib.auth.models import Group

    group, _ = Group.objects.get_or_create(name=settings.LETHE_ROLE_GROUPS[role])
    user.groups.add(group)
    return type(user).objects.get(pk=user.pk)  # a fresh instance: roles are cached per object


def share(connection: Connection, *people: Any, group: str = "team") -> None:
    """Share ``connection`` with a group holding ``people`` (as its owner would)."""
    from django.contrib.auth.models import Group

    team, _ = Group.objects.get_or_create(name=group)
    for person in people:
        person.groups.add(team)
    connection.shared_with.add(team)


def make_connection(owner, url: str, key: str = DEMO_KEY) -> Connection:  # type: ignore[no-untyped-def]
    connection = Connection(owner=owner, provider="convai", label="Team Convai",
                            options={"base_url": url})
    connection.set_secrets({"api_key": key})
    connection.save()
    return connection


def connect(owner: Any, fake: FakeProvider, url: str, label: str = "") -> Connection:
    """A connection of ``owner`` to ``fake`` served at ``url``, with the fake's own key."""
    secrets, options = fake.client_config(url)
    connection = Connection(owner=owner, provider=fake.name, label=label or f"{fake.name} test",
                            options=options)
    connection.set_secrets(secrets)
    connection.save()
    return connection


def draft_jobs(connection: Connection, n: int = 2, **kwargs: Any) -> list[ErasureJob]:
    """The draft jobs of a selection of the first ``n`` present conversations."""
    present = connection.conversations.filter(mirror_state=MirrorState.PRESENT).order_by("id")
    ids = list(present.values_list("pk", flat=True)[:n])
    request = freeze.conversations(connection.owner, connection.conversations.filter(pk__in=ids),
                               {}, **kwargs)
    return list(ErasureJob.objects.filter(request=request))


def confirmed_job(connection: Connection, n: int = 2, *, dry_run: bool = False,
                  **kwargs: Any) -> ErasureJob:
    """That selection confirmed, for the caller to run (nothing is queued)."""
    [job] = lifecycle.confirm(draft_jobs(connection, n), dry_run=dry_run, enqueue=False,
                              **kwargs)
    return job


def shown(total: int, include_pinned: bool = False) -> dict[str, str]:
    """What a preview page posts back about the numbers it showed."""
    return {"expected_total": str(total), "shown_include_pinned": "1" if include_pinned else "0"}


def via_proxy(user: str = "alice", groups: str = "lethe-operators,support") -> dict[str, str]:
    """The headers the trusted proxy (see the sso fixture) sends for ``user``."""
    return {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_USER": user,
            "HTTP_X_FORWARDED_EMAIL": f"{user}@example.com", "HTTP_X_FORWARDED_GROUPS": groups}


def pg_dump() -> str:
    """The test database as SQL text, data included."""
    from django.db import connection as db

    binary = shutil.which("pg_dump") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"), reverse=True)), None)
    if binary is None:
        pytest.fail("pg_dump not found: install PostgreSQL's client (Debian: postgresql-client)")
    conf = db.settings_dict
    args = [binary, "--data-only", "-h", conf["HOST"] or "127.0.0.1",
            "-p", str(conf["PORT"] or 5432), "-U", conf["USER"] or "postgres", conf["NAME"]]
    env = {"PGPASSWORD": conf["PASSWORD"] or "", "PATH": "/usr/bin:/bin"}
    return subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout


def sync_now(connection: Connection, full: bool = True) -> None:
    from dashboard.mirror import sync

    run = sync.perform_sync(sync.start(connection, full=full).pk)
    assert run.status == "ok", run.error


class Hook:
    """A tiny local webhook receiver: records each POST and answers `status`."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 204
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append((dict(self.headers), body))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/t0ken"

    def payloads(self) -> list[dict[str, object]]:
        return [json.loads(body) for _, body in self.received]
