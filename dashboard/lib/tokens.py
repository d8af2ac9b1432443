"""Provider access tokens (e.g. Huawei IAM) shared by every worker of a connection.

Kept in Django's cache (Redis in production, so all workers share one token per connection)
and encrypted with the same keys as the stored secrets: a token is as good as a password
while it lives.
"""

from __future__ import annotations

from datetime import datetime

from django.core.cache import cache
from django.utils import timezone

from . import crypto


class EncryptedTokenCache:
    def get(self, key: str) -> tuple[str, datetime] | None:
        stored = cache.get(f"lethe:token:{key}")
        if not stored:
            return None
        try:
            secrets = crypto.decrypt(key, stored)
        except crypto.SecretsUnreadable:
            return None
        return secrets["token"], datetime.fromisoformat(secrets["expires_at"])

    def set(self, key: str, token: str, expires_at: datetime) -> None:
        ttl = max(1, int((expires_at - timezone.now()).total_seconds()))
        payload = crypto.encrypt(key, {"token": token, "expires_at": expires_at.isoformat()})
        cache.set(f"lethe:token:{key}", payload, timeout=ttl)

    def delete(self, key: str) -> None:
        cache.delete(f"lethe:token:{key}")
