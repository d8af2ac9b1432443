"""Where short-lived access tokens (e.g. a Huawei IAM token) are kept between provider
instances. The dashboard supplies a shared, encrypted cache; alone, a provider keeps them in
memory for its own lifetime."""

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
