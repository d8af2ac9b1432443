"""The fault matrix: for every provider, each fault its fake can stage during an erasure
ends with the right outcome for every item, nothing lost and nothing deleted twice."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dashboard.erasure import worker
from dashboard.models import Connection, ErasureItem, ErasureJob
from providers.fakes import FAKES
from providers.fakes.base import FakeProvider
from tests.helpers import confirmed_job

pytestmark = pytest.mark.django_db
State = ErasureItem.State

Fault = Callable[[FakeProvider], None]


def too_many(fake: FakeProvider) -> None:
    fake.retry_after = 0.2
    fake.fail_next(1, status=429)


def server_errors(fake: FakeProvider) -> None:
    fake.fail_next(2, status=503)


def reset_after_delete(fake: FakeProvider) -> None:
    fake.reset_after_delete_next(1)


def malformed(fake: FakeProvider) -> None:
    fake.malformed_next(1)


def timeout_after_acting(fake: FakeProvider) -> None:
    fake.stall_next(1, seconds=1.5)


GENERIC: dict[str, Fault] = {
    "429 with Retry-After": too_many,
    "5xx burst": server_errors,
    "reset after the delete took effect": reset_after_delete,
    "malformed JSON": malformed,
    "timeout": timeout_after_acting,
}


def expired_token(fake: FakeProvider) -> None:
    fake.expire_tokens()  # type: ignore[attr-defined]


def partial_batch(fake: FakeProvider) -> None:
    fake.partial_next(1)  # type: ignore[attr-defined]


SPECIFIC: dict[str, tuple[str, Fault]] = {
    "expired token": ("expire_tokens", expired_token),
    "partial batch success": ("partial_next", partial_batch),
}

CASES = [(name, label) for name in sorted(FAKES) for label in GENERIC] + [
    (name, label) for name in sorted(FAKES) for label, (knob, _) in SPECIFIC.items()
    if hasattr(FAKES[name], knob)
]


def _erase(connection: Connection, n: int) -> ErasureJob:
    return confirmed_job(connection, n, include_pinned=True)


def _drive(job: ErasureJob) -> ErasureJob:
    """Run the job as workers would until it is done (a few passes for backoffs)."""
    for _ in range(10):
        job = worker.work_job(job.pk)
        if job.status == ErasureJob.Status.DONE:
            break
        ErasureItem.objects.filter(job=job, state=State.PENDING).update(next_attempt_at=None)
    return job


@pytest.mark.parametrize("mirrored, fault", CASES, indirect=["mirrored"])
def test_each_fault_ends_with_every_item_erased_once(mirrored, fault, settings) -> None:  # type: ignore[no-untyped-def]
    fake, connection = mirrored
    settings.LETHE_PROVIDER_TIMEOUT = 1.0
    job = _erase(connection, 4)
    fake.clear_faults()
    apply = GENERIC.get(fault) or SPECIFIC[fault][1]
    apply(fake)
    job = _drive(job)
    states = list(job.items.values_list("state", flat=True))
    details = list(job.items.values_list("detail", flat=True))
    assert job.status == ErasureJob.Status.DONE, details
    assert states == [State.VERIFIED] * 4, details
    assert fake.deletes and max(fake.deletes.values()) == 1
    for item in job.items.all():
        assert fake.message_ids(item.conversation_provider_id) == []


@pytest.mark.parametrize("mirrored", [n for n in sorted(FAKES)
                                      if "soft_delete" in FAKES[n].__init__.__code__.co_varnames],
                         indirect=True)
def test_a_soft_delete_is_reported_as_such_never_as_erased(mirrored) -> None:  # type: ignore[no-untyped-def]
    fake, connection = mirrored
    fake.soft_delete = True  # type: ignore[attr-defined]
    job = _drive(_erase(connection, 2))
    assert set(job.items.values_list("state", flat=True)) == {State.SOFT_DELETED}
    assert job.status == ErasureJob.Status.DONE
