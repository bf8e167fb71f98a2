"""Login lockout (django-axes): after EVALSTUDIO_LOGIN_FAILURE_LIMIT failures the username is locked for that client
IP for the cool-off, the right password included, with a page that says so and for how long; afterwards it works.
The clock is moved, never waited for."""

from __future__ import annotations

import runpy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.test import Client

from tests.factories import make_user

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
PASSWORD = "right-password-for-tests"
START = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
SETTINGS = Path(__file__).resolve().parents[2] / "evalstudio" / "settings.py"


@pytest.fixture
def alice(db):
    return make_user("alice", password=PASSWORD)


def login(client: Client, password: str, username: str = "alice", **extra: str):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def _logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/projects/"


def test_the_right_password_logs_in_with_a_real_post(alice):
    assert _logged_in(login(Client(), PASSWORD))


def test_thirty_wrong_passwords_lock_the_account_and_the_right_one_is_refused_until_the_cool_off_ends(alice):
    client = Client()
    with time_machine.travel(START, tick=False) as clock:
        statuses = [login(client, f"wrong-{i}").status_code for i in range(30)]
        # The first 4 failures get the form again; the 5th reaches the limit and from there on the answer is the lock.
        assert statuses == [200] * 4 + [429] * 26
        locked = login(client, PASSWORD)
        assert locked.status_code == 429 and "_auth_user_id" not in client.session
        page = locked.content.decode()
        assert "Account locked" in page
        assert "blocked for 15 minutes, until 12:15 UTC" in page
        assert "<strong>alice</strong>" in page and "(5 in a row)" in page
        clock.move_to(START + timedelta(minutes=14, seconds=59))
        assert login(client, PASSWORD).status_code == 429  # this attempt starts the cool-off again
        clock.move_to(START + timedelta(minutes=14, seconds=59) + timedelta(minutes=15, seconds=1))
        assert _logged_in(login(client, PASSWORD))


def test_the_lock_is_for_the_account_from_that_address_only(alice):
    make_user("bob", password=PASSWORD)
    with time_machine.travel(START, tick=False):
        for i in range(5):
            login(Client(), f"wrong-{i}")
        assert login(Client(), PASSWORD).status_code == 429
        # A guesser elsewhere cannot lock a colleague out, and one account's lock is not another's.
        assert _logged_in(login(Client(), PASSWORD, REMOTE_ADDR="192.0.2.10"))
        assert _logged_in(login(Client(), PASSWORD, username="bob"))


def test_a_success_before_the_limit_resets_the_count(alice):
    with time_machine.travel(START, tick=False):
        for i in range(4):
            login(Client(), f"wrong-{i}")
        assert _logged_in(login(Client(), PASSWORD))
        assert {login(Client(), f"again-{i}").status_code for i in range(4)} == {200}


def test_behind_a_trusted_proxy_the_lock_follows_the_forwarded_client(alice, settings):
    settings.EVALSTUDIO_TRUSTED_PROXY_COUNT = 1
    with time_machine.travel(START, tick=False):
        for i in range(5):
            login(Client(), f"wrong-{i}", HTTP_X_FORWARDED_FOR="203.0.113.5")
        assert login(Client(), PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 429
        # Same proxy (REMOTE_ADDR), another client behind it: not locked.
        assert _logged_in(login(Client(), PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.6"))


def test_without_a_trusted_proxy_forwarded_for_cannot_dodge_the_lock(alice):
    with time_machine.travel(START, tick=False):
        for i in range(5):
            login(Client(), f"wrong-{i}", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
        assert login(Client(), PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 429


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("EVALSTUDIO_LOGIN_FAILURE_LIMIT", "3")
    monkeypatch.setenv("EVALSTUDIO_LOGIN_COOLOFF_MINUTES", "60")
    values = runpy.run_path(str(SETTINGS))
    assert (values["AXES_FAILURE_LIMIT"], values["AXES_COOLOFF_TIME"]) == (3, timedelta(minutes=60))
    assert values["AUTHENTICATION_BACKENDS"][0] == "axes.backends.AxesStandaloneBackend"
    monkeypatch.setenv("EVALSTUDIO_LOGIN_FAILURE_LIMIT", "0")
    with pytest.raises(Exception, match="EVALSTUDIO_LOGIN_FAILURE_LIMIT must be at least 1, got 0"):
        runpy.run_path(str(SETTINGS))
