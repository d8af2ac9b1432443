"""Lethe's own infrastructure broken on purpose in the middle of an erasure: the broker
killed, the database stopped, the provider gone, the worker and beat killed with -9, two
beats at once. Each test ends the same way: the job finished by itself once the fault was
over, every item verified gone, none deleted twice (see world.erased_exactly_once)."""

from __future__ import annotations

import time
from itertools import pairwise

from dashboard.erasure import readiness, worker
from dashboard.models import Tick
from tests.helpers import confirmed_job

from .world import erased_exactly_once, eventually, finished

OUTAGE = 15  # seconds each fault lasts


def deleting(fake, at_least: int = 2) -> None:  # type: ignore[no-untyped-def]
    eventually(lambda: sum(fake.deletes.values()) >= at_least, 60, "deletes to start")


def test_the_worker_outlives_a_broker_outage_in_the_middle_of_a_job(servers, celery, mirrored,
                                                                     convai_fake):
    job = confirmed_job(mirrored, 12)
    process = celery.worker()
    celery.beat()
    worker.enqueue(job.pk)
    deleting(convai_fake)
    servers.redis.kill()  # its queues are lost with it: nothing is kept on disk
    time.sleep(OUTAGE)
    assert process.poll() is None, "the worker exited while the broker was away"
    servers.redis.start()
    erased_exactly_once(finished(job), convai_fake)
    # The same worker, never restarted, takes new work from the broker that came back.
    later = confirmed_job(mirrored, 4)
    worker.enqueue(later.pk)
    erased_exactly_once(finished(later), convai_fake)
    assert process.poll() is None


def test_a_database_outage_in_the_middle_of_a_job_is_waited_out(servers, celery, mirrored,
                                                                convai_fake):
    job = confirmed_job(mirrored, 16)
    celery.worker()
    celery.beat()
    worker.enqueue(job.pk)
    deleting(convai_fake)
    servers.postgres.stop("fast")  # every session ended: the worker's and this test's
    assert readiness.check()["database"].startswith("unavailable")  # what /readyz says
    time.sleep(OUTAGE)
    servers.postgres.start()
    erased_exactly_once(finished(job), convai_fake)


def test_a_provider_outage_in_the_middle_of_a_job_is_waited_out(celery, mirrored, convai_fake,
                                                                convai_server):
    job = confirmed_job(mirrored, 12)
    celery.worker()
    celery.beat()
    worker.enqueue(job.pk)
    deleting(convai_fake)
    port = int(convai_server.url.rsplit(":", 1)[1])
    convai_server.stop()  # connections refused: the provider is down
    try:
        time.sleep(OUTAGE)
        assert sum(convai_fake.deletes.values()) < 12  # the outage did land mid-job
    finally:
        back = convai_fake.serve(port=port)
    try:
        erased_exactly_once(finished(job), convai_fake)
    finally:
        back.stop()


def test_a_provider_answering_503_for_a_while_is_waited_out(celery, mirrored, convai_fake):
    job = confirmed_job(mirrored, 12)
    celery.worker()
    celery.beat()
    worker.enqueue(job.pk)
    deleting(convai_fake)
    convai_fake.unavailable_for(OUTAGE)
    erased_exactly_once(finished(job), convai_fake)


def test_a_killed_worker_and_beat_are_replaced_and_the_job_keeps_its_worker_cap(
        celery, mirrored, convai_fake):
    job = confirmed_job(mirrored, 16)
    first, beat = celery.worker(concurrency=4), celery.beat()
    worker.enqueue(job.pk)
    deleting(convai_fake, 4)
    celery.kill(first)  # kill -9, pool children included: leases and items left behind
    celery.kill(beat)
    celery.worker(concurrency=4)  # room for more than LETHE_ERASE_WORKERS=2 on the job
    celery.beat()
    erased_exactly_once(finished(job), convai_fake)
    assert convai_fake.peak_in_flight <= 2  # never more than two workers on the job


def test_two_beats_sweep_as_one(celery, mirrored, convai_fake):
    job = confirmed_job(mirrored, 8)
    celery.worker()
    celery.beat("beat-a")
    celery.beat("beat-b")  # each sends a sweep every second (LETHE_SWEEP_INTERVAL=1)
    worker.enqueue(job.pk)
    ticks = eventually(lambda: Tick.objects.filter(name="sweep").values_list(
        "last_at", flat=True).first(), 60, "the first sweep")
    seen, started = [ticks], time.monotonic()
    while time.monotonic() - started < 10:
        last = Tick.objects.filter(name="sweep").values_list("last_at", flat=True).first()
        if last != seen[-1]:
            seen.append(last)
        time.sleep(0.05)
    gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(seen)]
    assert len(seen) >= 5, "the beats stopped sweeping"
    # Two beats' sweeps would come twice a second; the ones that count, at most once per
    # half interval, and about once a second.
    assert min(gaps) >= 0.5, gaps
    assert len(seen) <= 10 + 2, gaps
    erased_exactly_once(finished(job), convai_fake)
