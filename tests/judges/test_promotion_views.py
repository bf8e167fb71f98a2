"""Promotion in the browser and from scripts: who may promote, refusals with their reason, the badge, the bar, the
warning when a promoted version would no longer be promoted, and the record of promotions."""

from __future__ import annotations

import html
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Label, Role
from judges.models import JudgeRun, Promotion
from judges.promotions import judge_version_promote, promotion_bar
from judges.selectors import labelled_trace_ids
from judges.services import judge_create, judge_run_create, judge_run_execute, judge_version_create
from tests.factories import add_member, make_criterion, make_label, make_split_labels, make_trace, make_user

pytestmark = pytest.mark.django_db
EXACT = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
# Catches "Sorry, no." but not "Sorry for this.": TNR about 50% on dev, under the 90% bar.
LOOSE = {"check": "contains", "value": "sorry,", "ignore_case": True, "must_contain": False}


@pytest.fixture
def criterion(project):
    criterion = make_criterion(project=project, name="no_apology")
    for i in range(120):
        kind = i % 4
        output = ["Done.", "Sorry, no.", "Sorry for this.", "Ok."][kind]
        trace = make_trace(project=project, external_id=f"t-{i}", output=output)
        make_label(trace=trace, criterion=criterion, verdict="fail" if kind in (1, 2) else "pass")
    # Enough test labels for EXACT's 95% lower bounds to clear 90% there, whatever the split puts in test above.
    make_split_labels(
        criterion=criterion, split="test", outputs=[("Done.", "pass"), ("Sorry, no.", "fail")] * 40, prefix="test"
    )
    return criterion


def dev_run(version) -> JudgeRun:
    return judge_run_execute(run=judge_run_create(version=version, split="dev"))


@pytest.fixture
def judge(project, criterion):
    """v1 loose (under the bar on dev), v2 exact (meets it on dev and test); v2 has a finished test run too."""
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=LOOSE)
    dev_run(judge.latest_version())
    exact = judge_version_create(judge=judge, config=EXACT, comment="catch every apology")
    dev_run(exact)
    judge_run_execute(run=judge_run_create(version=exact, split="test"))
    return judge


@pytest.fixture
def viewer_client(client, project):
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client.force_login(viewer)
    return client


def judge_url(judge) -> str:
    return f"/projects/acme/judges/{judge.pk}/"


def promote_url(judge, number: int) -> str:
    return f"/projects/acme/judges/{judge.pk}/versions/{number}/promote/"


def test_engineer_promotes_an_eligible_version_and_both_pages_badge_it(teammate_client, teammate, judge, criterion):
    response = teammate_client.post(promote_url(judge, 2), {"comment": "exact match on dev"}, follow=True)
    assert response.status_code == 200
    promotion = Promotion.objects.get(criterion=criterion, ended_at=None)
    assert promotion.version.number == 2 and promotion.promoted_by == teammate
    assert promotion.comment == "exact match on dev"
    body = response.content.decode()
    assert "apology v2 is now the promoted judge for no_apology." in body
    assert (
        '<span class="badge promoted" title="the version regression suites and monitoring use">★ promoted</span>'
        in (body)
    )
    # Exactly one version carries the badge: v2's block, not v1's.
    assert body.count("★ promoted</span>") == 1
    v2_block = body.split('class="version-promotion" data-version="2"')[1].split("</div>")[0]
    assert "★ promoted" in v2_block

    listing = teammate_client.get("/projects/acme/judges/").content.decode()
    assert "★ apology v2</a>" in listing
    assert "bar: TPR ≥ 90%, TNR ≥ 90%, met on test" in listing


def test_a_version_under_the_bar_shows_why_and_a_forced_post_is_refused_with_the_reason(
    expert_client, judge, criterion
):
    page = html.unescape(expert_client.get(judge_url(judge)).content.decode())
    v1_block = page.split('class="version-promotion" data-version="1"')[1].split("</div>")[0]
    assert "disabled" in v1_block and "the bar is TPR ≥ 90% and TNR ≥ 90%" in v1_block
    assert f'action="/projects/acme/judges/{judge.pk}/versions/1/promote/"' not in page

    response = expert_client.post(promote_url(judge, 1), follow=True)
    body = html.unescape(response.content.decode())
    assert "apology v1 was not promoted. On dev, apology v1 has TPR 100% (" in body and ") and TNR" in body
    assert not Promotion.objects.exists()


def test_viewers_see_the_promotion_but_cannot_promote_or_withdraw(viewer_client, judge, criterion, expert):
    judge_version_promote(version=judge.versions.get(number=2), user=expert)
    page = viewer_client.get(judge_url(judge)).content.decode()
    assert "★ apology v2" in page and "Withdraw promotion" not in page and "Promote v" not in page
    assert viewer_client.post(promote_url(judge, 2)).status_code == 403
    response = viewer_client.post(f"/projects/acme/judges/criteria/{criterion.pk}/withdraw-promotion/")
    assert response.status_code == 403
    assert Promotion.objects.filter(ended_at=None).count() == 1


def test_outsiders_get_404_on_every_promotion_route(outsider_client, judge, criterion):
    for method, url in (
        ("post", promote_url(judge, 2)),
        ("post", f"/projects/acme/judges/criteria/{criterion.pk}/withdraw-promotion/"),
        ("post", "/projects/acme/judges/promotion-bar/"),
        ("get", "/projects/acme/judges/promotions/"),
    ):
        assert getattr(outsider_client, method)(url).status_code == 404, url
    assert not Promotion.objects.exists()


def test_withdrawing_ends_the_promotion_and_the_history_keeps_who_when_and_the_evidence(
    expert_client, expert, teammate_client, judge, criterion
):
    teammate_client.post(promote_url(judge, 2))
    response = expert_client.post(
        f"/projects/acme/judges/criteria/{criterion.pk}/withdraw-promotion/", {"next": judge.pk}
    )
    assert response.status_code == 302 and response.url == judge_url(judge)
    promotion = Promotion.objects.get()
    assert promotion.ended_by == expert and promotion.ended_at is not None

    listing = expert_client.get("/projects/acme/judges/").content.decode()
    assert "none promoted" in listing
    history = expert_client.get("/projects/acme/judges/promotions/").content.decode()
    row = history.split(f'data-promotion="{promotion.pk}"')[1].split("</tr>")[0]
    report = promotion.report
    assert "apology v2" in row and "by teammate" in row and "by expert" in row
    assert f"{report['tpr']:.3f}" in row and f"[{report['ci']['tnr'][0]:.2f}, {report['ci']['tnr'][1]:.2f}]" in row
    assert "90% / 90%" in row


def test_a_promoted_version_whose_new_dev_run_is_under_the_bar_is_flagged_not_demoted(
    expert_client, expert, judge, criterion
):
    v2 = judge.versions.get(number=2)
    judge_version_promote(version=v2, user=expert)
    assert "under the bar" not in expert_client.get("/projects/acme/judges/").content.decode()
    # The expert changes their mind about half of the dev "Done." answers: the judge still passes them.
    dev_ids = labelled_trace_ids(criterion=criterion, split="dev")
    done = list(Label.objects.filter(criterion=criterion, trace_id__in=dev_ids, trace__output="Done."))
    for label in done[: len(done) // 2 + 1]:
        label.verdict = "fail"
        label.save()
    rerun = dev_run(v2)
    assert rerun.report["tnr"] < 0.9

    listing = html.unescape(expert_client.get("/projects/acme/judges/").content.decode())
    assert "Promoted, but it would not be promoted today: On dev, apology v2 has TPR" in listing
    assert Promotion.objects.get(ended_at=None).version == v2  # a warning, not a demotion
    assert "Promoted, but it would not be promoted today" in html.unescape(
        expert_client.get(judge_url(judge)).content.decode()
    )


def test_the_expert_sets_the_bar_and_bad_values_are_refused_with_clear_errors(
    expert_client, teammate_client, project, judge
):
    response = expert_client.post("/projects/acme/judges/promotion-bar/", {"min_tpr": "0.95", "min_tnr": "85%"})
    assert response.status_code == 302
    bar = promotion_bar(project=project)
    assert (bar.min_tpr, bar.min_tnr) == (0.95, 0.85)
    assert "bar: TPR ≥ 95%, TNR ≥ 85%, met on test" in expert_client.get("/projects/acme/judges/").content.decode()

    for min_tpr, min_tnr, message in (
        ("0.5", "0.9", "min_tpr: must be above 0.5 and below 1"),
        ("0.9", "1.2", "min_tnr: must be above 0.5 and below 1"),
        ("0.9", "100%", "min_tnr: must be above 0.5 and below 1 (a judge must beat a coin; no number of labels"),
        ("ninety", "0.9", "min_tpr: expected a number in (0.5, 1) such as 0.9, got 'ninety'"),
        ("nan", "0.9", "min_tpr: must be above 0.5"),
    ):
        response = expert_client.post(
            "/projects/acme/judges/promotion-bar/", {"min_tpr": min_tpr, "min_tnr": min_tnr}, follow=True
        )
        assert message in html.unescape(response.content.decode()), (min_tpr, min_tnr)
    bar = promotion_bar(project=project)
    assert (bar.min_tpr, bar.min_tnr) == (0.95, 0.85)

    assert (
        teammate_client.post("/projects/acme/judges/promotion-bar/", {"min_tpr": "0.6", "min_tnr": "0.6"}).status_code
        == 403
    )
    assert 'name="min_tpr"' not in teammate_client.get("/projects/acme/judges/").content.decode()


def test_promote_judge_command_promotes_or_exits_with_the_reason(judge, criterion, expert):
    with pytest.raises(CommandError, match=r"refused: On dev, apology v1 has TPR 100% \(\d+/\d+\) and TNR \d+%"):
        call_command("promote_judge", project="acme", judge="apology", version=1)
    with pytest.raises(CommandError, match="--version: judge 'apology' has no version 7"):
        call_command("promote_judge", project="acme", judge="apology", version=7)
    call_command("promote_judge", project="acme", judge="apology", version=2, user="expert", comment="from CI")
    promotion = Promotion.objects.get(ended_at=None)
    assert promotion.version.number == 2 and promotion.promoted_by == expert and promotion.comment == "from CI"


@pytest.mark.django_db(transaction=True)
def test_promote_judge_command_exits_with_status_1_when_refused(judge, settings):
    # The real CLI in another process (hence committed rows): a CommandError becomes stderr and exit status 1.
    env = {
        "SECRET_KEY": "x",
        "DATABASE_URL": _test_database_url(settings),
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "promote_judge", "--project", "acme", "--judge", "apology", "--version", "1"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "refused: On dev, apology v1 has TPR 100%" in result.stderr


def _test_database_url(settings) -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
