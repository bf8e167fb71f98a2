"""Re-reviewing a judge's disagreements in a real browser, keyboard only: each trace blind first, then the earlier
label and the judge's reasoning revealed, then the decision."""

from __future__ import annotations

import re

import pytest

from annotation.models import BlindRelabel, Label
from judges.review_sessions import disagreement_session_create
from judges.services import judge_create, judge_run_create, judge_run_execute
from tests.browser.conftest import login
from tests.factories import make_criterion, make_label, make_trace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REASONING = "The reply apologises nowhere; regret is not an apology."
EARLIER = "Regret is an apology in all but name."


def test_expert_relabels_disagreements_blind_then_decides_with_the_keyboard(page, live_server, project, expert):
    criterion = make_criterion(project=project, name="no_apology", definition="Fail when the reply apologises.")
    # The expert failed both; the judge (fails on "sorry" only) passes both.
    traces = [
        make_trace(project=project, external_id="d-1", output="We regret the delay."),
        make_trace(project=project, external_id="d-2", output="We regret that, truly."),
    ]
    for trace in traces:
        make_label(trace=trace, criterion=criterion, verdict="fail", critique=EARLIER)
        trace.reviewed_at = trace.created_at
        trace.save(update_fields=["reviewed_at"])
    judge = judge_create(
        project=project,
        criterion=criterion,
        name="apology",
        kind="assertion",
        config={"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False},
    )
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))
    run.judgments.update(reasoning=REASONING)
    session = disagreement_session_create(run=run, created_by=expert)
    qs = rf"\?order=random&session={session.pk}$"

    login(page, live_server, "expert", f"/projects/acme/sessions/{session.pk}/")
    page.click("#start-reviewing")
    page.wait_for_url(re.compile(rf"/traces/d-1/{qs}"))
    page.wait_for_selector("#review[data-keyboard-ready]")
    blind_html = page.content()
    assert REASONING not in blind_html and EARLIER not in blind_html and "apology v1" not in blind_html

    # Blind: p, a critique, r locks it. A terse fail is nudged as it is typed; the nudge goes once it says enough.
    page.keyboard.press("f")
    page.wait_for_selector(f'#verdict-{criterion.pk}[data-verdict="fail"]', state="attached")
    assert page.is_visible("[data-terse-nudge]")
    page.keyboard.press("p")
    page.wait_for_selector(f'#verdict-{criterion.pk}[data-verdict="pass"]', state="attached")
    page.wait_for_selector('label.verdict-pass.is-selected input[value="pass"]:checked', state="attached")
    assert not page.is_visible("[data-terse-nudge]")
    page.keyboard.press("c")
    page.keyboard.type("Regrets a delay; no apology for the answer itself.")
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    page.wait_for_selector("#relabel-reveal")
    assert page.url.endswith(f"/traces/d-1/?order=random&session={session.pk}")
    reveal = page.inner_text("#relabel-reveal")
    assert REASONING in reveal and EARLIER in reveal and "apology v1 said" in reveal
    assert Label.objects.get(trace=traces[0]).verdict == "fail"  # nothing changed until the decision

    # Decide: the labels differ, so r without a reason is held by the form, which puts the cursor in the reason.
    page.keyboard.press("b")
    page.keyboard.press("r")
    page.wait_for_selector('textarea[name="reason"]:focus')
    assert not BlindRelabel.objects.get(item__trace=traces[0]).is_decided
    page.keyboard.type("The delay is not the reply's fault to apologise for.")
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    page.wait_for_url(re.compile(rf"/traces/d-2/{qs}"))
    page.wait_for_selector("#review[data-keyboard-ready]")

    # The second trace: blind fail, which agrees with the earlier label; r decides at once (blind is preselected).
    page.keyboard.press("f")
    page.keyboard.press("c")
    page.keyboard.type("Regret for the answer itself: an apology by another word.")
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    page.wait_for_selector("#relabel-reveal")
    page.keyboard.press("r")
    page.wait_for_url(re.compile(rf"/review/{qs}"))

    first, second = (BlindRelabel.objects.get(item__trace=trace) for trace in traces)
    assert (first.final_verdict, first.moved_toward_judge) == ("pass", True)
    assert (second.final_verdict, second.moved_toward_judge) == ("fail", False)
    assert [Label.objects.get(trace=trace).verdict for trace in traces] == ["pass", "fail"]
    page.goto(f"{live_server.url}/projects/acme/sessions/{session.pk}/")
    assert "1 of 2" in page.inner_text("#relabel-drift")


def test_expert_recalibrates_labels_made_under_an_earlier_definition_blind(page, live_server, project, expert):
    """From the criterion's page after an edit: the session, blind first (no earlier label in the page or in any
    htmx response the blind step makes), then the reveal with both versions, then the decision."""
    from annotation.services import criterion_create, criterion_update, label_submit

    criterion = criterion_create(
        project=project, name="no_apology", definition="Fail when the reply apologises.", user=expert
    )
    trace = make_trace(project=project, external_id="r-1", output="We regret the delay.")
    label_submit(trace=trace, criterion=criterion, verdict="pass", critique=EARLIER, user=expert)
    criterion_update(
        criterion=criterion,
        name=criterion.name,
        definition="Fail when the reply apologises or expresses regret.",
        failure_mode=None,
        user=expert,
    )
    login(page, live_server, "expert", f"/projects/acme/criteria/{criterion.pk}/")
    assert "1 label was made under an earlier definition" in page.inner_text(".definition-versions")
    page.click("text=Recalibrate: label them again blind")
    page.click("#start-reviewing")
    page.wait_for_url(re.compile(r"/traces/r-1/"))
    htmx_bodies: list[str] = []
    page.on(
        "response",
        lambda response: htmx_bodies.append(response.text()) if response.request.headers.get("hx-request") else None,
    )
    page.wait_for_selector("#review[data-keyboard-ready]")
    assert EARLIER not in page.content() and "it is now version 2" in page.inner_text("#relabel-blind")

    page.keyboard.press("f")
    page.wait_for_selector(f'#verdict-{criterion.pk}[data-verdict="fail"]', state="attached")
    page.keyboard.press("c")
    page.keyboard.type("Regrets the delay: that is regret, which now fails.")
    page.keyboard.press("Escape")
    assert not any(EARLIER in body for body in htmx_bodies)
    page.keyboard.press("r")
    page.wait_for_selector("#relabel-reveal")
    reveal = page.inner_text("#relabel-reveal")
    assert EARLIER in reveal and "under version 1; the blind one under version 2" in reveal and "said" not in reveal
    page.keyboard.press("b")
    page.keyboard.press("c")
    page.keyboard.type("Regret counts as failing under the new words.")
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    page.wait_for_url(re.compile(r"/review/"))
    label = Label.objects.get(trace=trace, criterion=criterion)
    assert (label.verdict, label.criterion_version) == ("fail", 2)


def test_the_queue_re_serves_an_old_label_blind_and_goes_on(page, live_server, project, expert):
    """At the expert's rate the queue re-serves a trace labelled days ago: the page (and every response the browser
    gets while on it) holds neither the earlier label, its critique nor the notes; the answers are kept beside it."""
    from datetime import timedelta

    from django.utils import timezone

    from annotation.models import Note, SelfReview
    from annotation.rereviews import rereview_due
    from annotation.services import criterion_create, label_submit

    criterion = criterion_create(project=project, name="no_apology", definition="Fail when the reply apologises.")
    old = make_trace(project=project, external_id="old-1", output="We regret the delay.")
    label_submit(trace=old, criterion=criterion, verdict="fail", critique=EARLIER, user=expert)
    Note.objects.create(trace=old, author=expert, text="A note that must stay hidden.")
    Label.objects.filter(trace=old).update(updated_at=timezone.now() - timedelta(days=8))
    make_trace(project=project, external_id="new-1", output="Your refund is on its way.")
    project.rereview_rate = 0.5
    project.save(update_fields=["rereview_rate"])
    first_due = next(step for step in range(1, 50) if rereview_due(project, step=step))

    bodies: list[str] = []
    page.on("response", lambda response: bodies.append(response.text()) if "/rereview/" in response.url else None)
    login(page, live_server, "expert", "/projects/acme/review/")
    for _ in range(first_due - 1):
        page.goto(f"{live_server.url}/projects/acme/review/")
    page.wait_for_url(re.compile(rf"/rereview/{old.pk}/"))
    assert "We regret the delay." in page.inner_text(".trace-pane")
    assert all(EARLIER not in body and "must stay hidden" not in body for body in bodies) and bodies
    page.check(f'input[name="verdict-{criterion.pk}"][value="pass"]')
    page.fill(f'textarea[name="critique-{criterion.pk}"]', "Regret for a delay is not an apology.")
    page.click("text=Save the re-review")
    page.wait_for_url(re.compile(r"/traces/new-1/"))
    review = SelfReview.objects.get(trace=old)
    assert (review.then_verdict, review.verdict, review.then_critique) == ("fail", "pass", EARLIER)
    assert Label.objects.get(trace=old).verdict == "fail"
