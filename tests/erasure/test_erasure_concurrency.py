"""Several workers on one job, and workers killed in the middle of one: every item ends in
a final state and the provider sees at most one successful delete per item."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
from django.db import connection as db_connection

from dashboard.erasure import worker
from dashboard.mirror import sync
from dashboard.models import ErasureItem, ErasureJob
from providers.fakes.convai import ConvaiFake
from tests import processes
from tests.helpers import confirmed_job, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def convai_fake() -> ConvaiFake:
    # Many characters, so a job spans many delete calls.
    return ConvaiFake(seed=21, characters=12, sessions=4, turns=(1, 1))


def synced_job(connection, n: int) -> ErasureJob:  # type: ignore[no-untyped-def]
    assert sync.perform_sync(sync.start(connection).pk).status == "ok"
    return confirmed_job(connection, n)


def test_eight_concurrent_workers_never_send_an_item_twice(connection, convai_fake, settings):
    settings.LETHE_ERASE_BATCH = 3
    convai_fake.latency = 0.01
    job = synced_job(connection, 40)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            start.wait()
            worker.work_job(job.pk)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    job.refresh_from_db()
    assert job.status == ErasureJob.Status.DONE
    assert job.counts()[ErasureItem.State.VERIFIED] == 40
    assert len(convai_fake.deletes) == 40
    assert set(convai_fake.deletes.values()) == {1}


def start_worker(broker_dir: str) -> subprocess.Popen[bytes]:
    """A worker with its beat, on a file-system broker in ``broker_dir``, logging what it
    receives to ``worker.log`` there (a failing test prints it)."""
    env = processes.environment(Path(broker_dir), CELERY_BROKER_URL="filesystem://",
                                LETHE_STUCK_AFTER="2")
    return processes.worker(env, "--beat", "--schedule", os.path.join(broker_dir, "beat"),
                            loglevel="INFO", log=Path(broker_dir) / "worker.log")


@pytest.mark.parametrize("victim", ["worker", "pool_child"])
def test_a_killed_worker_leaves_no_item_unsettled_and_none_deleted_twice(
        connection, convai_fake, victim):
    convai_fake.latency = 0.15
    job = synced_job(connection, 10)
    with tempfile.TemporaryDirectory() as broker_dir:
        worker = start_worker(broker_dir)
        try:
            # The test process sends the task through the same file-system broker.
            send_task(broker_dir, job.pk)
            wait_for(lambda: len(convai_fake.deletes) >= 2, timeout=60,
                     what="the worker to start deleting")
            pid = worker.pid if victim == "worker" else processes.pool_child(worker)
            os.kill(pid, signal.SIGKILL)
            if victim == "worker":
                worker.wait(timeout=10)
                os.killpg(worker.pid, signal.SIGKILL)
                worker = start_worker(broker_dir)
            wait_for(lambda: ErasureJob.objects.get(pk=job.pk).status == "done", timeout=120,
                     what="the job to finish after the crash")
        finally:
            processes.stop(worker)
            # Shown by pytest only when the test fails: a worker that never started deleting
            # says here whether it started, received the task, or failed (without the beat's
            # sweep, sent every second, and the provider's request lines).
            lines = (Path(broker_dir) / "worker.log").read_text(errors="replace").splitlines()
            print("\n".join(line for line in lines
                            if "sweep" not in line and "providers.http" not in line))
    job.refresh_from_db()
    states = set(job.items.values_list("state", flat=True))
    assert states <= {ErasureItem.State.VERIFIED}, states
    assert max(convai_fake.deletes.values()) == 1


def send_task(broker_dir: str, job_id: int) -> None:
    from celery import Celery

    app = Celery("sender", broker="filesystem://")
    folder = os.path.join(broker_dir, "broker", "out")
    control = os.path.join(broker_dir, "broker", "control")
    os.makedirs(folder, exist_ok=True)
    os.makedirs(control, exist_ok=True)
    app.conf.broker_transport_options = {"data_folder_in": folder, "data_folder_out": folder,
                                         "control_folder": control}
    app.send_task("dashboard.tasks.run_erasure", args=[job_id])
