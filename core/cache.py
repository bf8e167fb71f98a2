"""The cache as an optimisation only: Django's Redis cache, failing open when Redis cannot be reached.

Every page answers from the database; the cache only saves it work. So when Redis is down (refused, unreachable,
timing out, read-only, loading) a read is a miss, a write is dropped and `add` says yes (the caller goes ahead:
coalescing through `cache.add` is skipped, the work is done), with a warning logged once per
EVALSTUDIO_CACHE_RETRY_SECONDS rather than once per call. For that long after a failure the backend does not even
try Redis, so a page that reads the cache twenty times while Redis is away pays for one failed connection, not
twenty. Connections are made with short timeouts and without redis-py's own retries (which back off for seconds),
so a down Redis costs milliseconds. Errors that are not about reaching Redis (a bad key, a value that cannot be
pickled) still raise: they are bugs, not outages.

Settings: CACHES["default"]["OPTIONS"] may set `socket_connect_timeout` / `socket_timeout` (seconds) and
`retry_seconds`; evalstudio/settings.py fills them from the environment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.core.cache.backends.redis import RedisCache
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

logger = logging.getLogger(__name__)

# What "Redis cannot be reached" looks like; anything else from Redis is a bug and raises.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, BusyLoadingError, OSError)
DEFAULT_CONNECT_TIMEOUT = 0.25
DEFAULT_SOCKET_TIMEOUT = 0.5
DEFAULT_RETRY_SECONDS = 5.0

F = TypeVar("F", bound=Callable[..., Any])


class _Outage:
    """Shared by every thread's backend instance for one Redis location: when to try it again, when last logged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.until = 0.0

    def skipping(self) -> bool:
        return time.monotonic() < self.until

    def failed(self, location: str, operation: str, exc: BaseException, retry_seconds: float) -> None:
        with self.lock:
            now = time.monotonic()
            first = now >= self.until
            self.until = now + retry_seconds
        if first:
            logger.warning(
                "Cache at %s unreachable on %s (%s: %s); serving without the cache, next try in %g s",
                location,
                operation,
                type(exc).__name__,
                exc,
                retry_seconds,
            )


_OUTAGES: dict[str, _Outage] = {}
_OUTAGES_LOCK = threading.Lock()


def _outage_for(location: str) -> _Outage:
    with _OUTAGES_LOCK:
        return _OUTAGES.setdefault(location, _Outage())


def _fail_open(fallback: Callable[..., Any]) -> Callable[[F], F]:
    """Run the Redis operation unless Redis is known to be down; on an outage answer `fallback(*args, **kwargs)`."""

    def decorate(method: F) -> F:
        @wraps(method)
        def wrapper(self: FailOpenRedisCache, *args: Any, **kwargs: Any) -> Any:
            if self._outage.skipping():
                return fallback(*args, **kwargs)
            try:
                return method(self, *args, **kwargs)
            except UNREACHABLE as exc:
                self._outage.failed(self._location_label, method.__name__, exc, self._retry_seconds)
                return fallback(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _default(key: str, default: Any = None, *args: Any, **kwargs: Any) -> Any:
    return default


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def _no(*args: Any, **kwargs: Any) -> bool:
    return False


def _yes(*args: Any, **kwargs: Any) -> bool:
    # `add` is how callers coalesce work ("only the first one kicks"): with no cache, each caller goes ahead.
    return True


def _incr(key: str, delta: int = 1, *args: Any, **kwargs: Any) -> int:
    return delta


class FailOpenRedisCache(RedisCache):
    """Django's RedisCache whose reads miss, writes drop and `add` says yes while Redis cannot be reached."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = dict(params.get("OPTIONS") or {})
        self._retry_seconds = float(options.pop("retry_seconds", DEFAULT_RETRY_SECONDS))
        options.setdefault("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        options.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
        # redis-py retries a failed command with backoff (seconds in all) by default: one try, the outage window
        # above is the retry.
        options.setdefault("retry", Retry(NoBackoff(), 0))
        super().__init__(server, {**params, "OPTIONS": options})
        # Host and port only: a URL's password never goes into a log line.
        self._location_label = ",".join(
            f"{urlsplit(url).hostname}:{urlsplit(url).port or 6379}" for url in self._servers
        )
        self._outage = _outage_for(self._location_label)

    get = _fail_open(_default)(RedisCache.get)
    get_many = _fail_open(lambda *a, **k: {})(RedisCache.get_many)
    has_key = _fail_open(_no)(RedisCache.has_key)
    add = _fail_open(_yes)(RedisCache.add)
    set = _fail_open(_nothing)(RedisCache.set)
    set_many = _fail_open(lambda *a, **k: [])(RedisCache.set_many)
    touch = _fail_open(_no)(RedisCache.touch)
    delete = _fail_open(_no)(RedisCache.delete)
    delete_many = _fail_open(_nothing)(RedisCache.delete_many)
    incr = _fail_open(_incr)(RedisCache.incr)
    clear = _fail_open(_nothing)(RedisCache.clear)
