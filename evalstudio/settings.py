"""EvalStudio settings, read from the environment.

With nothing set, the embedded default runs: SQLite and a filesystem Celery broker under `var/`, so `make run`
needs no server. `DATABASE_URL` / `REDIS_URL` switch to PostgreSQL / Redis. Bad values fail loudly at start-up.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from core.rates import Rate, parse_rate

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("EVALSTUDIO_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {value!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "annotation",
    "judges",
    "suites",
    "monitoring",
    "agents",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "evalstudio.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "evalstudio.urls"
WSGI_APPLICATION = "evalstudio.wsgi.application"

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
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "evalstudio.sqlite3",
            # The web server and the worker write concurrently: wait for the lock instead of failing.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
    # A covering index (INCLUDE) is a PostgreSQL speed-up; on SQLite it is a plain index, which is all it needs.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery. The filesystem transport needs no server: the embedded default for `make run`.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast (pidbox) messages; kombu would otherwise write a `control/` folder into the working directory.
        "control_folder": str(_broker_dir / "control"),
    }
else:
    # Longer than the longest task, so a slow task is not redelivered while it still runs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60)}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# A net under every task (each task also states its own limits): the soft limit raises inside the task, which
# ends its run FAILED with the reason; the hard limit kills a task that ignored it. Both stay under the broker's
# visibility timeout, so a task is never redelivered while it still runs.
CELERY_TASK_SOFT_TIME_LIMIT = 15 * 60
CELERY_TASK_TIME_LIMIT = 16 * 60
# A worker run (an import, a clustering, a judge, suite or grading run) whose heartbeat is older than this lost its
# worker, and the next delivery takes it over. The heartbeat is written every sixth of it by a thread beside the
# work, whatever the work is doing, so the window need not outlast the slowest LLM call: only a dead worker is silent.
EVALSTUDIO_RUN_STALE_SECONDS = env_int("EVALSTUDIO_RUN_STALE_SECONDS", 60, minimum=1)

# --- robust (issue 12): Redis and the broker are optimisations; bad input is a 400 naming the problem. ---
# The cache fails open (core/cache.py): while Redis cannot be reached reads miss and writes drop, and for
# EVALSTUDIO_CACHE_RETRY_SECONDS after a failure Redis is not tried again (one warning per period). Connect and
# socket timeouts are short so that a down or unreachable Redis costs a page milliseconds.
EVALSTUDIO_REDIS_CONNECT_TIMEOUT_MS = env_int("EVALSTUDIO_REDIS_CONNECT_TIMEOUT_MS", 250, minimum=1)
EVALSTUDIO_REDIS_SOCKET_TIMEOUT_MS = env_int("EVALSTUDIO_REDIS_SOCKET_TIMEOUT_MS", 1000, minimum=1)
EVALSTUDIO_CACHE_RETRY_SECONDS = env_int("EVALSTUDIO_CACHE_RETRY_SECONDS", 5, minimum=0)
if REDIS_URL:
    CACHES["default"] = {
        "BACKEND": "core.cache.FailOpenRedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "socket_connect_timeout": EVALSTUDIO_REDIS_CONNECT_TIMEOUT_MS / 1000,
            "socket_timeout": EVALSTUDIO_REDIS_SOCKET_TIMEOUT_MS / 1000,
            "retry_seconds": EVALSTUDIO_CACHE_RETRY_SECONDS,
        },
    }
if not CELERY_BROKER_URL.startswith("filesystem://"):
    # A publish to a broker that is down fails at once instead of retrying for seconds (kombu's connection retries,
    # ~6 s measured): every run is a database row that a starting worker queues again (core.runs.runs_resume).
    # The worker's own connection keeps retrying (broker_connection_max_retries), unaffected by these.
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        max_retries=0, socket_connect_timeout=EVALSTUDIO_REDIS_CONNECT_TIMEOUT_MS / 1000
    )
    CELERY_BROKER_CONNECTION_TIMEOUT = EVALSTUDIO_REDIS_CONNECT_TIMEOUT_MS / 1000
CELERY_TASK_PUBLISH_RETRY = False
# A NUL character in a URL's path or query is a 400 before any view runs (PostgreSQL cannot compare text with one).
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "core.middleware.RefuseNulMiddleware"
)
# User JSON (traces, suite bodies, judge and grader configs) nested deeper than this is refused (core/json_input.py).
EVALSTUDIO_MAX_JSON_DEPTH = env_int("EVALSTUDIO_MAX_JSON_DEPTH", 64, minimum=2)
# How long one user-supplied regular expression may take on one text (assertion regex checks) before that trace's
# check ends as an error; a catastrophic pattern never holds a worker or a request longer than this.
EVALSTUDIO_REGEX_TIMEOUT_MS = env_int("EVALSTUDIO_REGEX_TIMEOUT_MS", 100, minimum=1)
# --- end robust ---

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "project_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie; kept default for admin.
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# Ingestion limits.
EVALSTUDIO_MAX_TRACE_BYTES = env_int("EVALSTUDIO_MAX_TRACE_BYTES", 1_000_000, minimum=1)
EVALSTUDIO_MAX_REQUEST_BYTES = env_int("EVALSTUDIO_MAX_REQUEST_BYTES", 50_000_000, minimum=1)
EVALSTUDIO_MAX_UPLOAD_BYTES = env_int("EVALSTUDIO_MAX_UPLOAD_BYTES", 2_000_000_000, minimum=1)
# The expert's sitting (annotation.sittings): it ends after this many minutes without a label; the review page
# suggests a break after this long or this many traces (never blocks).
EVALSTUDIO_SITTING_GAP_MINUTES = env_int("EVALSTUDIO_SITTING_GAP_MINUTES", 30, minimum=1)
EVALSTUDIO_SITTING_BREAK_MINUTES = env_int("EVALSTUDIO_SITTING_BREAK_MINUTES", 45, minimum=1)
EVALSTUDIO_SITTING_BREAK_TRACES = env_int("EVALSTUDIO_SITTING_BREAK_TRACES", 60, minimum=1)
# Feedback for a trace not stored yet (a Langfuse score ahead of its spans) waits this long for the trace.
EVALSTUDIO_PENDING_FEEDBACK_DAYS = env_int("EVALSTUDIO_PENDING_FEEDBACK_DAYS", 30, minimum=1)
# Django's own guard would answer oversize API bodies with a 400 before our 413; ours is the one that counts.
DATA_UPLOAD_MAX_MEMORY_SIZE = None
FILE_UPLOAD_MAX_MEMORY_SIZE = 5_000_000

# LLM provider (used by judges).
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "")
EVALSTUDIO_JUDGE_MODEL = os.environ.get("EVALSTUDIO_JUDGE_MODEL", "gpt-4.1-mini")
# LLM calls in flight at once per judge run, and the openai client's retries (429/5xx/timeouts, with backoff that
# honours Retry-After) before a judgment is recorded as an error.
EVALSTUDIO_JUDGE_CONCURRENCY = env_int("EVALSTUDIO_JUDGE_CONCURRENCY", 16, minimum=1)
EVALSTUDIO_LLM_MAX_RETRIES = env_int("EVALSTUDIO_LLM_MAX_RETRIES", 4, minimum=0)
# Naming suggested groupings of notes: the model, how long one call may take before the term-based name stays, and
# the answer's token limit (room for a reasoning model's thinking; the name itself is a few dozen tokens).
EVALSTUDIO_LLM_MODEL = os.environ.get("EVALSTUDIO_LLM_MODEL", EVALSTUDIO_JUDGE_MODEL)
EVALSTUDIO_LLM_TIMEOUT_SECONDS = env_int("EVALSTUDIO_LLM_TIMEOUT_SECONDS", 30, minimum=1)
EVALSTUDIO_LLM_MAX_TOKENS = env_int("EVALSTUDIO_LLM_MAX_TOKENS", 4000, minimum=50)

# Production monitoring (monitoring/): Celery beat drains the sampled traces to the promoted judges and evaluates
# alert rules on these periods. A drain stops taking new chunks after EVALSTUDIO_MONITOR_DRAIN_BUDGET_SECONDS so
# that runs never pile up behind each other; a drain's claim on a chunk expires after the lease (a dead worker).
EVALSTUDIO_MONITOR_DRAIN_SECONDS = env_int("EVALSTUDIO_MONITOR_DRAIN_SECONDS", 60, minimum=1)
EVALSTUDIO_MONITOR_ALERT_SECONDS = env_int("EVALSTUDIO_MONITOR_ALERT_SECONDS", 300, minimum=1)
EVALSTUDIO_MONITOR_DRAIN_BUDGET_SECONDS = env_int("EVALSTUDIO_MONITOR_DRAIN_BUDGET_SECONDS", 50, minimum=1)
EVALSTUDIO_MONITOR_LEASE_SECONDS = env_int("EVALSTUDIO_MONITOR_LEASE_SECONDS", 600, minimum=1)
# A newly promoted version judges the sampled traces that arrived in this many hours before it (then all new ones).
EVALSTUDIO_MONITOR_BACKFILL_HOURS = env_int("EVALSTUDIO_MONITOR_BACKFILL_HOURS", 168, minimum=0)
EVALSTUDIO_MONITOR_WEBHOOK_TIMEOUT_SECONDS = env_int("EVALSTUDIO_MONITOR_WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1)
# Outbound requests (issue 12, outbound part; core/outbound.py). Hosts or CIDRs the server may call although they
# are loopback, private or otherwise non-public (an internal webhook receiver): `hooks.internal,10.20.0.0/16`.
# Checked here so that a typo fails at start-up rather than at the first delivery.
EVALSTUDIO_OUTBOUND_ALLOWLIST = env_list("EVALSTUDIO_OUTBOUND_ALLOWLIST", [])
try:
    from core.outbound import parse_allowlist

    parse_allowlist(EVALSTUDIO_OUTBOUND_ALLOWLIST)
except ValueError as _exc:
    raise ImproperlyConfigured(f"EVALSTUDIO_OUTBOUND_ALLOWLIST: {_exc}") from None
# A webhook receiver's whole answer must arrive within EVALSTUDIO_MONITOR_WEBHOOK_TIMEOUT_SECONDS (above); what it
# sends back beyond this many bytes is not read.
EVALSTUDIO_OUTBOUND_MAX_RESPONSE_BYTES = env_int("EVALSTUDIO_OUTBOUND_MAX_RESPONSE_BYTES", 65536, minimum=1)

CELERY_BEAT_SCHEDULE = {
    "monitoring-drain": {
        "task": "monitoring.tasks.monitor_drain_task",
        "schedule": float(EVALSTUDIO_MONITOR_DRAIN_SECONDS),
        # A drain that waited longer than its period is superseded by the next one.
        "options": {"expires": float(EVALSTUDIO_MONITOR_DRAIN_SECONDS)},
    },
    "monitoring-alerts": {
        "task": "monitoring.tasks.monitor_alerts_task",
        "schedule": float(EVALSTUDIO_MONITOR_ALERT_SECONDS),
        "options": {"expires": float(EVALSTUDIO_MONITOR_ALERT_SECONDS)},
    },
    # The loop's weekly digests (judges.digest): hourly, each project's is sent once a week when it has a webhook.
    "loop-digests": {
        "task": "judges.tasks.loop_digests_task",
        "schedule": 3600.0,
        "options": {"expires": 3600.0},
    },
}

# --- API auth and abuse limits (issue 12, part apiauth; docs/security-auth.md) -----------------------------------
# Login lockout (django-axes): after EVALSTUDIO_LOGIN_FAILURE_LIMIT failed logins the username is locked for that
# client IP for EVALSTUDIO_LOGIN_COOLOFF_MINUTES, the right password included; a success resets the count.
EVALSTUDIO_LOGIN_FAILURE_LIMIT = env_int("EVALSTUDIO_LOGIN_FAILURE_LIMIT", 5, minimum=1)
EVALSTUDIO_LOGIN_COOLOFF_MINUTES = env_int("EVALSTUDIO_LOGIN_COOLOFF_MINUTES", 15, minimum=1)
# How many reverse proxies of the operator's stand in front of gunicorn. 0: the socket's address is the client (and
# X-Forwarded-For, which anyone can send, is ignored); N: the N-th address from the right of X-Forwarded-For.
EVALSTUDIO_TRUSTED_PROXY_COUNT = env_int("EVALSTUDIO_TRUSTED_PROXY_COUNT", 0, minimum=0)
INSTALLED_APPS += ["axes"]
# Axes' backend first: it refuses a locked-out login before the password is even checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = EVALSTUDIO_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=EVALSTUDIO_LOGIN_COOLOFF_MINUTES)
# Username and IP together: a guesser elsewhere cannot lock a colleague out, nor spread guesses over accounts from
# one address without each account locking.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "core.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "core.client_ip.client_ip"
AXES_VERBOSE = False


def env_rate(name: str, default: str) -> Rate | None:
    try:
        return parse_rate(name, os.environ.get(name) or default)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None


# Requests to /api/v1/ per bearer token and per client IP (every request from the address counts, token or not, so
# guesses at tokens are limited too); `N/s|m|h|d`, `N/10s` for other windows, 0 disables. Counted in the cache:
# with Redis shared by all web processes; without REDIS_URL per process. A cache that is down lets requests through.
EVALSTUDIO_API_RATE_PER_TOKEN = env_rate("EVALSTUDIO_API_RATE_PER_TOKEN", "600/m")
EVALSTUDIO_API_RATE_PER_IP = env_rate("EVALSTUDIO_API_RATE_PER_IP", "1200/m")
# Before sessions and CSRF: a limited request costs no session read. Axes' middleware last, as its docs require.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware"), "core.ratelimit.ApiRateLimitMiddleware"
)
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
# --- end of API auth and abuse limits ------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # The openai client's HTTP library (httpx2 in this openai release) logs every request at INFO: thousands of
    # lines per judge run.
    "loggers": {"httpx": {"level": "WARNING"}, "httpx2": {"level": "WARNING"}},
}

# --- deploy (issue 12): HTTPS behind a TLS-terminating proxy, optional OpenID Connect login, object storage ------
# One switch for a public deployment behind a proxy that terminates TLS and sets X-Forwarded-Proto (docs/security.md).
# The proxy must overwrite X-Forwarded-Proto from clients, or a client could claim https on a plain connection.
EVALSTUDIO_HTTPS = env_bool("EVALSTUDIO_HTTPS", False)
EVALSTUDIO_HSTS_SECONDS = env_int("EVALSTUDIO_HSTS_SECONDS", 31_536_000, minimum=0)
EVALSTUDIO_HSTS_INCLUDE_SUBDOMAINS = env_bool("EVALSTUDIO_HSTS_INCLUDE_SUBDOMAINS", False)
EVALSTUDIO_HSTS_PRELOAD = env_bool("EVALSTUDIO_HSTS_PRELOAD", False)
if EVALSTUDIO_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # The container health check calls the app over plain HTTP on loopback; it must not be redirected.
    SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
    SECURE_HSTS_SECONDS = EVALSTUDIO_HSTS_SECONDS
    SECURE_HSTS_INCLUDE_SUBDOMAINS = EVALSTUDIO_HSTS_INCLUDE_SUBDOMAINS
    SECURE_HSTS_PRELOAD = EVALSTUDIO_HSTS_PRELOAD
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # HSTS for every subdomain and the browsers' preload list bind hosts this app does not own; they are the
    # operator's opt-ins (above), so their reminders are silenced rather than answered by default.
    _silenced: list[str] = globals().setdefault("SILENCED_SYSTEM_CHECKS", [])
    if not EVALSTUDIO_HSTS_INCLUDE_SUBDOMAINS:
        _silenced.append("security.W005")
    if not EVALSTUDIO_HSTS_PRELOAD:
        _silenced.append("security.W021")

# OpenID Connect login (mozilla-django-oidc), off unless a provider is configured. Endpoints come from the issuer's
# discovery document (fetched on first use) unless given explicitly.
EVALSTUDIO_OIDC_ISSUER = os.environ.get("EVALSTUDIO_OIDC_ISSUER", "").strip().rstrip("/")
OIDC_RP_CLIENT_ID = os.environ.get("EVALSTUDIO_OIDC_CLIENT_ID", "").strip()
OIDC_RP_CLIENT_SECRET = os.environ.get("EVALSTUDIO_OIDC_CLIENT_SECRET", "")
EVALSTUDIO_OIDC_PROVIDER_NAME = os.environ.get("EVALSTUDIO_OIDC_PROVIDER_NAME", "").strip() or "single sign-on"
_oidc_endpoints = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "EVALSTUDIO_OIDC_AUTHORIZATION_ENDPOINT",
    "OIDC_OP_TOKEN_ENDPOINT": "EVALSTUDIO_OIDC_TOKEN_ENDPOINT",
    "OIDC_OP_USER_ENDPOINT": "EVALSTUDIO_OIDC_USERINFO_ENDPOINT",
    "OIDC_OP_JWKS_ENDPOINT": "EVALSTUDIO_OIDC_JWKS_ENDPOINT",
}
for _setting, _env in _oidc_endpoints.items():
    globals()[_setting] = os.environ.get(_env, "").strip()
EVALSTUDIO_OIDC_ENABLED = bool(
    EVALSTUDIO_OIDC_ISSUER
    or OIDC_RP_CLIENT_ID
    or OIDC_RP_CLIENT_SECRET
    or any(os.environ.get(e) for e in _oidc_endpoints.values())
)
if EVALSTUDIO_OIDC_ENABLED:
    _missing = [n for n in ("EVALSTUDIO_OIDC_CLIENT_ID", "EVALSTUDIO_OIDC_CLIENT_SECRET") if not os.environ.get(n)]
    if not EVALSTUDIO_OIDC_ISSUER:
        _missing += [
            e for e in _oidc_endpoints.values() if e != "EVALSTUDIO_OIDC_USERINFO_ENDPOINT" and not os.environ.get(e)
        ]
    if _missing:
        raise ImproperlyConfigured(
            "OpenID Connect login is half configured: set "
            + ", ".join(_missing)
            + " (or EVALSTUDIO_OIDC_ISSUER for the endpoints), or unset every EVALSTUDIO_OIDC_* variable"
        )
    for _name in ("EVALSTUDIO_OIDC_ISSUER", *_oidc_endpoints.values()):
        _value = os.environ.get(_name, "").strip()
        if _value and not _value.startswith(("https://", "http://")):
            raise ImproperlyConfigured(f"{_name} must be an http(s) URL, got {_value!r}")
# The views answer 404 while OIDC is off, so the routes can always be there.
INSTALLED_APPS.append("mozilla_django_oidc")
OIDC_AUTHENTICATE_CLASS = "annotation.oidc.DiscoveryAuthenticationRequestView"
OIDC_CALLBACK_CLASS = "annotation.oidc.InvitationCallbackView"
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = "openid email profile"
# PKCE on top of the client secret: an intercepted authorization code is useless without the verifier.
OIDC_USE_PKCE = True
OIDC_TIMEOUT = env_int("EVALSTUDIO_OIDC_TIMEOUT_SECONDS", 10, minimum=1)
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=failed"
EVALSTUDIO_PASSWORD_LOGIN = env_bool("EVALSTUDIO_PASSWORD_LOGIN", True)
if not EVALSTUDIO_PASSWORD_LOGIN and not EVALSTUDIO_OIDC_ENABLED:
    raise ImproperlyConfigured(
        "EVALSTUDIO_PASSWORD_LOGIN=0 needs OpenID Connect login (EVALSTUDIO_OIDC_*): nobody could log in"
    )
# Passwords stay for admins and scripts unless switched off; then only the provider signs anyone in. Built on the list
# already set above (a lockout backend may come first), so this block only removes the password backend or adds SSO.
_password_backend = "django.contrib.auth.backends.ModelBackend"
AUTHENTICATION_BACKENDS = [
    backend for backend in AUTHENTICATION_BACKENDS if EVALSTUDIO_PASSWORD_LOGIN or backend != _password_backend
]
if EVALSTUDIO_OIDC_ENABLED:
    AUTHENTICATION_BACKENDS.append("annotation.oidc.InvitationOIDCBackend")
TEMPLATES[0]["OPTIONS"]["context_processors"].append("annotation.context_processors.login_options")

# Object storage for uploads (S3-compatible, django-storages) so web and workers on different machines share them;
# unset, uploads stay local files under var/media (the embedded default). Format in core/storage_url.py.
EVALSTUDIO_STORAGE_URL = os.environ.get("EVALSTUDIO_STORAGE_URL", "").strip()
if EVALSTUDIO_STORAGE_URL:
    from core.storage_url import s3_storage_options, s3_transfer_config

    try:
        _storage_options = s3_storage_options(EVALSTUDIO_STORAGE_URL)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    # Multipart transfers bounded in memory, whatever the file's size (core/storage_url.py).
    _storage_options["transfer_config"] = s3_transfer_config()
    STORAGES["default"] = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": _storage_options}

# Out (issue 13, "out as well as in": monitoring/metrics.py, docs/api-read.md). `GET /metrics` answers a scraper
# that sends `Authorization: Bearer $EVALSTUDIO_METRICS_TOKEN` (every project), a project's API token (that project
# only), or comes from an address in EVALSTUDIO_METRICS_ALLOW (CIDRs or addresses, read through core/client_ip.py;
# every project). Neither set: only project tokens. Checked here so that a typo fails at start-up.
EVALSTUDIO_METRICS_TOKEN = os.environ.get("EVALSTUDIO_METRICS_TOKEN", "").strip()
if EVALSTUDIO_METRICS_TOKEN and len(EVALSTUDIO_METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("EVALSTUDIO_METRICS_TOKEN: use at least 16 characters (a long random string)")
EVALSTUDIO_METRICS_ALLOW = env_list("EVALSTUDIO_METRICS_ALLOW", [])
try:
    from core.client_ip import parse_networks

    EVALSTUDIO_METRICS_NETWORKS = parse_networks(EVALSTUDIO_METRICS_ALLOW)
except ValueError as _exc:
    raise ImproperlyConfigured(f"EVALSTUDIO_METRICS_ALLOW: {_exc}") from None
