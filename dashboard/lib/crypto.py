"""Provider secrets at rest: MultiFernet under LETHE_ENCRYPTION_KEYS, bound to a connection.

The binding (the connection's uid inside the ciphertext) stops a ciphertext copied from one
connection's row to another's from being accepted.
"""

from __future__ import annotations

import json
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretsUnreadable(Exception):
    """The stored secrets cannot be decrypted with the configured keys."""


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.LETHE_ENCRYPTION_KEYS))


def encrypt(binding: str, secrets: dict[str, str]) -> str:
    payload = json.dumps({"bind": binding, "secrets": secrets}).encode()
    return fernet().encrypt(payload).decode()


def decrypt(binding: str, token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        payload = json.loads(fernet().decrypt(token.encode()))
    except (InvalidToken, ValueError) as exc:
        raise SecretsUnreadable(
            "The stored key cannot be decrypted with the configured keys."
        ) from exc
    if payload.get("bind") != binding:
        raise SecretsUnreadable("The stored key belongs to another connection.")
    return dict(payload["secrets"])


def rotate(token: str) -> str:
    """Re-encrypt under the newest key (the first of LETHE_ENCRYPTION_KEYS)."""
    return fernet().rotate(token.encode()).decode()
