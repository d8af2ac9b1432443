"""The Redis broker transport's fix (dashboard/lib/broker.py), at the point where kombu
5.7 fails: a worker whose broker connection is gone closes its channel, and putting the
unacknowledged messages back must be a connection error (the worker reconnects), not an
AttributeError (the worker exits). The race that leads there is rare on a quiet machine,
so it is set up here directly; the worker's outage as a whole is in test_outages.py."""

from __future__ import annotations

import pytest
import redis
from kombu import Connection
from kombu.transport import redis as kombu_redis

from dashboard.lib import broker


def channel_after_the_transport_let_go(url: str, transport: type) -> kombu_redis.Channel:
    connection = Connection(url, transport=transport)
    channel = connection.default_channel
    channel._disconnect_pools()  # what Channel.close() does first...
    channel.connection.client = None  # ...on a transport the connection already closed
    return channel


def test_restoring_unacknowledged_messages_without_a_connection_is_a_connection_error(
        servers):
    channel = channel_after_the_transport_let_go(f"{servers.redis.url}/0", broker.Transport)
    with pytest.raises(redis.exceptions.ConnectionError):
        channel.qos.restore_unacked()
    assert redis.exceptions.ConnectionError in broker.Transport.connection_errors


def test_kombu_itself_still_fails_there(servers):
    """When this fails, kombu has fixed it: drop dashboard/lib/broker.py and this file."""
    channel = channel_after_the_transport_let_go(f"{servers.redis.url}/0",
                                                 kombu_redis.Transport)
    with pytest.raises(AttributeError, match="hostname"):
        channel.qos.restore_unacked()
