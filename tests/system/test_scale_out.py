"""Workers on more than one host: two Celery workers as separate processes, each with its
own host name and data folder, on RabbitMQ, sharing the connection's rate budget in Redis,
with one beat. They work one large erasure together; the provider never counts more than
the budget, each item is sent once, and when one worker is killed the other finishes."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery as CeleryApp

from dashboard.models import ErasureJob
from providers.fakes.convai import ConvaiFake
from tests import processes
from tests.helpers import confirmed_job
from tests.services import answers

from .world import erased_exactly_once, eventually, finished

RATE = 8  # requests per second: the budget Lethe is given for the connection
AMQP = "127.0.0.1", 5672


@pytest.fixture
def convai_fake() -> ConvaiFake:
    fake = ConvaiFake(seed=41, characters=12, sessions=4, turns=(1, 1))
    return fake


@pytest.fixture
def rabbitmq() -> Iterator[str]:
    """A virtual host of its own on the machine's RabbitMQ, removed afterwards."""
    ctl = shutil.which("rabbitmqctl")
    if not answers(*AMQP) or not ctl:
        pytest.fail("The scale-out test needs RabbitMQ on 127.0.0.1:5672 and rabbitmqctl "
                    "(Debian: apt-get install rabbitmq-server).")
    vhost = f"lethe-test-{secrets.token_hex(4)}"
    subprocess.run([ctl, "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run([ctl, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    try:
        yield f"amqp://guest:guest@{AMQP[0]}:{AMQP[1]}/{vhost}"
    finally:
        subprocess.run([ctl, "-q", "delete_vhost", vhost], check=False, capture_output=True)


def test_two_hosts_share_one_erasure_within_the_budget_and_survive_losing_one(
        tmp_path: Path, servers, rabbitmq, synced, convai_fake, transactional_db):
    convai_fake.clear_faults()
    convai_fake.latency = 0.05
    job = confirmed_job(synced, 40)

    def host(name: str) -> dict[str, str]:
        return processes.environment(
            tmp_path / name, CELERY_BROKER_URL=rabbitmq,
            LETHE_REDIS_URL=f"{servers.redis.url}/1",  # the shared budget
            LETHE_PROVIDER_RATE=str(RATE), LETHE_ERASE_WORKERS="2")

    started: list[subprocess.Popen[bytes]] = []
    try:
        for name in ("host-a", "host-b"):
            (tmp_path / name).mkdir()
            started.append(processes.worker(host(name), "--hostname", f"lethe@{name}",
                                            loglevel="INFO", log=tmp_path / f"{name}.log"))
        started.append(processes.beat(host("host-a"), log=tmp_path / "beat.log"))
        sender = CeleryApp("sender", broker=rabbitmq)
        for _ in range(2):  # what `enqueue` sends: one message per worker the job may have
            sender.send_task("dashboard.tasks.run_erasure", args=[job.pk])
        eventually(lambda: sum(convai_fake.deletes.values()) >= 10, 60, "deletes to start")
        processes.kill(started[0])  # host A is lost, with what it had in flight
        erased_exactly_once(finished(job, timeout=180), convai_fake)
    finally:
        for process in started:
            processes.stop(process)
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}")

    # The shared budget held across both hosts: in any two seconds the provider saw at most
    # twice the rate, give or take one request the loaded machine delayed into the window.
    # (With each host on a budget of its own, this test saw 24.)
    assert convai_fake.busiest(2.0) <= 2 * RATE + 1, convai_fake.busiest(2.0)
    for name in ("host-a", "host-b"):  # both worked the job
        assert "dashboard.tasks.run_erasure" in (tmp_path / f"{name}.log").read_text(), name
    assert ErasureJob.objects.get(pk=job.pk).status == ErasureJob.Status.DONE
