"""What the fault tests work with: the servers they break, the Celery processes they kill,
waiting that rides out the test's own database going away, and the check every test ends
with (nothing lost, nothing sent twice, nothing left unsettled)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from django.db import DatabaseError, connections

from dashboard.models import AuditEvent, ErasureItem, ErasureJob
from providers.fakes.convai import ConvaiFake
from tests import processes
from tests.helpers import wait_for
from tests.services import Postgres, Redis

T = TypeVar("T")


@dataclass
class Servers:
    postgres: Postgres
    redis: Redis


@dataclass
class Celery:
    """The worker and beats of a test, started and killed at will."""

    env: dict[str, str]
    logs: Path
    running: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def worker(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        return self._started(processes.worker(self.env, concurrency=concurrency,
                                              log=self.logs / "worker.log"))

    def beat(self, name: str = "beat") -> subprocess.Popen[bytes]:
        return self._started(processes.beat(self.env, name, log=self.logs / f"{name}.log"))

    def _started(self, process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.running.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        processes.kill(process)
        self.running.remove(process)

    def stop_all(self) -> None:
        for process in self.running:
            processes.stop(process)
        self.running.clear()


def eventually(predicate: Callable[[], T], timeout: float, what: str) -> T:
    """`wait_for` that rides out the test's own database going away and coming back."""
    def attempt() -> T | None:
        try:
            return predicate()
        except DatabaseError:
            connections.close_all()
            return None
    return wait_for(attempt, timeout=timeout, what=what)  # type: ignore[return-value]


def finished(job: ErasureJob, timeout: float = 180.0) -> ErasureJob:
    """The job once done; the deadline is generous, since this is not a benchmark."""
    eventually(lambda: ErasureJob.objects.get(pk=job.pk).status == ErasureJob.Status.DONE,
               timeout, f"job {job.pk} to finish")
    job.refresh_from_db()
    return job


def erased_exactly_once(job: ErasureJob, fake: ConvaiFake) -> None:
    """Every item verified gone (none lost or left unsettled), each deleted at the provider
    exactly once (none sent twice), and the audit entry written once, complete."""
    n = job.items.count()
    states = {s: c for s, c in job.counts().items() if c}
    assert states == {ErasureItem.State.VERIFIED: n}, states
    sessions = set(job.items.values_list("provider_id", flat=True))
    assert {s: fake.deletes[s] for s in sessions} == dict.fromkeys(sessions, 1)
    [entry] = AuditEvent.objects.filter(action=AuditEvent.Action.ERASURE_FINISHED,
                                        object_type="erasurejob", object_id=str(job.pk))
    assert entry.details["outcomes"] == {"verified": n}
