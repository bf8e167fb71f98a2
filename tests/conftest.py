"""Shared fixtures: the three users every view is checked with, a project, and logged-in clients."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.models import Project, Role
from tests.factories import add_member, make_project, make_user
from tests.llm_server import ScriptedLLMServer


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, request) -> Iterator[None]:
    """pytest-django's test databases, and before they are dropped, no other session left on them: PostgreSQL refuses
    to drop a database someone is connected to, which failed a whole green run at its very end. A connection a
    thread or a worker process of some test is still closing gets a few seconds; one still there after is ended,
    and named on the terminal so that the test that left it can be found."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    others = (
        "SELECT pid, application_name, state, left(query, 120) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        deadline = time.monotonic() + 5
        while True:
            cursor.execute(others)
            stray = cursor.fetchall()
            if not stray or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        for pid, application, state, query in stray:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            if reporter is not None and capture is not None:
                with capture.global_and_fixture_disabled():  # a fixture's output is otherwise captured and dropped
                    reporter.write_line(
                        f"ended a database session left open by the tests: pid {pid} {application!r} {state}: {query}"
                    )
    connection.close()


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hasher() -> Iterator[None]:
    """Tests log users in, they do not defend passwords: PBKDF2 at production strength cost 0.33 s per test user,
    about half of the suite's time. Production keeps Django's default hashers."""
    from django.test.utils import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture
def expert(db) -> User:
    return make_user("expert")


@pytest.fixture
def teammate(db) -> User:
    return make_user("teammate")


@pytest.fixture
def outsider(db) -> User:
    return make_user("outsider")


@pytest.fixture
def project(expert: User, teammate: User) -> Project:
    project = make_project(slug="acme", name="Acme support bot", expert=expert)
    add_member(project, teammate, Role.ENGINEER)
    return project


@pytest.fixture(autouse=True)
def _no_api_rate_limit(settings) -> None:
    """The suite calls the API from one address far faster than any client would; tests of the limit turn it on
    (tests/annotation/test_api_rate_limit.py)."""
    settings.EVALSTUDIO_API_RATE_PER_TOKEN = None
    settings.EVALSTUDIO_API_RATE_PER_IP = None


@pytest.fixture(autouse=True)
def _plain_static_storage(settings) -> None:
    """Tests do not run collectstatic, so the hashed-manifest storage of production has nothing to read."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def _client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def expert_client(expert: User) -> Client:
    return _client_for(expert)


@pytest.fixture
def teammate_client(teammate: User) -> Client:
    return _client_for(teammate)


@pytest.fixture
def outsider_client(outsider: User) -> Client:
    return _client_for(outsider)


# --- ingestion: a real Celery worker --------------------------------------------------------------------------


@pytest.fixture
def celery_worker(transactional_db):
    """A real Celery worker in a thread, consuming from the test broker (Redis when REDIS_URL is set).

    Use with `@pytest.mark.django_db(transaction=True)`: the worker has its own database connection and sees only
    committed rows. Its connections are closed after each task so the test database can be dropped at the end.
    """
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun
    from django.db import connections

    from evalstudio.celery import app

    def close_connections(**_kwargs: object) -> None:
        connections.close_all()

    task_postrun.connect(close_connections, weak=False)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30) as worker:
            yield worker
    finally:
        task_postrun.disconnect(close_connections)


@pytest.fixture(autouse=True)
def _fresh_llm_memos(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What the LLM provider layer learns about a model (a refused parameter, its context) is remembered per
    endpoint; loopback servers reuse ports, so each test starts from nothing, in memory and in the shared cache."""
    import uuid

    from core import llm_client, llm_compat

    llm_compat.MEMO.clear()
    monkeypatch.setattr(llm_client, "SHARED_NAMESPACE", f"llm-test-{uuid.uuid4().hex}")
    yield
    llm_compat.MEMO.clear()


@pytest.fixture
def llm_max_retries() -> int:
    """The client's retries against the loopback LLM server: none, so a scripted error is seen as sent. A module
    whose tests count on the client's retry overrides this fixture."""
    return 0


@pytest.fixture
def llm_server(settings, llm_max_retries: int) -> Iterator[ScriptedLLMServer]:
    """A loopback OpenAI-compatible server that the judges' client is pointed at (tests/llm_server.py)."""
    with ScriptedLLMServer() as server:
        settings.OPENAI_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = "test-key"
        settings.EVALSTUDIO_LLM_MAX_RETRIES = llm_max_retries
        yield server
