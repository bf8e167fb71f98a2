"""Two suite runs side by side: per-criterion pass rates with exact intervals, McNemar on the cases both ran, the
paired difference, verdicts, the flipped cases (pass→fail first), and access. Suite rows are made by hand here;
the evalsuite command that normally writes them is tested on its own."""

from __future__ import annotations

import html

import pytest
from scipy.stats import binomtest

from judges.comparison import RateWithInterval, compare_runs, format_p
from judges.services import judge_create
from suites.models import SuiteCase, SuiteRun, SuiteVerdict
from tests.factories import make_criterion, make_project, make_trace

pytestmark = pytest.mark.django_db
CHECK = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}


def make_run(project, name: str) -> SuiteRun:
    return SuiteRun.objects.create(project=project, name=name, golden_version=1, status=SuiteRun.Status.DONE)


def add_verdict(run, trace, criterion, version, verdict: str, reasoning: str = "") -> None:
    case, _ = SuiteCase.objects.get_or_create(run=run, trace=trace, defaults={"output": "candidate"})
    SuiteVerdict.objects.create(
        case=case,
        criterion=criterion,
        judge_version=version,
        verdict=verdict,
        reasoning=reasoning,
        error="" if verdict else "timeout",
    )


@pytest.fixture
def runs(project):
    """tone: 12 pass→fail, 1 fail→pass, 24 pass→pass, 3 fail→fail (a regression); length: 2 pass→fail, 3 fail→pass,
    35 pass→pass (no significant change). Plus one case only in A and one error in B, both outside the pairs."""
    tone = make_criterion(project=project, name="tone", position=1)
    length = make_criterion(project=project, name="length", position=2)
    tone_v = judge_create(project=project, criterion=tone, name="tone-j", kind="assertion", config=CHECK)
    length_v = judge_create(project=project, criterion=length, name="length-j", kind="assertion", config=CHECK)
    tone_v, length_v = tone_v.latest_version(), length_v.latest_version()
    a, b = make_run(project, "release-41"), make_run(project, "release-42")
    tone_pairs = [("pass", "fail")] * 12 + [("fail", "pass")] + [("pass", "pass")] * 24 + [("fail", "fail")] * 3
    length_pairs = [("pass", "fail")] * 2 + [("fail", "pass")] * 3 + [("pass", "pass")] * 35
    for i in range(40):
        trace = make_trace(project=project, external_id=f"g-{i:02d}")
        add_verdict(a, trace, tone, tone_v, tone_pairs[i][0])
        add_verdict(b, trace, tone, tone_v, tone_pairs[i][1], reasoning=f"<b>reason {i}</b>")
        add_verdict(a, trace, length, length_v, length_pairs[i][0])
        add_verdict(b, trace, length, length_v, length_pairs[i][1])
    only_a = make_trace(project=project, external_id="g-only-a")
    add_verdict(a, only_a, tone, tone_v, "pass")
    errored = make_trace(project=project, external_id="g-error")
    add_verdict(a, errored, tone, tone_v, "fail")
    add_verdict(b, errored, tone, tone_v, "")
    return a, b


def test_compare_runs_matches_scipy_for_mcnemar_and_the_exact_interval():
    result = compare_runs(
        RateWithInterval(37, 42),
        RateWithInterval(25, 40),
        {("pass", "fail"): 12, ("fail", "pass"): 1, ("pass", "pass"): 24, ("fail", "fail"): 3},
        name_a="41",
        name_b="42",
    )
    assert result.p_value == pytest.approx(binomtest(1, 13, 0.5).pvalue, rel=1e-12)
    exact = binomtest(25, 40).proportion_ci(method="exact")
    assert result.b.interval == pytest.approx((exact.low, exact.high), abs=1e-9)
    assert result.difference.estimate == pytest.approx((25 - 36) / 40)
    assert result.outcome == "worse"
    assert result.verdict.startswith("42 regresses against 41: -27.5 points [")
    assert f"McNemar {format_p(result.p_value)} (12 pass→fail, 1 fail→pass)." in result.verdict


def test_page_shows_rates_with_exact_intervals_the_paired_test_and_a_verdict_per_criterion(expert_client, runs):
    a, b = runs
    response = expert_client.get(f"/projects/acme/suites/compare/?a={a.pk}&b={b.pk}")
    assert response.status_code == 200
    body = html.unescape(response.content.decode())
    tone = body.split('data-criterion="tone"')[1].split("</tr>")[0]
    # A: 36 of the 40 paired + the A-only pass + the fail whose B verdict errored = 37 of 42; B: 25 of 40.
    exact_a = binomtest(37, 42).proportion_ci(method="exact")
    assert f"{37 / 42:.3f}" in tone and f"[{exact_a.low:.2f}, {exact_a.high:.2f}]" in tone and "37/42" in tone
    assert "25/40" in tone and "<td>40</td>" in tone  # 40 paired: the A-only case and the error are left out
    assert "<td>12</td>" in tone and "<td>1</td>" in tone
    assert '<span class="badge below">worse</span>' in tone
    p = binomtest(1, 13, 0.5).pvalue
    assert "release-42 regresses against release-41: -27.5 points [" in tone and format_p(p) in tone

    length = body.split('data-criterion="length"')[1].split("</tr>")[0]
    assert "no significant difference" in length and f"McNemar {format_p(binomtest(2, 5).pvalue)}" in length
    assert "+2.5 points" in length
    assert "1 regressed" in body


def test_flipped_cases_are_listed_pass_to_fail_first_and_escaped(expert_client, runs):
    a, b = runs
    body = expert_client.get(f"/projects/acme/suites/compare/?a={a.pk}&b={b.pk}").content.decode()
    rows = body.split('flipped-cases">')[1].split("</table>")[0].split("<tr data-trace=")[1:]
    kinds = [row.split('class="flip-')[1].split('"')[0] for row in rows]
    assert kinds == ["pass-fail"] * 14 + ["fail-pass"] * 4  # tone 12 + length 2, then tone 1 + length 3
    assert 'Cases that flipped <span class="muted">(18)</span>' in body
    assert "<b>reason" not in body and "&lt;b&gt;reason 0&lt;/b&gt;" in body


def test_bad_requests_are_400_with_the_reason_and_outsiders_get_404(expert_client, outsider_client, runs, outsider):
    a, b = runs
    for query, message in {
        "": "a: name two suite runs",
        f"?a={a.pk}": "b: name two suite runs",
        f"?a={a.pk}&b=x": "b: expected a suite run number, got &#x27;x&#x27;",
        f"?a={a.pk}&b=99999": "b: suite run 99999 is not a suite run of this project",
        f"?a={a.pk}&b={a.pk}": f"a, b: both name suite run {a.pk}",
    }.items():
        response = expert_client.get(f"/projects/acme/suites/compare/{query}")
        assert response.status_code == 400 and message in response.content.decode(), query
    assert outsider_client.get(f"/projects/acme/suites/compare/?a={a.pk}&b={b.pk}").status_code == 404
    make_project(slug="theirs", expert=outsider)
    response = outsider_client.get(f"/projects/theirs/suites/compare/?a={a.pk}&b={b.pk}")
    assert response.status_code == 400 and "is not a suite run of this project" in response.content.decode()


def test_teammates_and_viewers_can_read_the_comparison(teammate_client, runs):
    a, b = runs
    assert teammate_client.get(f"/projects/acme/suites/compare/?a={a.pk}&b={b.pk}").status_code == 200
