"""The provider tests reach their fakes on loopback, which a provider calls only where it
is allowed (as an admin allows it with LETHE_PROVIDER_HOSTS)."""

from __future__ import annotations

from typing import Any

from providers import HttpPolicy

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def policy(**changes: Any) -> HttpPolicy:
    """An HttpPolicy that may reach the fakes on loopback (and what ``allowed_hosts`` adds)."""
    allowed = LOOPBACK + tuple(changes.pop("allowed_hosts", ()))
    return HttpPolicy(allowed_hosts=allowed, **changes)
