"""Where short-lived access tokens (e.g. a Huawei IAM token) are kept between provider
instances. The dashboard supplies a shared, encrypted cache; alone, a provider keeps them in
memory for its own lifetime.

``expires_at`` is when the cache should stop handing the token out. A provider may give a
moment before the token really expires (KooSearch gives its renewal time), so that a
token is replaced before a request can race its expiry.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Protocol


class TokenCache(Protocol):
    def get(self, key: str) -> tuple[str, datetime] | None: ...

    def set(self, key: str, token: str, expires_at: datetime) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryTokenCache:
    def __init__(self) -> None:
        self._items: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[str, datetime] | None:
        with self._lock:
            return self._items.get(key)

    def set(self, key: str, token: str, expires_at: datetime) -> None:
        with self._lock:
            self._items[key] = (token, expires_at)

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)
