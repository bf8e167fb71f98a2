"""The rate limit on /api/v1/: per token and per client IP, counted in the cache (Redis when REDIS_URL is set),
429 with Retry-After and a JSON detail; guesses at tokens count against the IP; a cache that is down lets
requests through; limits come from the environment and a bad value stops the start."""

from __future__ import annotations

import runpy
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from annotation.services import api_token_create
from core.rates import Rate, parse_rate

pytestmark = pytest.mark.django_db

URL = "/api/v1/projects/acme/failure-modes"
# 5 s into a minute: a 1-minute window has 55 s left, whatever second the test starts at.
START = datetime(2026, 12, 4, 12, 0, 5, tzinfo=UTC)
SETTINGS = Path(__file__).resolve().parents[2] / "evalstudio" / "settings.py"


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    cache.clear()  # this test database's own Redis number; counts from another test must not carry over


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def token(project) -> str:
    return api_token_create(project=project, name="ci")[1]


def get(client, token: str | None = None, **headers: str):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.get(URL, headers=headers)


def test_rates_parse_as_operators_write_them():
    assert parse_rate("X", "600/m") == Rate(600, 60)
    assert parse_rate("X", "100/10s") == Rate(100, 10)
    assert parse_rate("X", " 5000/H ") == Rate(5000, 3600)
    assert parse_rate("X", "7/d") == Rate(7, 86400)
    assert parse_rate("X", "0") is None
    assert parse_rate("X", "0/m") is None
    for bad in ("600", "600/x", "-1/m", "many/m", "600/", "1.5/m", "10/0s"):
        with pytest.raises(ValueError, match=r"^X "):
            parse_rate("X", bad)


@pytest.mark.parametrize("name", ["EVALSTUDIO_API_RATE_PER_TOKEN", "EVALSTUDIO_API_RATE_PER_IP"])
def test_a_bad_rate_in_the_environment_stops_the_start_naming_the_variable(monkeypatch, name):
    monkeypatch.setenv(name, "lots")
    with pytest.raises(ImproperlyConfigured, match=f"{name} must look like 600/m .*got 'lots'"):
        runpy.run_path(str(SETTINGS))
    monkeypatch.setenv(name, "20/s")
    assert runpy.run_path(str(SETTINGS))[name] == Rate(20, 1)


def test_defaults_limit_each_token_and_each_address(monkeypatch):
    monkeypatch.delenv("EVALSTUDIO_API_RATE_PER_TOKEN", raising=False)
    monkeypatch.delenv("EVALSTUDIO_API_RATE_PER_IP", raising=False)
    values = runpy.run_path(str(SETTINGS))
    assert (values["EVALSTUDIO_API_RATE_PER_TOKEN"], values["EVALSTUDIO_API_RATE_PER_IP"]) == (
        Rate(600, 60),
        Rate(1200, 60),
    )


def test_a_token_over_its_limit_gets_429_with_retry_after_until_the_window_ends(
    client, project, token, settings, clock
):
    settings.EVALSTUDIO_API_RATE_PER_TOKEN = Rate(3, 60)
    assert [get(client, token).status_code for _ in range(3)] == [200, 200, 200]
    response = get(client, token)
    assert (response.status_code, response["Retry-After"]) == (429, "55")
    assert response.json() == {"detail": "Too many API requests with this token: at most 3 per 60 s; retry in 55 s"}
    # Another token of the same project has its own count.
    assert get(client, api_token_create(project=project, name="other")[1]).status_code == 200
    clock.move_to(datetime(2026, 12, 4, 12, 1, 0, tzinfo=UTC))
    assert get(client, token).status_code == 200


def test_guesses_at_tokens_count_against_the_address(client, project, token, settings, clock):
    settings.EVALSTUDIO_API_RATE_PER_IP = Rate(5, 60)
    assert {get(client, f"es_guess-{i}").status_code for i in range(5)} == {401}
    response = get(client, "es_guess-new")
    assert (response.status_code, response["Retry-After"]) == (429, "55")
    assert response.json()["detail"].startswith("Too many API requests from this address: at most 5 per 60 s")
    # Every request from the address counts, a valid token's too.
    assert get(client, token).status_code == 429


def test_forwarded_for_is_ignored_unless_the_operator_trusts_a_proxy(client, project, token, settings, clock):
    settings.EVALSTUDIO_API_RATE_PER_IP = Rate(2, 60)
    # Anyone can write X-Forwarded-For: without a trusted proxy it does not make a new client.
    statuses = [get(client, token, X_Forwarded_For=f"203.0.113.{i}").status_code for i in range(3)]
    assert statuses == [200, 200, 429]
    cache.clear()
    settings.EVALSTUDIO_TRUSTED_PROXY_COUNT = 1
    # Behind one proxy, the right-most address is the one the proxy saw; what the client wrote left of it is ignored.
    statuses = [get(client, token, X_Forwarded_For=f"198.51.100.7, 203.0.113.{i}").status_code for i in range(3)]
    assert statuses == [200, 200, 200]
    statuses = [get(client, token, X_Forwarded_For=f"198.51.100.{i}, 203.0.113.9").status_code for i in range(3)]
    assert statuses == [200, 200, 429]


def test_zero_disables_a_limit(client, project, token, settings, clock):
    settings.EVALSTUDIO_API_RATE_PER_TOKEN = None
    settings.EVALSTUDIO_API_RATE_PER_IP = Rate(1000, 60)
    assert {get(client, token).status_code for _ in range(20)} == {200}


def test_other_paths_are_not_counted(client, project, settings, clock, expert_client):
    settings.EVALSTUDIO_API_RATE_PER_IP = Rate(1, 60)
    assert {expert_client.get("/projects/acme/").status_code for _ in range(3)} == {200}


def test_the_limit_fails_open_when_the_cache_is_down(client, project, token, settings):
    # Port 1 refuses connections at once: the state of a Redis that is down.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    settings.EVALSTUDIO_API_RATE_PER_TOKEN = Rate(1, 60)
    settings.EVALSTUDIO_API_RATE_PER_IP = Rate(1, 60)
    started = time.monotonic()
    assert [get(client, token).status_code for _ in range(3)] == [200, 200, 200]
    assert time.monotonic() - started < 5
