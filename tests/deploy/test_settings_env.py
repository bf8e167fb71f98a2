"""The deploy settings read from the environment as an operator sets them (a child process per case, since settings
are read once): single sign-on on or off, half-configured refusals, password login off, the storage URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOW = (
    "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({"
    "'oidc': s.EVALSTUDIO_OIDC_ENABLED, 'backends': s.AUTHENTICATION_BACKENDS, 'password': s.EVALSTUDIO_PASSWORD_LOGIN,"
    "'storage': s.STORAGES['default']}, default=lambda o: type(o).__name__))"
)


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EVALSTUDIO_", "DJANGO_", "AWS_"))}
    base.update(
        DJANGO_SETTINGS_MODULE="evalstudio.settings",
        PYTHONPATH=str(ROOT),
        SECRET_KEY="settings-test",
        EVALSTUDIO_VAR_DIR=str(tmp_path),
    )
    base.update(env)
    return subprocess.run([sys.executable, "-c", SHOW], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60)


def _settings(tmp_path: Path, **env: str) -> dict:
    result = _run(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_with_nothing_set_there_is_no_sso_passwords_work_and_uploads_are_local_files(tmp_path):
    shown = _settings(tmp_path)
    assert shown["oidc"] is False and shown["password"] is True
    assert "annotation.oidc.InvitationOIDCBackend" not in shown["backends"]
    assert "django.contrib.auth.backends.ModelBackend" in shown["backends"]
    assert shown["storage"] == {"BACKEND": "django.core.files.storage.FileSystemStorage"}


def test_issuer_and_client_turn_sso_on_beside_passwords(tmp_path):
    shown = _settings(
        tmp_path,
        EVALSTUDIO_OIDC_ISSUER="https://login.example.com/",
        EVALSTUDIO_OIDC_CLIENT_ID="evalstudio",
        EVALSTUDIO_OIDC_CLIENT_SECRET="s3cret",
    )
    assert shown["oidc"] is True
    assert shown["backends"][-2:] == [
        "django.contrib.auth.backends.ModelBackend",
        "annotation.oidc.InvitationOIDCBackend",
    ]


def test_password_login_off_leaves_only_single_sign_on(tmp_path):
    shown = _settings(
        tmp_path,
        EVALSTUDIO_OIDC_ISSUER="https://login.example.com",
        EVALSTUDIO_OIDC_CLIENT_ID="evalstudio",
        EVALSTUDIO_OIDC_CLIENT_SECRET="s3cret",
        EVALSTUDIO_PASSWORD_LOGIN="0",
    )
    assert "django.contrib.auth.backends.ModelBackend" not in shown["backends"]
    assert "annotation.oidc.InvitationOIDCBackend" in shown["backends"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"EVALSTUDIO_OIDC_ISSUER": "https://login.example.com"},
            "set EVALSTUDIO_OIDC_CLIENT_ID, EVALSTUDIO_OIDC_CLIENT_SECRET",
        ),
        (
            {"EVALSTUDIO_OIDC_CLIENT_ID": "a", "EVALSTUDIO_OIDC_CLIENT_SECRET": "b"},
            "EVALSTUDIO_OIDC_AUTHORIZATION_ENDPOINT",
        ),
        (
            {
                "EVALSTUDIO_OIDC_ISSUER": "login.example.com",
                "EVALSTUDIO_OIDC_CLIENT_ID": "a",
                "EVALSTUDIO_OIDC_CLIENT_SECRET": "b",
            },
            "EVALSTUDIO_OIDC_ISSUER must be an http(s) URL",
        ),
        ({"EVALSTUDIO_PASSWORD_LOGIN": "0"}, "EVALSTUDIO_PASSWORD_LOGIN=0 needs OpenID Connect login"),
        ({"EVALSTUDIO_PASSWORD_LOGIN": "sometimes"}, "EVALSTUDIO_PASSWORD_LOGIN must be a boolean"),
        ({"EVALSTUDIO_STORAGE_URL": "https://bucket.example.com"}, "EVALSTUDIO_STORAGE_URL must start with s3://"),
    ],
)
def test_a_half_or_badly_configured_deploy_setting_stops_the_start_naming_it(tmp_path, env, message):
    result = _run(tmp_path, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr, result.stderr


def test_a_storage_url_selects_the_s3_backend_with_its_options(tmp_path):
    shown = _settings(tmp_path, EVALSTUDIO_STORAGE_URL="s3://evalstudio/uploads?endpoint_url=http://minio:9000")
    assert shown["storage"]["BACKEND"] == "storages.backends.s3.S3Storage"
    assert shown["storage"]["OPTIONS"]["bucket_name"] == "evalstudio"
    assert shown["storage"]["OPTIONS"]["location"] == "uploads"
    assert shown["storage"]["OPTIONS"]["endpoint_url"] == "http://minio:9000"
    assert shown["storage"]["OPTIONS"]["transfer_config"] == "TransferConfig"
