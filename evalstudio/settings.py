"""EvalStudio settings, read from the environment.

With nothing set, the embedded default runs: SQLite and a filesystem Celery broker under `var/`, so `make run`
needs no server. `DATABASE_URL` / `REDIS_URL` switch to PostgreSQL / Redis. Bad values fail loudly at start-up.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

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
# Naming suggested groupings of notes: the model, and how long one call may take before the term-based name stays.
EVALSTUDIO_LLM_MODEL = os.environ.get("EVALSTUDIO_LLM_MODEL", EVALSTUDIO_JUDGE_MODEL)
EVALSTUDIO_LLM_TIMEOUT_SECONDS = env_int("EVALSTUDIO_LLM_TIMEOUT_SECONDS", 30, minimum=1)

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
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # The openai client's HTTP library (httpx2 in this openai release) logs every request at INFO: thousands of
    # lines per judge run.
    "loggers": {"httpx": {"level": "WARNING"}, "httpx2": {"level": "WARNING"}},
}
