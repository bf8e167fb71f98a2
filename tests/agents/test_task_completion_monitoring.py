"""An outcome grader promoted into monitoring: the task completion of production agent trials is a series with
intervals and alert rules like any criterion's, drained, charted and alerted on by monitoring through the grader
provider (agents.monitored), without monitoring importing agents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.models import GraderPromotion
from agents.monitored import GRADER
from agents.services import grader_create, grader_promote, grader_withdraw
from annotation.models import Role
from annotation.services import DomainError
from monitoring.alerts import rule_evaluate
from monitoring.models import MonitoredSeries, MonitorJudgment
from monitoring.selectors import monitoring_summary
from monitoring.services import (
    alert_rule_create,
    monitoring_drain,
    sampling_rate_set,
    series_get_or_create,
    series_traffic_set,
)
from tests.agents.helpers import DONE, make_trial
from tests.factories import add_member, make_project, make_trace, make_user

pytestmark = pytest.mark.django_db
HOUR = datetime(2026, 11, 20, 10, tzinfo=UTC)


def production_trials(project, *, tasks: int, failing: int, source: str = "production", prefix: str = "task"):
    """One trial per task, the first `failing` of them failed, all in HOUR."""
    return [
        make_trial(
            project=project,
            task_id=f"{prefix}-{i}",
            trial=1,
            passed=i >= failing,
            source=source,
            occurred_at=HOUR + timedelta(minutes=5),
        )  # fmt: skip
        for i in range(tasks)
    ]


@pytest.fixture
def grader(project):
    sampling_rate_set(project=project, rate=1.0)
    return grader_create(project=project, name="done", target="final_output", config=DONE)


def verdicts(grader):
    return MonitorJudgment.objects.filter(monitored_check__series__provider=GRADER, monitored_check__key=grader.pk)


def test_a_promoted_grader_judges_the_production_agent_trials_and_nothing_else(project, grader):
    trials = production_trials(project, tasks=40, failing=10)
    production_trials(project, tasks=5, failing=0, source="synthetic", prefix="offline")  # not production
    make_trace(project=project, external_id="chat-1", source="production")  # production, but not a trial
    assert monitoring_drain(project=project) == 0  # not promoted: nothing judges its trials

    grader_promote(grader=grader)
    assert grader_promote(grader=grader) == GraderPromotion.objects.get()  # promoting twice is one promotion
    assert monitoring_drain(project=project) == 40
    judged = dict(verdicts(grader).values_list("trace_id", "verdict"))
    assert judged == {t.pk: "fail" if t.task_id in {f"task-{i}" for i in range(10)} else "pass" for t in trials}
    assert monitoring_drain(project=project) == 0  # each once

    # Withdrawn, it judges nothing new; its verdicts stay.
    grader_withdraw(grader=grader)
    production_trials(project, tasks=5, failing=0, prefix="later")
    assert monitoring_drain(project=project) == 0
    assert verdicts(grader).count() == 40
    summary = monitoring_summary(project=project, now=HOUR + timedelta(hours=1))
    assert [s.check.provider for s in summary.summaries] == []
    assert [(s.provider, s.name) for s in summary.unmonitored] == [(GRADER, "task completion (done)")]


def test_the_task_completion_series_has_intervals_no_correction_and_says_why(expert_client, project, grader):
    production_trials(project, tasks=40, failing=10)
    grader_promote(grader=grader)
    monitoring_drain(project=project)
    summary = monitoring_summary(project=project, now=HOUR + timedelta(hours=2))
    (only,) = summary.summaries
    assert (only.check.subject.name, only.check.label, only.check.kind) == (
        "task completion (done)", "grader done", "outcome grader on the final output"
    )  # fmt: skip
    assert (only.day.passes, only.day.fails, only.day.observed) == (30, 10, 0.75)
    assert (round(only.day.observed_low, 3), round(only.day.observed_high, 3)) == (0.588, 0.873)  # exact, 30/40
    assert only.day.corrected is None and only.day.corrected_missing.startswith("not corrected: an outcome grader")
    assert only.coverage.text == "a 100% sample of production agent trials"  # the project samples at 100%

    overview = expert_client.get("/projects/acme/monitoring/").content.decode()
    url = f"/projects/acme/monitoring/series/grader/{grader.pk}/"
    assert f'href="{url}"' in overview and "grader done" in overview
    page = expert_client.get(f"{url}?bucket=day&window=30d")
    html = page.content.decode()
    assert page.status_code == 200
    assert "task completion (done) in production" in html
    assert '<strong>75%</strong> <span class="ci">(59%–87%)</span>' in html
    assert "Corrected rate: not corrected: an outcome grader defines completion" in html
    assert "chart-line-corrected" not in html
    # The rule form offers only the observed rate: there is nothing to correct by.
    assert 'value="observed"' in html and 'value="corrected"' not in html


def test_an_alert_rule_on_task_completion_fires_and_a_corrected_one_is_refused(project, grader):
    production_trials(project, tasks=40, failing=20)  # 50% completion
    grader_promote(grader=grader)
    monitoring_drain(project=project)
    series = MonitoredSeries.objects.get(provider=GRADER, subject_id=grader.pk)
    assert series.criterion_id is None and series.name == "task completion (done)"
    with pytest.raises(DomainError) as refused:
        alert_rule_create(series=series, threshold=0.9, metric="corrected")
    assert str(refused.value) == (
        "metric: task completion (done) has no corrected pass rate (its check has no expert labels to correct by); "
        "use the observed pass rate"
    )
    rule = alert_rule_create(series=series, threshold=0.8, min_sample=20)
    alert = rule_evaluate(rule=rule, now=HOUR + timedelta(hours=1, minutes=5))
    assert alert is not None and (alert.judged, alert.passes) == (40, 20)
    assert alert.message.startswith("task completion (done): Observed pass rate 50% (95% CI 34%–66%, n = 40)")
    assert alert.monitored_check.key == grader.pk and alert.series == series


def test_all_traffic_applies_to_a_grader_series(project, grader):
    sampling_rate_set(project=project, rate=0.1)
    grader_promote(grader=grader)
    (summary,) = monitoring_summary(project=project, now=HOUR).summaries
    assert summary.coverage.text == "a 10% sample of production agent trials"
    series_traffic_set(series=series_get_or_create(project=project, subject=summary.check.subject), all_traffic=True)
    production_trials(project, tasks=60, failing=0)
    assert monitoring_drain(project=project) == 60


def test_engineers_promote_and_withdraw_from_the_agents_page_viewers_cannot(
    client, teammate_client, outsider_client, project, grader
):
    url = f"/projects/acme/agents/graders/{grader.pk}/monitoring/"
    page = teammate_client.get(f"/projects/acme/agents/?grader={grader.pk}").content.decode()
    assert "Not in production monitoring." in page and 'value="promote"' in page
    assert outsider_client.post(url, {"action": "promote"}).status_code == 404
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client.force_login(viewer)
    assert client.post(url, {"action": "promote"}).status_code == 403
    assert not GraderPromotion.objects.exists()

    assert teammate_client.post(url, {"action": "promote"}).status_code == 302
    promotion = GraderPromotion.objects.get()
    assert (promotion.grader, promotion.promoted_by.username, promotion.ended_at) == (grader, "teammate", None)
    page = teammate_client.get(f"/projects/acme/agents/?grader={grader.pk}").content.decode()
    assert "In production monitoring since" in page and f"/projects/acme/monitoring/series/grader/{grader.pk}/" in page
    assert teammate_client.post(url, {"action": "withdraw"}).status_code == 302
    promotion.refresh_from_db()
    assert promotion.ended_at is not None and promotion.ended_by.username == "teammate"


def test_another_projects_grader_series_is_a_404(expert_client, outsider, grader):
    other = make_project(slug="other", expert=outsider)
    theirs = grader_create(project=other, name="theirs", target="final_output", config=DONE)
    grader_promote(grader=theirs)
    assert expert_client.get(f"/projects/acme/monitoring/series/grader/{theirs.pk}/").status_code == 404
    assert expert_client.post(f"/projects/acme/monitoring/series/grader/{theirs.pk}/rules/", {}).status_code == 404
    assert expert_client.get(f"/projects/acme/monitoring/series/grader/{grader.pk}/").status_code == 200
