"""manage.py rotate_keys: re-encrypt every stored secret under the newest key.

Put the new key first in LETHE_ENCRYPTION_KEYS (keep the old ones after it), run this,
then the old keys can be dropped from the list.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from ...lib import crypto
from ...models import Connection


class Command(BaseCommand):
    help = "Re-encrypt every connection's secrets under the first of LETHE_ENCRYPTION_KEYS."

    def handle(self, *args: Any, **opts: Any) -> None:
        done = 0
        with transaction.atomic():
            for connection in Connection.objects.select_for_update().exclude(
                    secrets_encrypted=""):
                try:
                    # Decrypt first: this also proves the binding to the connection holds.
                    connection.get_secrets()
                    connection.secrets_encrypted = crypto.rotate(connection.secrets_encrypted)
                except (crypto.SecretsUnreadable, InvalidToken) as exc:
                    raise CommandError(
                        f"Connection {connection.pk} cannot be read with the configured keys "
                        f"({type(exc).__name__}); nothing was changed."
                    ) from None
                connection.save(update_fields=["secrets_encrypted"])
                done += 1
        self.stdout.write(f"re-encrypted the secrets of {done} connection(s)")
