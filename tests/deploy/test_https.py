"""`EVALSTUDIO_HTTPS=1`: `manage.py check --deploy` is silent under production settings, the switch is what silences
it, and behind the TLS proxy plain HTTP is redirected while the health check is not. Each runs the real settings
module in a child process with a production-like environment (DEBUG off, a long random key, PostgreSQL, Redis)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVALSTUDIO_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="evalstudio.settings",
        PYTHONPATH=str(ROOT),
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="evalstudio.example.com,127.0.0.1",
        CSRF_TRUSTED_ORIGINS="https://evalstudio.example.com",
        # A database that exists whatever the test run's name: the checks and /healthz/ only need to connect.
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres").rsplit("/", 1)[0]
        + "/postgres",
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/4"),
        EVALSTUDIO_VAR_DIR=str(tmp_path),
    )
    env.update(extra)
    return env


def _check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


SSO_AND_STORAGE = {
    "EVALSTUDIO_OIDC_ISSUER": "https://login.example.com",
    "EVALSTUDIO_OIDC_CLIENT_ID": "evalstudio",
    "EVALSTUDIO_OIDC_CLIENT_SECRET": "s3cret",
    "EVALSTUDIO_PASSWORD_LOGIN": "0",
    "EVALSTUDIO_STORAGE_URL": "s3://evalstudio/uploads?endpoint_url=http://minio:9000",
}


@pytest.mark.parametrize("extra", [{}, SSO_AND_STORAGE], ids=["https", "https+sso+object-storage"])
def test_check_deploy_prints_no_warning_at_all_with_the_https_switch(tmp_path, extra):
    result = _check_deploy(_production_env(tmp_path, EVALSTUDIO_HTTPS="1", **extra))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output
    assert "WARNING" not in output and "security.W" not in output, output


def test_without_the_switch_check_deploy_warns_about_hsts_redirect_and_cookies(tmp_path):
    result = _check_deploy(_production_env(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in output, output


def test_hsts_opt_ins_are_honoured_and_still_silent(tmp_path):
    env = _production_env(
        tmp_path,
        EVALSTUDIO_HTTPS="1",
        EVALSTUDIO_HSTS_SECONDS="600",
        EVALSTUDIO_HSTS_INCLUDE_SUBDOMAINS="1",
        EVALSTUDIO_HSTS_PRELOAD="1",
    )
    result = _check_deploy(env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)" in output, output


@pytest.mark.parametrize(("name", "value"), [("EVALSTUDIO_HTTPS", "maybe"), ("EVALSTUDIO_HSTS_SECONDS", "a year")])
def test_a_bad_https_setting_fails_at_start_up_naming_it(tmp_path, name, value):
    result = _check_deploy(_production_env(tmp_path, **{name: value}))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr, result.stderr


REQUESTS = textwrap.dedent(
    """
    import json
    import django
    django.setup()
    from django.conf import settings
    from django.test import Client

    # No collectstatic here: the login page's static URLs come from the plain storage.
    settings.STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    client = Client()
    out = {}
    plain = client.get("/accounts/login/", HTTP_HOST="evalstudio.example.com")
    out["plain"] = [plain.status_code, plain.headers.get("Location")]
    proxied = client.get("/accounts/login/", HTTP_HOST="evalstudio.example.com", HTTP_X_FORWARDED_PROTO="https")
    out["proxied"] = [proxied.status_code, proxied.headers.get("Strict-Transport-Security")]
    out["cookies"] = {name: bool(morsel["secure"]) for name, morsel in proxied.cookies.items()}
    health = client.get("/healthz/", HTTP_HOST="127.0.0.1")
    out["health"] = [health.status_code, health.content.decode()]
    print(json.dumps(out))
    """
)


def test_behind_the_proxy_http_redirects_https_gets_hsts_and_secure_cookies_and_healthz_stays_plain(tmp_path):
    env = _production_env(tmp_path, EVALSTUDIO_HTTPS="1", EVALSTUDIO_HSTS_SECONDS="1234")
    result = subprocess.run(
        [sys.executable, "-c", REQUESTS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["plain"] == [301, "https://evalstudio.example.com/accounts/login/"]
    assert out["proxied"] == [200, "max-age=1234"]
    assert out["cookies"] == {"csrftoken": True}
    assert out["health"] == [200, "ok\n"]


def test_compose_shows_the_switch_the_tls_proxy_and_a_health_check_that_https_does_not_redirect():
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "EVALSTUDIO_HTTPS: ${EVALSTUDIO_HTTPS:-0}" in compose
    assert "urlopen('http://127.0.0.1:8000/healthz/'" in compose
    assert "caddy reverse-proxy --from ${DOMAIN:-localhost} --to web:8000" in compose
    assert 'profiles: ["tls"]' in compose and 'profiles: ["minio"]' in compose
    assert "EVALSTUDIO_STORAGE_URL: ${EVALSTUDIO_STORAGE_URL:-}" in compose
