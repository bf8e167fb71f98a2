"""A judge version made under an earlier definition of its criterion is stale, whatever its kind: the judges pages
say so with the labels made since, a new version can be made under the current definition, and monitoring and the
regression suite mark the promoted version's numbers (issue 15 §2)."""

from __future__ import annotations

import pytest

from annotation.services import criterion_create, criterion_update, label_submit
from judges import kinds
from judges.services import judge_create, judge_version_from_current_labels
from tests.factories import make_trace

pytestmark = pytest.mark.django_db

CHECK = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}


def test_a_version_made_before_a_definition_edit_is_stale_with_the_labels_since(project, expert, expert_client):
    criterion = criterion_create(project=project, name="no_apology", definition="Fail when it apologises.")
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=CHECK)
    v1 = judge.latest_version()
    assert kinds.versions_drift([v1.pk]) == {}
    criterion = criterion_update(
        criterion=criterion, name=criterion.name, definition="Fail when it apologises or regrets.", failure_mode=None
    )
    for _ in range(3):
        label_submit(trace=make_trace(project=project), criterion=criterion, verdict="pass", critique="", user=expert)
    drift = kinds.versions_drift([v1.pk])[v1.pk]
    assert drift.headline == "was made under an earlier definition"
    assert (
        "made under definition v1, the criterion is at v2 now, with 3 labels made under a newer definition"
        in (drift.changes[0])
    )
    assert "made under an earlier definition" in expert_client.get(f"/projects/{project.slug}/judges/").content.decode()

    v2 = judge_version_from_current_labels(version=v1)  # the same check, under the current definition
    assert (v2.number, v2.config, v2.criterion_version) == (2, v1.config, 2)
    assert kinds.versions_drift([v2.pk]) == {}
    stale = kinds.stale_definition(v1, criterion_version=criterion.version)
    assert stale.startswith("stale: made under definition v1, the criterion is at v2")
    assert kinds.stale_definition(v2, criterion_version=criterion.version) == ""
    # Edited and then put back: the words v1 was measured on are today's again.
    criterion_update(criterion=criterion, name=criterion.name, definition="Fail when it apologises.", failure_mode=None)
    assert kinds.versions_drift([v1.pk]) == {}


def test_the_promotion_history_marks_a_current_promotion_made_under_an_earlier_definition(
    project, expert, expert_client
):
    from judges.models import Promotion

    criterion = criterion_create(project=project, name="no_apology", definition="Fail when it apologises.")
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=CHECK)
    version = judge.latest_version()
    Promotion.objects.create(criterion=criterion, version=version, min_tpr=0.9, min_tnr=0.9, promoted_by=expert)
    url = f"/projects/{project.slug}/judges/promotions/"
    assert "data-drift=" not in expert_client.get(url).content.decode()
    criterion_update(criterion=criterion, name=criterion.name, definition="Fail on any regret.", failure_mode=None)
    page = expert_client.get(url).content.decode()
    assert f'data-drift="{version.pk}"' in page and "made under definition v1, the criterion is at v2" in page
