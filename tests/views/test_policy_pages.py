"""Retention policies as their pages word them: the next run said one way everywhere, what
waits for approval counted apart from what a run would erase, and a form that marks the
fields each scope uses."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard.erasure import retention
from dashboard.models import RetentionPolicy
from providers.fakes.convai import ConvaiFake

pytestmark = pytest.mark.django_db


@pytest.fixture
def convai_fake() -> ConvaiFake:
    # Dated from now, so "older than 90 days" holds some of the sessions and not others.
    return ConvaiFake(seed=7, characters=2, sessions=8, now=timezone.now())


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def form(synced, **fields) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {"name": "Old chats", "scope": "connection", "connection": synced.pk,
            "older_than_days": 90, "mode": "approve", "every_hours": 24, "enabled": "on",
            **fields}


def test_a_new_policy_says_due_now_on_every_page_never_a_dash(owner_client, synced):
    response = owner_client.post(reverse("policy_add"), form(synced), follow=True)
    page = response.content.decode()
    assert "Its first run is due now" in page
    assert "next run <span data-next-run=\"due\">due now" in page
    assert "next run <span class=\"muted\">—" not in page
    assert "the first is <span data-next-run=\"due\">due now" in page
    listing = owner_client.get(reverse("policies")).content.decode()
    assert "next <span data-next-run=\"due\">due now" in listing
    policy = RetentionPolicy.objects.get()
    assert policy.next_run_at is not None and policy.next_run_at <= timezone.now()


def test_a_switched_off_policy_says_so_instead_of_a_next_run(owner_client, synced):
    data = form(synced)
    del data["enabled"]
    page = owner_client.post(reverse("policy_add"), data, follow=True).content.decode()
    assert "It is switched off" in page and "due now" not in page
    assert "next run <strong>none: switched off</strong>" in page
    assert "next off" in owner_client.get(reverse("policies")).content.decode()


def test_what_waits_for_approval_is_counted_apart_on_every_page(owner_client, synced):
    policy = RetentionPolicy.objects.create(name="Old chats", owner=synced.owner,
                                            connection=synced, older_than_days=90)
    before = retention.standing(policy, synced.owner)
    assert before["would"] > 0 and before["awaiting_approval"] == 0
    retention.perform_run(retention.start_run(policy).pk, sync_first=False)
    after = retention.standing(policy, synced.owner)
    assert after == {"would": 0, "awaiting_approval": before["would"], "under_way": 0}
    n = before["would"]
    page = owner_client.get(reverse("policy", args=[policy.pk])).content.decode()
    assert f"<strong>{n}</strong> old enough conversation{'s are' if n > 1 else ' is'} " \
           "waiting for approval" in page
    assert "Nothing is old enough" not in page
    assert f'href="/jobs/?policy={policy.pk}"' in page
    listing = owner_client.get(reverse("policies")).content.decode()
    row = re.search(r"Old chats</a>.*?</tr>", listing, re.S)
    assert row
    cells = re.findall(r'<td data-label="([^"]+)" class="num">(\d+)</td>', row.group(0))
    assert cells == [("Would erase now", "0"), ("Awaiting approval", str(n))]
    overview = owner_client.get(reverse("home")).content.decode()
    assert f"(and {n} awaiting approval)" in overview


def test_the_form_marks_the_field_each_scope_uses(owner_client, synced):
    page = owner_client.get(reverse("policy_add")).content.decode()
    assert "data-policy-form" in page
    for name, label in [("provider", "One provider"), ("connection", "One connection"),
                        ("character", "One character")]:
        field = re.search(rf'<label class="field" data-for-scope="{name}">.*?</label>', page,
                          re.S)
        assert field, name
        assert f"Used only when the scope is “{label}”." in field.group(0)
    assert page.count("data-for-scope=") == 3
    # Whatever else was filled in, only the field of the chosen scope is kept.
    owner_client.post(reverse("policy_add"), form(synced, scope="provider",
                                                  provider="convai"))
    policy = RetentionPolicy.objects.get()
    assert policy.provider == "convai" and policy.connection is None
