"""The permission matrix: every page and fragment, for the owner, a member of a group the
connection is shared with in each role, an outsider and an anonymous visitor. Whatever is
refused changes nothing; an id someone cannot see is a 404 (invariant 5 in docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from dashboard.erasure import freeze, lifecycle
from dashboard.models import (
    AuditEvent,
    Connection,
    ErasureJob,
    Finding,
    PolicyRun,
    RetentionPolicy,
    SyncRun,
)
from dashboard.team.roles import Role
from tests.helpers import PASSWORD, with_role

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    args: str  # which object the URL names: "", "connection", "conversation", "job", "draft",
    # "policy", "request", "finding"
    role: Role  # the least role that may use it
    owner_only: bool = False
    data: tuple[tuple[str, str], ...] = ()
    extra: str = ""


ROUTES = [
    Route("connections", "get", "", Role.VIEWER),
    Route("connection_add", "get", "", Role.OPERATOR),
    Route("connection", "get", "connection", Role.VIEWER),
    Route("connection", "get", "connection", Role.VIEWER, extra="fragment"),
    Route("connection_edit", "get", "connection", Role.OPERATOR, owner_only=True),
    Route("connection_test", "post", "connection", Role.OPERATOR),
    Route("connection_sync", "post", "connection", Role.OPERATOR),
    Route("connection_share", "post", "connection", Role.OPERATOR, owner_only=True),
    Route("conversations", "get", "", Role.VIEWER),
    Route("conversations", "get", "", Role.VIEWER, extra="fragment"),
    Route("transcript", "get", "conversation", Role.VIEWER),
    Route("conversation_selection", "post", "", Role.VIEWER),
    Route("conversation_selection_export", "post", "", Role.VIEWER, extra="jsonl"),
    Route("protect", "post", "conversation", Role.OPERATOR, data=(("protected", "1"),)),
    Route("erase_selected", "post", "", Role.OPERATOR),
    # A draft (the preview) belongs to the person who made it.
    Route("erase_preview", "get", "draft", Role.OPERATOR, owner_only=True),
    Route("erase_export", "get", "draft", Role.OPERATOR, owner_only=True, extra="jsonl"),
    Route("jobs", "get", "", Role.VIEWER),
    Route("job", "get", "job", Role.VIEWER),
    Route("job", "get", "job", Role.VIEWER, extra="fragment"),
    Route("job_receipt", "get", "job", Role.VIEWER),
    Route("job_receipt_json", "get", "job", Role.VIEWER),
    Route("job_action", "post", "job", Role.OPERATOR, extra="pause"),
    Route("job_action", "post", "job", Role.VIEWER, extra="cancel"),
    Route("home", "get", "", Role.VIEWER),
    Route("search", "get", "", Role.VIEWER, data=(("q", "the"),)),
    Route("search_erase", "post", "", Role.OPERATOR),
    Route("findings", "get", "", Role.VIEWER),
    Route("finding_reveal", "post", "finding", Role.VIEWER),
    Route("finding_dismiss", "post", "finding", Role.OPERATOR),
    Route("findings_erase", "post", "", Role.OPERATOR, data=(("kind", "email"),)),
    Route("request", "get", "request", Role.VIEWER),
    Route("request", "get", "request", Role.VIEWER, extra="fragment"),
    Route("request_action", "post", "request", Role.OPERATOR, extra="pause"),
    Route("approvals", "get", "", Role.APPROVER),
    Route("request_receipt", "get", "request", Role.VIEWER),
    Route("request_receipt_json", "get", "request", Role.VIEWER),
    Route("policies", "get", "", Role.VIEWER),
    Route("policy_add", "get", "", Role.OPERATOR),
    Route("policy", "get", "policy", Role.VIEWER),
    Route("policy_edit", "get", "policy", Role.OPERATOR, owner_only=True),
    Route("policy_run", "post", "policy", Role.OPERATOR, owner_only=True),
    Route("policy_remove", "post", "policy", Role.OPERATOR, owner_only=True),
    Route("audit", "get", "", Role.APPROVER),
    Route("audit_csv", "get", "", Role.APPROVER),
    Route("connection_remove", "get", "connection", Role.OPERATOR, owner_only=True),
    Route("connection_remove", "post", "connection", Role.OPERATOR, owner_only=True),
    Route("time_zone", "get", "", Role.VIEWER),
    Route("time_zone", "post", "", Role.VIEWER, data=(("zone", "Asia/Tokyo"),)),
]
PEOPLE = ["owner", "viewer", "operator", "approver", "admin", "outsider", "anonymous"]


@pytest.fixture
def world(synced, django_user_model, settings):  # type: ignore[no-untyped-def]
    settings.LETHE_CANCEL_WINDOW = 3600  # jobs stay cancellable throughout
    team = Group.objects.create(name="support")
    synced.shared_with.add(team)
    people = {"owner": synced.owner}
    for role in ("viewer", "operator", "approver", "admin"):
        user = with_role(django_user_model.objects.create_user(role, password=PASSWORD), role)
        user.groups.add(team)
        people[role] = user
    people["outsider"] = with_role(
        django_user_model.objects.create_user("stranger", password=PASSWORD), "admin")
    conv = synced.conversations.order_by("id").first()
    drafts = freeze.conversations(synced.owner, synced.conversations.filter(pk=conv.pk), {})
    job_request = freeze.conversations(synced.owner, synced.conversations.filter(pk=conv.pk), {})
    [job] = lifecycle.confirm(ErasureJob.objects.filter(request=job_request), dry_run=False,
                            enqueue=False)
    policy = RetentionPolicy.objects.create(name="90 days", owner=synced.owner,
                                            connection=synced)
    message = conv.messages.order_by("position").first()
    finding = Finding.objects.create(connection=synced, conversation=conv, message=message,
                                     kind="email", detector="e-mail address", start=0, end=1,
                                     preview="…")
    objects = {"connection": synced.pk, "conversation": conv.pk, "job": job.pk,
               "draft": drafts, "policy": policy.pk, "request": job.request,
               "finding": finding.pk}
    return synced, people, objects


def url_of(route: Route, objects: dict[str, object]) -> str:
    args: list[object] = [objects[route.args]] if route.args else []
    if route.name in ("erase_export", "job_action", "request_action",
                      "conversation_selection_export"):
        args.append(route.extra)
    return reverse(route.name, args=args)


def expected(route: Route, who: str, role: Role) -> set[int]:
    if who == "anonymous":
        return {302, 401}
    visible = who != "outsider"
    if route.args and not visible:
        return {404}
    if route.owner_only and who != "owner":
        return {404}
    if role < route.role:
        return {403}
    return {200, 302}


def state(connection: Connection) -> tuple[object, ...]:
    return (SyncRun.objects.count(), ErasureJob.objects.count(),
            list(ErasureJob.objects.values_list("status", flat=True).order_by("id")),
            Connection.objects.filter(pk=connection.pk).values_list("label", flat=True).first(),
            list(connection.shared_with.values_list("name", flat=True)),
            connection.conversations.filter(protected=True).count(),
            AuditEvent.objects.exclude(action__in=["sign_in", "export_downloaded"]).count(),
            RetentionPolicy.objects.count(), PolicyRun.objects.count())


@pytest.mark.parametrize("who", PEOPLE)
def test_every_route_answers_each_person_as_their_access_allows(world, who):
    connection, people, objects = world
    client = Client()
    user = people.get(who)
    role = Role.NONE
    if user is not None:
        client.force_login(user)
        from dashboard.team.roles import role_of

        role = role_of(user)
    for route in ROUTES:
        url = url_of(route, objects)
        headers = {"HTTP_HX_REQUEST": "true"} if route.extra == "fragment" else {}
        before = state(connection)
        response = getattr(client, route.method)(url, dict(route.data), **headers)
        allowed = expected(route, who, role)
        assert response.status_code in allowed, (who, route, response.status_code)
        if allowed <= {302, 401, 403, 404} and response.status_code != 302:
            assert state(connection) == before, (who, route)
        if who == "anonymous":
            assert state(connection) == before, (who, route)
