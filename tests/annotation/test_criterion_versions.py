"""Criteria are versioned: every edit of a definition is a version (who, when, the words changed), and each label
records the version it was made or last confirmed under — by the review page, by imports, in its history."""

from __future__ import annotations

import importlib

import pytest

from annotation.ingest import import_records
from annotation.models import Criterion, CriterionVersion, Label, LabelChange
from annotation.selectors import criterion_definition_versions
from annotation.services import criterion_create, criterion_update, label_submit
from tests.factories import make_trace

pytestmark = pytest.mark.django_db


@pytest.fixture
def criterion(project, expert) -> Criterion:
    return criterion_create(project=project, name="no_apology", definition="Fail when it apologises.", user=expert)


def _edit(criterion: Criterion, definition: str, user, name: str | None = None) -> Criterion:
    return criterion_update(
        criterion=criterion, name=name or criterion.name, definition=definition, failure_mode=None, user=user
    )


def test_a_new_criterion_is_version_1_by_its_author(criterion, expert):
    version = CriterionVersion.objects.get(criterion=criterion)
    assert (criterion.version, version.number, version.author, version.definition) == (
        1,
        1,
        expert,
        "Fail when it apologises.",
    )


def test_editing_the_definition_makes_a_version_and_renaming_does_not(criterion, expert):
    criterion = _edit(criterion, "Fail when it apologises more than once.", expert)
    assert criterion.version == 2
    criterion = _edit(criterion, "Fail when it apologises more than once.", expert, name="apologies")
    assert criterion.version == 2
    assert list(criterion.versions.order_by("number").values_list("number", "name", "definition")) == [
        (1, "no_apology", "Fail when it apologises."),
        (2, "no_apology", "Fail when it apologises more than once."),
    ]


def test_a_label_records_the_definition_it_was_made_under_and_moves_when_confirmed(project, criterion, expert):
    trace = make_trace(project=project)
    label = label_submit(trace=trace, criterion=criterion, verdict="fail", critique="Apologises twice.", user=expert)
    assert label.criterion_version == 1
    _edit(criterion, "Fail when it apologises more than once.", expert)
    assert Label.objects.get(pk=label.pk).criterion_version == 1  # made under v1: the edit does not move it
    # The same verdict saved again under v2 is a confirmation under v2, and the history says so.
    label_submit(trace=trace, criterion=criterion, verdict="fail", critique="Apologises twice.", user=expert)
    assert Label.objects.get(pk=label.pk).criterion_version == 2
    assert list(LabelChange.objects.filter(label=label).order_by("id").values_list("criterion_version")) == [
        (1,),
        (2,),
    ]


def test_imported_labels_record_the_current_version_and_a_criterion_they_name_is_version_1(project, criterion, expert):
    _edit(criterion, "Fail when it apologises more than once.", expert)
    import_records(
        project=project,
        records=[
            {
                "id": "t-1",
                "input": "Where is my order?",
                "output": "Sorry, sorry.",
                "labels": [
                    {"criterion": "no_apology", "verdict": "fail", "critique": "Apologises twice."},
                    {"criterion": "cites_policy", "verdict": "pass", "critique": "Quotes the policy."},
                ],
            }
        ],
    )
    versions = dict(Label.objects.values_list("criterion__name", "criterion_version"))
    assert versions == {"no_apology": 2, "cites_policy": 1}
    assert CriterionVersion.objects.filter(criterion__name="cites_policy", number=1, definition="").exists()
    assert set(LabelChange.objects.values_list("criterion_version", flat=True)) == {1, 2}


def test_the_page_shows_each_version_with_its_changed_words_and_its_labels(project, criterion, expert, expert_client):
    trace = make_trace(project=project)
    label_submit(trace=trace, criterion=criterion, verdict="fail", critique="Sorry twice.", user=expert)
    _edit(criterion, "Fail when it apologises <b>more than once</b>.", expert)
    rows = criterion_definition_versions(criterion=criterion)
    assert [(row.number, row.labels, row.is_current) for row in rows] == [(2, 0, True), (1, 1, False)]
    assert ("added", "<b>more than once</b>.") in rows[0].diff or any(op == "added" for op, _ in rows[0].diff)
    page = expert_client.get(f"/projects/{project.slug}/criteria/{criterion.pk}/").content.decode()
    assert "Definition versions" in page
    assert "<ins>apologises &lt;b&gt;more than once&lt;/b&gt;.</ins>" in page  # escaped: the definition is text
    assert "<b>more" not in page


def test_saving_a_new_definition_says_how_many_labels_were_made_under_an_earlier_one(
    project, criterion, expert, expert_client
):
    label_submit(trace=make_trace(project=project), criterion=criterion, verdict="pass", critique="", user=expert)
    response = expert_client.post(
        f"/projects/{project.slug}/criteria/{criterion.pk}/",
        {"name": "no_apology", "definition": "Fail when it apologises twice."},
        follow=True,
    )
    assert "its definition is now version 2. 1 label was made under an earlier definition." in (
        response.content.decode()
    )
    assert CriterionVersion.objects.get(criterion=criterion, number=2).author == expert


def test_the_migration_makes_each_existing_criterion_version_1(project):
    migration = importlib.import_module("annotation.migrations.0023_criterion_versions")
    old = Criterion.objects.create(project=project, name="legacy", definition="Old words.")
    from django.apps import apps

    migration.first_versions(apps, None)
    assert list(CriterionVersion.objects.filter(criterion=old).values_list("number", "definition")) == [
        (1, "Old words.")
    ]
