"""Settings, all from environment variables (documented in README.md).

Defaults are the embedded demo: SQLite and a file-system Celery broker under LETHE_DATA_DIR.
Production sets LETHE_DEBUG=0 and must then give its own secret and encryption keys.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def finding_patterns(raw: str) -> dict[str, str]:
    """LETHE_FINDINGS_PATTERNS: {"name": "regex", ...}; a bad one stops the start, clearly."""
    if not raw.strip():
        return {}
    try:
        found = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"LETHE_FINDINGS_PATTERNS is not JSON: {exc}") from exc
    if not isinstance(found, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k.strip() for k, v in found.items()):
        raise ImproperlyConfigured(
            'LETHE_FINDINGS_PATTERNS must be a JSON object of names and regular expressions, '
            'e.g. {"Employee id": "EMP-[0-9]{6}"}.')
    for name, pattern in found.items():
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ImproperlyConfigured(
                f"LETHE_FINDINGS_PATTERNS: {name!r} is not a valid regular expression: {exc}"
            ) from exc
        if compiled.fullmatch(""):
            raise ImproperlyConfigured(
                f"LETHE_FINDINGS_PATTERNS: {name!r} matches empty text; it would find everything.")
    return found


TESTING = "pytest" in sys.modules
DEBUG = env_bool("LETHE_DEBUG", False)
DATA_DIR = Path(os.environ.get("LETHE_DATA_DIR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get("LETHE_SECRET_KEY", "")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("Set LETHE_SECRET_KEY (or LETHE_DEBUG=1 for development).")
    SECRET_KEY = "development-only-not-secret"  # noqa: S105 - debug and tests only  # nosec B105


def _encryption_keys() -> list[str]:
    keys = env_list("LETHE_ENCRYPTION_KEYS")
    if keys:
        return keys
    from cryptography.fernet import Fernet

    if TESTING:
        return [Fernet.generate_key().decode()]  # per process; tests never share ciphertext
    if not DEBUG:
        raise ImproperlyConfigured(
            "Set LETHE_ENCRYPTION_KEYS to one or more Fernet keys (newest first); "
            "Lethe will not store provider keys without them."
        )
    # Development only: a key file of its own beside the data, so that the demo keeps
    # its connections readable across runs. It is never derived from SECRET_KEY.
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key_file = DATA_DIR / "dev-encryption-key"
    if not key_file.exists():
        key_file.write_text(Fernet.generate_key().decode())
        key_file.chmod(0o600)
    return [key_file.read_text().strip()]


LETHE_ENCRYPTION_KEYS = _encryption_keys()

ALLOWED_HOSTS = env_list("LETHE_ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("LETHE_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "csp",
    "mozilla_django_oidc",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "dashboard.team.sso.ProxyHeaderMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "dashboard.lib.timezones.ViewerTimeZoneMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "dashboard.team.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.team.context.role",
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'lethe.sqlite3'}"),
        conn_max_age=int(os.environ.get("LETHE_DB_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo runs a web server and a worker on one file: wait for the lock, don't fail.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
TIME_ZONE = os.environ.get("LETHE_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("LETHE_STATIC_ROOT", DATA_DIR / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING
if DEBUG or TESTING:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns when it is missing

# Security headers. No inline script anywhere, so the policy can be strict.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE = env_bool("LETHE_SECURE", not DEBUG and not TESTING)
SECURE_SSL_REDIRECT = SECURE and env_bool("LETHE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE else None
SECURE_HSTS_SECONDS = 31536000 if SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SESSION_COOKIE_HTTPONLY = True

# Provider access tokens and, later, shared rate budgets live here; Redis in production.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    if not os.environ.get("LETHE_CACHE_URL")
    else {"BACKEND": "django.core.cache.backends.redis.RedisCache",
          "LOCATION": os.environ["LETHE_CACHE_URL"]}
}

# Celery: the message only says "work on job N"; state lives in our tables.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = DATA_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # kombu's Redis transport with a fix for workers that exited when Redis went away
    # mid-task (see dashboard/lib/broker.py).
    CELERY_BROKER_TRANSPORT = "dashboard.lib.broker:Transport"
    # How long Redis waits before handing an unacknowledged message to another worker. A
    # task never runs longer than LETHE_TASK_SLICE (then it gives the job back), so this
    # redelivers only what a dead worker held, and no sooner than a live one could finish.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(
        os.environ.get("LETHE_BROKER_VISIBILITY", "1800"))}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

# Lethe's own knobs.
LETHE_PROVIDER_TIMEOUT = float(os.environ.get("LETHE_PROVIDER_TIMEOUT", "15"))
LETHE_PROVIDER_BACKOFF = float(os.environ.get("LETHE_PROVIDER_BACKOFF", "0.5"))
# Hosts, patterns (*.example.com) or networks (10.0.0.0/8) a connection may use besides the
# provider's own public hosts; the demo and the tests reach their fakes on loopback.
LETHE_PROVIDER_HOSTS = tuple(env_list(
    "LETHE_PROVIDER_HOSTS", "127.0.0.1,localhost,::1" if DEBUG or TESTING else ""))
# Requests per second per connection; empty means each provider's own default.
LETHE_PROVIDER_RATE = float(os.environ.get("LETHE_PROVIDER_RATE") or 0)
# The share of that rate actually used: the rest absorbs network jitter, so that a provider
# counting arrivals never sees more than its limit.
LETHE_PROVIDER_PACE = float(os.environ.get("LETHE_PROVIDER_PACE") or 0.97)
# Without a pinned rate each connection learns its pace from the provider's answers; this
# caps it (requests per second), as does a provider's documented limit. Empty: no cap.
LETHE_PROVIDER_CEILING = float(os.environ.get("LETHE_PROVIDER_CEILING") or 0)
LETHE_PAGE_SIZE = int(os.environ.get("LETHE_PAGE_SIZE", "50"))

# Findings: secrets and personal data the detectors see in mirrored messages.
LETHE_FINDINGS = env_bool("LETHE_FINDINGS", True)
# The region whose own phone-number formats count (numbers with a country code always do).
LETHE_FINDINGS_REGION = os.environ.get("LETHE_FINDINGS_REGION", "US").upper()
# A team's own detectors besides those in the admin: a JSON object of name -> regex.
LETHE_FINDINGS_PATTERNS = finding_patterns(os.environ.get("LETHE_FINDINGS_PATTERNS", ""))
# Kinds whose new findings are notified (e-mail, webhook): e.g. "secret,card".
LETHE_FINDINGS_NOTIFY = env_list("LETHE_FINDINGS_NOTIFY")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LETHE_LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# /metrics for Prometheus: off unless a bearer token or allowed addresses are set.
LETHE_METRICS_TOKEN = os.environ.get("LETHE_METRICS_TOKEN", "")
LETHE_METRICS_ALLOW = env_list("LETHE_METRICS_ALLOW")

LETHE_SWEEP_INTERVAL = float(os.environ.get("LETHE_SWEEP_INTERVAL", "5"))
CELERY_BEAT_SCHEDULE = {
    "sweep-erasure-jobs": {
        "task": "dashboard.tasks.sweep",
        "schedule": LETHE_SWEEP_INTERVAL,
    },
}

if TESTING:
    # Deliberately weak hashing keeps the suite fast; never used outside tests.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Erasure safety: jobs above this many items wait for a second person (an approver);
# LETHE_APPROVAL_ALL=1 makes every real erasure wait. Then a cancel window, in seconds.
LETHE_APPROVAL_THRESHOLD = int(os.environ.get("LETHE_APPROVAL_THRESHOLD", "100"))
LETHE_APPROVAL_ALL = env_bool("LETHE_APPROVAL_ALL", False)
LETHE_CANCEL_WINDOW = int(os.environ.get("LETHE_CANCEL_WINDOW", "60"))
# Above this many items, "Erase" needs the number typed in.
LETHE_TYPED_CONFIRM_THRESHOLD = int(os.environ.get("LETHE_TYPED_CONFIRM_THRESHOLD", "10"))
# A worker silent this long is taken for dead: its sync is failed, its erasure jobs are
# taken over and its items in flight read back. Workers beat at a quarter of it.
LETHE_STUCK_AFTER = int(os.environ.get("LETHE_STUCK_AFTER", "30"))
# Items a worker claims at once; 0 means the provider's largest batch.
LETHE_ERASE_BATCH = int(os.environ.get("LETHE_ERASE_BATCH", "0"))
# Workers that take one job's batches side by side, each with one batch in flight, all
# drawing on the connection's one rate budget.
LETHE_ERASE_WORKERS = max(1, int(os.environ.get("LETHE_ERASE_WORKERS", "2")))
# A worker gives a job back after this many seconds (the sweeper queues it again at once),
# so that no task outlives the broker's visibility timeout.
LETHE_TASK_SLICE = int(os.environ.get("LETHE_TASK_SLICE", "600"))
# Read-backs to verify acknowledged items, tried this many times (30 s apart) before they
# are settled as acknowledged but not verified.
LETHE_VERIFY_TRIES = int(os.environ.get("LETHE_VERIFY_TRIES", "10"))

# Roles: the Django group whose members hold each role, and the role of a signed-in person
# in none of them (local users made in the admin, SSO users without a mapped group).
LETHE_ROLE_GROUPS = {
    "viewer": os.environ.get("LETHE_GROUP_VIEWER", "lethe-viewers"),
    "operator": os.environ.get("LETHE_GROUP_OPERATOR", "lethe-operators"),
    "approver": os.environ.get("LETHE_GROUP_APPROVER", "lethe-approvers"),
    "admin": os.environ.get("LETHE_GROUP_ADMIN", "lethe-admins"),
}
LETHE_DEFAULT_ROLE = os.environ.get("LETHE_DEFAULT_ROLE", "viewer")

# Local sign-in throttling.
LETHE_LOGIN_MAX_FAILURES = int(os.environ.get("LETHE_LOGIN_MAX_FAILURES", "5"))
LETHE_LOGIN_LOCKOUT = int(os.environ.get("LETHE_LOGIN_LOCKOUT", "900"))

# Reverse-proxy SSO (off unless the user header is named).
LETHE_SSO_HEADER_USER = os.environ.get("LETHE_SSO_HEADER_USER", "")
LETHE_SSO_HEADER_EMAIL = os.environ.get("LETHE_SSO_HEADER_EMAIL", "")
LETHE_SSO_HEADER_GROUPS = os.environ.get("LETHE_SSO_HEADER_GROUPS", "")
LETHE_SSO_TRUSTED_PROXIES = env_list("LETHE_SSO_TRUSTED_PROXIES")
# The reverse proxy's addresses or networks: a request from one of them is audited (and
# locked out on failed sign-ins) by the client address the proxy put in X-Forwarded-For.
LETHE_PROXY_ADDRESSES = env_list("LETHE_PROXY_ADDRESSES")
# Local username/password sign-in: on when no SSO is configured, or when forced on.
LETHE_LOCAL_LOGIN = env_bool(
    "LETHE_LOCAL_LOGIN",
    not (LETHE_SSO_HEADER_USER or os.environ.get("LETHE_OIDC_CLIENT_ID")),
)
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
if LETHE_SSO_HEADER_USER:
    AUTHENTICATION_BACKENDS.insert(0, "dashboard.team.sso.ProxyHeaderBackend")
# OpenID Connect (mozilla-django-oidc), on when a client id is given.
LETHE_OIDC_ENABLED = bool(os.environ.get("LETHE_OIDC_CLIENT_ID"))
OIDC_RP_CLIENT_ID = os.environ.get("LETHE_OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = os.environ.get("LETHE_OIDC_CLIENT_SECRET", "")
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ.get("LETHE_OIDC_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = os.environ.get("LETHE_OIDC_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = os.environ.get("LETHE_OIDC_USERINFO_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = os.environ.get("LETHE_OIDC_JWKS_ENDPOINT", "") or None
OIDC_RP_SIGN_ALGO = "RS256"
# Add the scope that releases groups where the provider needs one (Okta, oidc-provider:
# "groups"; Keycloak and authentik put them in profile).
OIDC_RP_SCOPES = os.environ.get("LETHE_OIDC_SCOPES", "openid email profile")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = float(os.environ.get("LETHE_OIDC_TIMEOUT", "10"))
LETHE_OIDC_GROUPS_CLAIM = os.environ.get("LETHE_OIDC_GROUPS_CLAIM", "groups")
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/"
if LETHE_OIDC_ENABLED:
    AUTHENTICATION_BACKENDS.insert(0, "dashboard.team.oidc.SubjectOIDCBackend")

# Retention policies: how often beat looks for due ones (seconds).
LETHE_POLICY_INTERVAL = float(os.environ.get("LETHE_POLICY_INTERVAL", "60"))
CELERY_BEAT_SCHEDULE["run-retention-policies"] = {
    "task": "dashboard.tasks.run_due_policies",
    "schedule": LETHE_POLICY_INTERVAL,
}

# Notifications when a job finishes, fails or waits for approval. E-mail goes out when an
# SMTP host is set (or LETHE_EMAIL_NOTIFICATIONS=1 with another backend).
EMAIL_HOST = os.environ.get("LETHE_EMAIL_HOST", "")
EMAIL_PORT = int(os.environ.get("LETHE_EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("LETHE_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("LETHE_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = env_bool("LETHE_EMAIL_TLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = os.environ.get("LETHE_EMAIL_FROM", "lethe@localhost")
EMAIL_BACKEND = ("django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
                 else "django.core.mail.backends.console.EmailBackend")
LETHE_EMAIL_NOTIFICATIONS = env_bool("LETHE_EMAIL_NOTIFICATIONS", bool(EMAIL_HOST))
LETHE_NOTIFY_EMAILS = env_list("LETHE_NOTIFY_EMAILS")
# The site's address, for links in notifications (e.g. https://lethe.example.com).
LETHE_BASE_URL = os.environ.get("LETHE_BASE_URL", "")
LETHE_WEBHOOK_URL = os.environ.get("LETHE_WEBHOOK_URL", "")
LETHE_WEBHOOK_SECRET = os.environ.get("LETHE_WEBHOOK_SECRET", "")
LETHE_WEBHOOK_TIMEOUT = float(os.environ.get("LETHE_WEBHOOK_TIMEOUT", "5"))

# Sync: requests in flight per connection. Shared rate budgets live in Redis when given.
LETHE_SYNC_CONCURRENCY = int(os.environ.get("LETHE_SYNC_CONCURRENCY", "8"))
# Incremental syncs read only what is new; a full one, at least this often, also finds
# messages deleted or edited elsewhere further back in a history.
LETHE_FULL_SYNC_DAYS = float(os.environ.get("LETHE_FULL_SYNC_DAYS", "7"))
LETHE_REDIS_URL = os.environ.get("LETHE_REDIS_URL", "")
