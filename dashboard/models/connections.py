from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import DatabaseError, models
from django.db.models import Q

import providers
from providers.pacing import AdaptiveBudget, Pace

from ..lib import crypto, labels, ratebudget
from ..lib.tokens import EncryptedTokenCache

log = logging.getLogger(__name__)


class ConnectionQuerySet(models.QuerySet["Connection"]):
    def visible_to(self, user: Any) -> ConnectionQuerySet:
        """Connections a person owns or that are shared with one of their groups."""
        if not user.is_authenticated:
            return self.none()
        shared = Connection.shared_with.through.objects.filter(
            group__in=user.groups.all()
        ).values("connection_id")
        # A subquery rather than a join, so counts over the result are never multiplied.
        return self.filter(Q(owner=user) | Q(pk__in=shared))


class Connection(models.Model):
    class Status(models.TextChoices):
        OK = "ok", labels.CONNECTION_STATUS["ok"]
        INVALID = "invalid", labels.CONNECTION_STATUS["invalid"]
        PAUSED = "paused", labels.CONNECTION_STATUS["paused"]
        # Saved without a check ("save without checking"): no test or sync has read it yet.
        UNCHECKED = "unchecked", labels.CONNECTION_STATUS["unchecked"]

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="connections"
    )
    provider = models.CharField(
        max_length=40, choices=[(name, cls.label) for name, cls in providers.REGISTRY.items()]
    )
    label = models.CharField(max_length=120)
    secrets_encrypted = models.TextField(blank=True, editable=False)
    # A hint such as "…a1f9" so people can tell keys apart without seeing them.
    secret_hint = models.CharField(max_length=12, blank=True, editable=False)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OK)
    last_error = models.TextField(blank=True)
    account_name = models.CharField(max_length=200, blank=True)
    shared_with = models.ManyToManyField(Group, blank=True, related_name="connections")
    created_at = models.DateTimeField(auto_now_add=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    # The pace learned from the provider's answers (requests/s), so the next sync or
    # erasure starts there; see providers/pacing.py. Empty until one was learned.
    pace = models.JSONField(default=dict, blank=True, editable=False)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["label", "id"]

    def __str__(self) -> str:
        if self.provider_label.lower() in self.label.lower():
            return self.label
        return f"{self.label} ({self.provider_label})"

    @property
    def provider_class(self) -> type[providers.Provider]:
        return providers.get(self.provider)

    @property
    def provider_label(self) -> str:
        try:
            return self.provider_class.label
        except providers.PermanentError:
            return self.provider

    def key_refused(self, exc: providers.ProviderError) -> str:
        """What a person reads when the provider refused the stored key."""
        return (f"{self.provider_label} refused the key ending {self.secret_hint}: "
                f"{exc.sentence} Replace the key (Edit / replace key).")

    @property
    def health(self) -> tuple[str, str]:
        """What the last check or sync found, as (css state, words): an "OK" status with
        an error since (the provider unreachable, say) does not read OK."""
        if self.status == self.Status.OK and self.last_error:
            return "failing", "Last check failed"
        return self.status, self.get_status_display()

    @property
    def addresses(self) -> list[tuple[str, str]]:
        """(label, where) of each provider address this connection uses, for its page: the
        one it was pointed at, or the provider's own (never a user:password in it)."""
        found = []
        for spec in self.provider_class.fields:
            if spec.secret or not spec.name.endswith("_url"):
                continue
            value = str(self.options.get(spec.name) or "")
            if value and value != spec.default:
                parts = urlsplit(value)
                where = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
            else:
                where = (f"{spec.default} (the provider's own)" if spec.default
                         else "the provider's own for the region")
            found.append((spec.label, where))
        return found

    def set_secrets(self, secrets: dict[str, str]) -> None:
        self.secrets_encrypted = crypto.encrypt(str(self.uid), secrets)
        longest = max(secrets.values(), key=len, default="")
        self.secret_hint = f"…{longest[-4:]}" if len(longest) >= 12 else "…"

    def get_secrets(self) -> dict[str, str]:
        return crypto.decrypt(str(self.uid), self.secrets_encrypted)

    def open_provider(self, **kwargs: Any) -> providers.Provider:
        """The provider client for this connection; the only place secrets are decrypted."""
        options = {k: str(v) for k, v in self.options.items()}
        kwargs.setdefault("policy", providers.HttpPolicy(
            timeout=settings.LETHE_PROVIDER_TIMEOUT, backoff=settings.LETHE_PROVIDER_BACKOFF,
            allowed_hosts=tuple(settings.LETHE_PROVIDER_HOSTS)))
        kwargs.setdefault("token_cache", EncryptedTokenCache())
        kwargs.setdefault("cache_key", str(self.uid))
        if "budget" not in kwargs:
            kwargs["budget"] = self.budget()
        return self.provider_class(self.get_secrets(), options, **kwargs)

    def budget(self) -> providers.RateBudget:
        """The budget every worker of this connection draws on (Redis where configured):
        the rate an operator pinned, else the pace learned from the provider's answers."""
        capabilities = self.provider_class.capabilities
        if settings.LETHE_PROVIDER_RATE:
            return ratebudget.for_connection(str(self.uid), settings.LETHE_PROVIDER_RATE)
        ceilings = [c for c in (capabilities.max_requests_per_second,
                                settings.LETHE_PROVIDER_CEILING) if c]
        learned = Pace.from_dict(self.pace) if self.pace.get("rate") else None
        return ratebudget.adaptive(str(self.uid), capabilities.requests_per_second,
                                   ceiling=min(ceilings) if ceilings else None,
                                   learned=learned)

    def remember_pace(self, budget: providers.RateBudget) -> None:
        """Keep what ``budget`` learned, so the next sync or erasure starts there (after a
        restart too). A pinned rate learns nothing. The work's own outcome stands whether
        or not this could be written."""
        if not isinstance(budget, AdaptiveBudget):
            return
        self.pace = budget.pace.as_dict()
        try:
            Connection.objects.filter(pk=self.pk).update(pace=self.pace)
        except DatabaseError as exc:
            log.warning("the learned pace of connection %s was not saved: %s", self.pk,
                        type(exc).__name__)

    @property
    def pinned_rate(self) -> float | None:
        """The rate an operator pinned for every connection (LETHE_PROVIDER_RATE), if any."""
        return settings.LETHE_PROVIDER_RATE or None

    @property
    def pinned_pace(self) -> float | None:
        """The rate requests really go at under a pinned rate: paced under it."""
        return (settings.LETHE_PROVIDER_RATE * settings.LETHE_PROVIDER_PACE
                if settings.LETHE_PROVIDER_RATE else None)

    @property
    def pace_probing(self) -> bool:
        """Whether the learned pace is still doubling: no limit nor slowness met yet."""
        return bool(self.pace.get("probing", True))

    @property
    def pace_rate(self) -> float | None:
        """The learned pace in requests/s, None before one was learned."""
        rate = self.pace.get("rate")
        return float(rate) if rate else None

    @property
    def pace_learned_at(self) -> datetime | None:
        return _moment(self.pace.get("changed_at"))

    @property
    def pace_last_429_at(self) -> datetime | None:
        """When the provider last refused (a 429, or rate-limit headers: `pace_refused_by`)."""
        return _moment(self.pace.get("last_429"))

    @property
    def pace_refused_by(self) -> str:
        return str(self.pace.get("refused_by", "429"))


def _moment(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


class OIDCIdentity(models.Model):
    """Who a person is at the OpenID Connect provider: its stable subject id."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="oidc_identity")
    sub = models.CharField(max_length=255, unique=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.sub})"


class ProxyIdentity(models.Model):
    """A person the trusted proxy's header may sign in: created with the account when the
    header first names it, or added by an admin to link an existing account. A header naming
    any other account (a local one with a password, say) signs nobody in."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="proxy_identity")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "proxy identities"

    def __str__(self) -> str:
        return str(self.user)
