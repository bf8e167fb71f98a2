"""`load_demo`, the command behind `make run`: only with DEBUG on, everything from the committed files, and a
second run changes nothing."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import Criterion, Label, Note, Project, Role
from demo.generate import CRITERIA, DATA_DIR, DEFAULT_OUT, PRODUCTION_FILE

pytestmark = pytest.mark.django_db
CRITERION_NAMES = {name for name, _ in CRITERIA}


def _count_lines(name: str) -> int:
    return len((DATA_DIR / name).read_text(encoding="utf-8").splitlines())


def _records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DEFAULT_OUT.read_text(encoding="utf-8").splitlines()]


def _load_demo() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def _every_row() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every model, all fields: what "changes nothing" is checked against."""
    return {
        model._meta.label: list(model.objects.order_by("pk").values_list())
        for model in apps.get_models()
        if model._meta.managed and not model._meta.proxy
    }


def test_load_demo_refuses_with_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="only runs with DEBUG on"):
        _load_demo()
    assert not User.objects.filter(username="demo").exists()
    assert not Project.objects.filter(slug="demo").exists()


def test_load_demo_with_if_debug_and_debug_off_says_so_and_loads_nothing(settings):
    settings.DEBUG = False
    out = StringIO()
    call_command("load_demo", "--if-debug", stdout=out)
    assert "DEBUG is off: the demo project is not loaded." in out.getvalue()
    assert not Project.objects.exists()


def test_load_demo_creates_user_project_criteria_and_traces(settings):
    settings.DEBUG = True
    records = _records()
    output = _load_demo()
    user = User.objects.get(username="demo")
    assert user.check_password("demo")
    project = Project.objects.get(slug="demo")
    assert project.expert == user
    assert project.memberships.get(user=user).role == Role.EXPERT
    criteria = {criterion.name: criterion for criterion in Criterion.objects.filter(project=project)}
    assert set(criteria) == CRITERION_NAMES
    assert all(criterion.definition for criterion in criteria.values())
    assert criteria["plain_text"].failure_mode.name == "markdown in plain-text channel"
    production = _count_lines(PRODUCTION_FILE)
    assert project.traces.count() == len(records) + production
    expected_labels = sum(len(record.get("labels", [])) for record in records)
    assert Label.objects.filter(trace__project=project, author=user).count() == expected_labels
    assert Note.objects.filter(trace__project=project).count() == sum(len(r.get("notes", [])) for r in records)
    assert f"{len(records)} traces created, 0 already present; {production} production traces created" in output
    assert "Log in as demo / demo." in output


def test_load_demo_twice_changes_nothing_the_second_time(settings):
    settings.DEBUG = True
    _load_demo()
    before = _every_row()
    output = _load_demo()
    after = _every_row()
    assert {label for label in before if before[label] != after[label]} == set()
    assert sum(len(rows) for rows in after.values()) > 2000  # the demo, not an empty database
    records, production = len(_records()), _count_lines(PRODUCTION_FILE)
    assert f"0 traces created, {records} already present; 0 production traces created, {production} already" in output
    assert "Nothing else to build" in output


def test_load_demo_keeps_an_existing_demo_users_password(settings):
    settings.DEBUG = True
    User.objects.create_user(username="demo", password="changed-by-the-team")
    _load_demo()
    user = User.objects.get(username="demo")
    assert user.check_password("changed-by-the-team")
    assert Project.objects.get(slug="demo").expert == user
