"""manage.py erase CONNECTION_ID (--conversations ID ... | --messages ID ...)
[--include-pinned] [--dry-run] --yes: the Erase screen's choices as flags."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from ...erasure import freeze, lifecycle, worker
from ...models import ErasureItem, ErasureJob, Message
from .. import base


class Command(BaseCommand):
    help = "Erase conversations (by provider id) of one connection, as the Erase screen does."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("connection_id")
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument("--conversations", nargs="+", metavar="PROVIDER_ID")
        what.add_argument("--messages", nargs="+", metavar="PROVIDER_ID",
                          help="single messages, where the provider can erase them")
        parser.add_argument("--include-pinned", action="store_true",
                            help="erase pinned messages too (by default they are kept, and "
                                 "a conversation holding them loses only its other messages)")
        parser.add_argument("--dry-run", action="store_true", help="send nothing")
        parser.add_argument("--yes", action="store_true", help="confirm (required)")
        parser.add_argument("--queue", action="store_true", help="hand it to the workers")
        parser.add_argument("--as", dest="as_user", help="requesting user (default: the owner)")

    def handle(self, *args: Any, **opts: Any) -> None:
        connection = base.connection(opts["connection_id"])
        if not opts["yes"]:
            raise CommandError("Erasing cannot be undone: add --yes to confirm "
                               "(or --dry-run --yes to send nothing).")
        by_messages = bool(opts["messages"])
        wanted = list(dict.fromkeys(opts["messages"] or opts["conversations"]))
        chosen: Any = (
            Message.objects.filter(conversation__connection=connection, provider_id__in=wanted)
            if by_messages else connection.conversations.filter(provider_id__in=wanted)
        )
        found = set(chosen.values_list("provider_id", flat=True))
        if missing := [pid for pid in wanted if pid not in found]:
            raise CommandError(f"Not in the mirror of connection {connection.pk}: "
                               f"{', '.join(missing)}. Sync first, or check the ids. "
                               "Nothing was erased.")
        not_present = chosen.exclude(mirror_state="present")
        if not_present.exists():
            ids = ", ".join(not_present.values_list("provider_id", flat=True))
            raise CommandError(
                f"Already erased or gone at the provider: {ids}. Nothing was erased."
            )
        user: Any = connection.owner
        if opts["as_user"]:
            user = get_user_model().objects.filter(username=opts["as_user"]).first()
            if user is None:
                raise CommandError(f"No user named {opts['as_user']!r}.")
        scope = {"select_all": False, "selected": len(wanted), "via": "manage.py erase"}
        try:
            request = (freeze.messages if by_messages else freeze.conversations)(
                user, chosen, scope)
        except freeze.SelectionError as exc:
            raise CommandError(str(exc)) from None
        jobs = list(ErasureJob.objects.filter(request=request))
        try:
            job = lifecycle.confirm(jobs, dry_run=opts["dry_run"], enqueue=opts["queue"],
                                    include_pinned=opts["include_pinned"])[0]
        except freeze.SelectionError as exc:
            raise CommandError(f"{exc} Nothing was erased.") from None
        if job.status == ErasureJob.Status.AWAITING_APPROVAL:
            self.stdout.write(f"job {job.pk} awaiting approval: an approver must approve it "
                              "on the job page before anything is sent")
            return
        if opts["queue"]:
            self.stdout.write(f"job {job.pk} {job.status}: the workers will run it"
                              + (f" after {job.not_before:%H:%M:%S} UTC" if job.not_before
                                 and job.status == ErasureJob.Status.SCHEDULED else ""))
            return
        job = wait_out_window(job, self.stdout.write)
        if job.status == ErasureJob.Status.CANCELLED:
            raise CommandError(f"Job {job.pk} was cancelled during the cancel window.")
        job = worker.work_job(job.pk)
        self.stdout.write(f"job {job.pk} {job.status}: {base.outcome_line(job)}")
        if job.last_error:
            self.stdout.write(job.last_error)
        if job.status != ErasureJob.Status.DONE:
            raise CommandError(f"Job {job.pk} did not finish: {job.get_status_display()}.")
        done = job.counts()
        acted = sum(done[s] for s in (*ErasureItem.PURGED, ErasureItem.State.WOULD_ERASE))
        if not acted:
            raise CommandError(f"Job {job.pk} erased nothing of what was asked "
                               f"({base.outcome_line(job)}).")


def wait_out_window(job: ErasureJob, say: Any) -> ErasureJob:
    """The cancel window holds for the command too: anyone can still cancel on the page."""
    if job.status == ErasureJob.Status.SCHEDULED and job.not_before:
        say(f"job {job.pk} starts at {job.not_before:%H:%M:%S} UTC unless cancelled")
        while timezone.now() < job.not_before:
            time.sleep(min(1.0, (job.not_before - timezone.now()).total_seconds()))
            job.refresh_from_db()
            if job.status != ErasureJob.Status.SCHEDULED:
                return job
        with transaction.atomic():
            job = lifecycle.release_if_due(job)
    return job
