"""The Redis broker transport: kombu's own, with one fix.

When Redis goes away while a task runs (tasks acknowledge late, so a busy worker always
holds an unacknowledged message), a prefork worker closes its broker connection and then
the channel, which tries to put the unacknowledged message back: kombu 5.7 then reads the
connection details from a transport it has already let go of and fails with
``AttributeError: 'NoneType' object has no attribute 'hostname'``, which the worker treats
as unrecoverable and exits on (the same path as kombu issue #582, closed years ago, back in
5.7). Here that case is the connection error it really is: the
worker reconnects once Redis is back, and the message comes back through the broker's
visibility timeout (the job itself is settled from Lethe's own tables either way).

It is a race (whether the transport was let go of before the channel closes), so a worker
survives some outages without this. tests/system/test_broker.py sets up the failing step
directly and fails once kombu fixes it (5.7.0 is the newest release); test_outages.py
there takes Redis away from a working worker.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was closed")
        return super()._connparams(asynchronous)  # type: ignore[no-untyped-call]


class Transport(kombu_redis.Transport):
    Channel = Channel
