"""The automation commands do what the pages do, with clear errors and non-zero exits."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from dashboard.models import Connection, ErasureJob, SyncRun
from providers.fakes.convai import DEMO_KEY

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_connect_reads_secrets_from_stdin_checks_the_key_and_prints_the_id(
        owner, convai_server, piped_stdin):
    piped_stdin(f"api_key={DEMO_KEY}\n")
    out = run("connect", "convai", "--label", "Ops", "--owner", "owner",
              "--option", f"base_url={convai_server.url}")
    connection = Connection.objects.get(pk=int(out.strip()))
    assert connection.get_secrets() == {"api_key": DEMO_KEY} and connection.owner == owner
    assert DEMO_KEY not in out


@pytest.mark.parametrize("stdin, args, message", [
    ("api_key=wrong-key-000000000000\n", [], "refused the key"),
    ("", [], "Missing secret api_key"),
    ("just-a-key-without-name\n", [], "KEY=VALUE"),
    (f"api_key={DEMO_KEY}\n", ["--option", "colour=blue"], "Unknown option"),
    (f"api_key={DEMO_KEY}\n", ["--owner", "nobody"], "No user named"),
])
def test_connect_refuses_bad_input_and_saves_nothing(owner, convai_server, piped_stdin,
                                                     stdin, args, message):
    piped_stdin(stdin)
    base = ["connect", "convai", "--label", "Ops", "--owner", "owner",
            "--option", f"base_url={convai_server.url}"]
    with pytest.raises(CommandError, match=message) as info:
        run(*base, *args)
    assert "wrong-key" not in str(info.value) and "just-a-key" not in str(info.value)
    assert not Connection.objects.exists()


def test_sync_prints_what_it_mirrored(connection):
    out = run("sync", str(connection.pk))
    assert "2 characters, 12 conversations" in out and "(full)" in out
    assert "(incremental)" in run("sync", str(connection.pk))


def test_sync_of_an_unknown_id_or_with_a_bad_key_fails_clearly(connection):
    with pytest.raises(CommandError, match="No connection with id '999'"):
        run("sync", "999")
    with pytest.raises(CommandError, match="No connection with id 'abc'"):
        run("sync", "abc")
    connection.set_secrets({"api_key": "bad-key-00000000000000"})
    connection.save()
    with pytest.raises(CommandError, match="refused the key"):
        run("sync", str(connection.pk))
    assert SyncRun.objects.filter(status="failed").count() == 1


def test_erase_then_job_show_the_same_outcomes(synced, convai_fake):
    ids = list(synced.conversations.order_by("id").values_list("provider_id", flat=True)[:2])
    out = run("erase", str(synced.pk), "--conversations", *ids, "--yes")
    job = ErasureJob.objects.get()
    assert out.startswith(f"job {job.pk} done: verified=2")
    assert sorted(convai_fake.deletes) == sorted(ids)
    shown = run("job", str(job.pk))
    assert "outcomes: verified=2" in shown
    assert all(f"conversation\t{pid}\tverified" in shown for pid in ids)


def test_erase_dry_run_sends_nothing(synced, convai_fake):
    pid = synced.conversations.first().provider_id
    out = run("erase", str(synced.pk), "--conversations", pid, "--dry-run", "--yes")
    assert "would_erase=1" in out and not convai_fake.deletes


@pytest.mark.parametrize("args, message", [
    (["--conversations", "nope"], "add --yes"),
    (["--conversations", "no-such-session", "--yes"], "Not in the mirror"),
])
def test_erase_refuses_without_yes_or_with_unknown_ids(synced, convai_fake, args, message):
    with pytest.raises(CommandError, match=message):
        run("erase", str(synced.pk), *args)
    assert not ErasureJob.objects.exists() and not convai_fake.deletes


def test_job_of_an_unknown_id_fails_clearly(db):
    with pytest.raises(CommandError, match="No erasure job with id '7'"):
        run("job", "7")


def test_erase_messages_is_refused_where_the_provider_erases_whole_sessions_only(synced):
    message = synced.conversations.first().messages.first()
    with pytest.raises(CommandError, match="provider can erase"):
        run("erase", str(synced.pk), "--messages", message.provider_id, "--yes")
    assert not ErasureJob.objects.exists()
