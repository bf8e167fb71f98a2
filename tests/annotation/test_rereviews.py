"""Blind re-review: the queue re-serves an old label's trace at the expert's rate, the page shows nothing said
about it, the answers are kept beside the labels, and differing pairs are decided (issue 15 §1)."""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation.models import Label, LabelChange, Note, SelfReview
from annotation.rereviews import (
    Answer,
    rereview_candidate,
    rereview_due,
    rereview_settings_update,
    rereview_submit,
    self_review_decide,
)
from annotation.services import DomainError, api_token_create, criterion_create, label_submit
from judges.reliability import UNDECIDED_SHOWN, fatigue, self_agreement
from tests.factories import make_trace

pytestmark = pytest.mark.django_db

SECRET = "The earlier critique, which must stay hidden."


@pytest.fixture
def criteria(project, expert):
    return [
        criterion_create(project=project, name="no_apology", definition="Fail when it apologises.", user=expert),
        criterion_create(project=project, name="cites_policy", definition="Pass when it cites policy.", user=expert),
    ]


def _old_label(project, expert, criteria, external_id: str, verdicts=("fail", "pass"), days: int = 10):
    trace = make_trace(project=project, external_id=external_id)
    for criterion, verdict in zip(criteria, verdicts, strict=True):
        label_submit(trace=trace, criterion=criterion, verdict=verdict, critique=SECRET, user=expert)
    Label.objects.filter(trace=trace).update(updated_at=timezone.now() - timedelta(days=days))
    return trace


def test_the_draw_follows_the_rate_and_is_the_same_for_the_same_step(project):
    project.rereview_rate = 0.05
    due = [step for step in range(1, 2001) if rereview_due(project, step=step)]
    assert 60 <= len(due) <= 140 and due == [s for s in range(1, 2001) if rereview_due(project, step=s)]
    project.rereview_rate = 0
    assert not any(rereview_due(project, step=step) for step in range(1, 200))


def test_only_labels_old_enough_and_not_re_reviewed_lately_are_candidates(project, expert, criteria):
    assert rereview_candidate(project=project) is None
    _old_label(project, expert, criteria, "young", days=2)
    assert rereview_candidate(project=project) is None
    old = _old_label(project, expert, criteria, "old", days=10)
    assert rereview_candidate(project=project) == old
    rereview_submit(trace=old, user=expert, answers={c.pk: Answer("fail") for c in criteria})
    assert rereview_candidate(project=project) is None


def test_answers_are_kept_beside_the_labels_never_over_them(project, expert, criteria):
    trace = _old_label(project, expert, criteria, "t-1")
    with pytest.raises(DomainError, match="Answer every criterion: cites_policy has no verdict yet"):
        rereview_submit(trace=trace, user=expert, answers={criteria[0].pk: Answer("fail")})
    reviews = rereview_submit(
        trace=trace, user=expert, answers={criteria[0].pk: Answer("pass", "Fine now."), criteria[1].pk: Answer("pass")}
    )
    assert [(r.then_verdict, r.verdict, r.agrees) for r in reviews] == [("fail", "pass", False), ("pass", "pass", True)]
    assert list(
        Label.objects.filter(trace=trace).order_by("criterion__position").values_list("verdict", flat=True)
    ) == [
        "fail",
        "pass",
    ]


def test_deciding_a_difference_keeps_the_reason_and_the_kept_label_changes_the_history(project, expert, criteria):
    trace = _old_label(project, expert, criteria, "t-1")
    first, agreeing = rereview_submit(
        trace=trace,
        user=expert,
        answers={criteria[0].pk: Answer("pass", "No apology at all."), criteria[1].pk: Answer("pass")},
    )
    with pytest.raises(DomainError, match="agrees with the earlier label"):
        self_review_decide(review=agreeing, keep="now", reason="x", user=expert)
    with pytest.raises(DomainError, match="Reason: say why"):
        self_review_decide(review=first, keep="now", reason=" ", user=expert)
    self_review_decide(review=first, keep="now", reason="Regret is not an apology.", user=expert)
    label = Label.objects.get(trace=trace, criterion=criteria[0])
    assert (label.verdict, label.critique) == ("pass", "No apology at all.")
    assert LabelChange.objects.filter(label=label).order_by("id").last().via == "self-review"
    with pytest.raises(DomainError, match="Already decided"):
        self_review_decide(review=first, keep="then", reason="changed my mind", user=expert)


def test_self_agreement_has_kappa_and_agreement_with_intervals(project, expert, criteria):
    rng = random.Random(3)
    for i in range(30):
        then = "fail" if i % 3 == 0 else "pass"
        trace = _old_label(project, expert, criteria, f"t-{i}", verdicts=(then, "pass"))
        now = then if rng.random() < 0.85 else ("pass" if then == "fail" else "fail")
        rereview_submit(trace=trace, user=expert, answers={criteria[0].pk: Answer(now), criteria[1].pk: Answer("pass")})
    items = {item.criterion.name: item for item in self_agreement(project=project)}
    apology = items["no_apology"]
    assert apology.n == 30 and 0.6 < apology.agreement < 1
    assert apology.agreement_interval[0] < apology.agreement < apology.agreement_interval[1]
    assert apology.kappa is not None and apology.kappa_interval[0] < apology.kappa
    assert apology.undecided_count == len(apology.undecided) == round((1 - apology.agreement) * 30)
    assert items["cites_policy"].kappa is None and items["cites_policy"].agreement == 1.0  # one class: κ undefined


def test_the_expert_sets_the_rate_and_nobody_else(project, expert, teammate):
    with pytest.raises(DomainError, match="Only the project's expert"):
        rereview_settings_update(project=project, user=teammate, rate=0.1, after_days=7)
    with pytest.raises(DomainError, match="from 0 \\(off\\) to 50%"):
        rereview_settings_update(project=project, user=expert, rate=0.9, after_days=7)
    rereview_settings_update(project=project, user=expert, rate=0.1, after_days=14)
    project.refresh_from_db()
    assert (project.rereview_rate, project.rereview_after_days) == (0.1, 14)


def test_the_queue_re_serves_blind_and_then_goes_on(project, expert, criteria, expert_client):
    old = _old_label(project, expert, criteria, "old")
    Note.objects.create(trace=old, author=expert, text="A secret note about this trace.")
    old.reviewed_at = timezone.now() - timedelta(days=10)
    old.save(update_fields=["reviewed_at"])
    make_trace(project=project, external_id="fresh")
    project.rereview_rate = 0.5  # the draw for this project's first steps: step 1 is due at 50%?
    project.save(update_fields=["rereview_rate"])
    due_steps = [s for s in range(1, 20) if rereview_due(project, step=s)]
    queue = reverse("review_queue", args=[project.slug])
    for _ in range(due_steps[0] - 1):
        assert "/traces/fresh/" in expert_client.get(queue)["Location"]
    response = expert_client.get(queue)
    assert response["Location"].startswith(reverse("rereview", args=[project.slug, old.pk]))
    page = expert_client.get(response["Location"])
    html = page.content.decode()
    assert "Re-review" in html and old.output in html
    assert SECRET not in html and "A secret note" not in html and "verdict-badge" not in html
    form = {f"verdict-{c.pk}": "pass" for c in criteria} | {
        "next": re.search(r'name="next" value="([^"]+)"', html).group(1).replace("&amp;", "&")
    }
    done = expert_client.post(response["Location"], form)
    assert "/traces/fresh/" in done["Location"]
    assert SelfReview.objects.filter(trace=old).count() == 2


def test_a_re_review_answers_the_fatigue_rows_self_agreement(project, expert, criteria):
    from annotation.services import LabelContext

    trace = make_trace(project=project, external_id="t-1")
    label_submit(
        trace=trace, criterion=criteria[0], verdict="fail", critique="", user=expert,
        context=LabelContext(sitting_position=70),
    )  # fmt: skip
    Label.objects.filter(trace=trace).update(updated_at=timezone.now() - timedelta(days=9))
    rereview_submit(trace=trace, user=expert, answers={criteria[0].pk: Answer("pass")})
    [row] = fatigue(project=project)
    assert (row.label, row.rereviewed, row.agreed, row.agreement) == ("61–80", 1, 0, 0.0)


def test_the_page_shows_the_oldest_differing_pairs_and_counts_the_rest(
    project, expert, criteria, expert_client, client
):
    # Hundreds of undecided pairs would make a page of hundreds of forms: it shows the oldest few and says how many
    # more wait; the API counts them all.
    for i in range(UNDECIDED_SHOWN + 4):
        trace = _old_label(project, expert, criteria, f"d-{i:02}", verdicts=("fail", "pass"))
        answers = {criteria[0].pk: Answer("pass"), criteria[1].pk: Answer("pass")}
        rereview_submit(trace=trace, user=expert, answers=answers)
    oldest = SelfReview.objects.filter(criterion=criteria[0]).order_by("created_at", "id").first()
    self_review_decide(review=oldest, keep="now", reason="the re-review is right", user=expert)

    page = expert_client.get(reverse("expert_reliability", args=[project.slug])).content.decode()
    shown = re.findall(r'id="self-review-(\d+)"', page)
    open_ids = SelfReview.objects.filter(criterion=criteria[0], decided_at=None).order_by("created_at", "id")
    assert [int(pk) for pk in shown] == list(open_ids.values_list("pk", flat=True)[:UNDECIDED_SHOWN])
    assert f'data-undecided-hidden="no_apology">{UNDECIDED_SHOWN + 3 - UNDECIDED_SHOWN} more to decide' in page

    _, token = api_token_create(project=project, name="notebook")
    data = client.get(f"/api/v1/projects/{project.slug}/reliability", headers={"Authorization": f"Bearer {token}"})
    item = next(row for row in data.json()["self_agreement"] if row["criterion"] == "no_apology")
    assert (item["undecided"], item["decided"]) == (UNDECIDED_SHOWN + 3, 1)
