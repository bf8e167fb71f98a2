"""Two judge versions side by side: the numbers against hand counts and SciPy, the paired test's verdict, what is
excluded and why, the differing traces (escaped, paged), and access."""

from __future__ import annotations

import html

import numpy as np
import pytest
from scipy.stats import binomtest

from judges.comparison import compare_judges, format_p
from judges.models import Judgment
from judges.selectors import labelled_trace_ids
from judges.services import judge_create, judge_run_create, judge_run_execute, judge_version_create
from judges.stats import ConfusionMatrix, confidence_intervals, labels_needed
from tests.factories import make_criterion, make_label, make_trace

EXACT = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
LOOSE = {"check": "contains", "value": "sorry,", "ignore_case": True, "must_contain": False}


# --- the pure comparison ----------------------------------------------------------------------------------------


def test_compare_judges_counts_mcnemar_and_the_paired_difference_match_hand_and_scipy_values():
    # expert, A, B → count. A right only: (pass, pass, fail) 3 + (fail, fail, pass) 2 = 5; B right only: 9 + 6 = 15.
    cells = {
        ("pass", "pass", "pass"): 50,
        ("pass", "pass", "fail"): 3,
        ("pass", "fail", "pass"): 9,
        ("pass", "fail", "fail"): 2,
        ("fail", "fail", "fail"): 20,
        ("fail", "fail", "pass"): 2,
        ("fail", "pass", "fail"): 6,
        ("fail", "pass", "pass"): 8,
    }
    result = compare_judges(cells, name_a="v1", name_b="v2")
    assert result.n == 100
    assert result.cm_a == ConfusionMatrix(tp=53, fn=11, fp=14, tn=22)
    assert result.cm_b == ConfusionMatrix(tp=59, fn=5, fp=10, tn=26)
    assert (result.both_right, result.only_a_right, result.only_b_right, result.both_wrong) == (70, 5, 15, 10)
    assert result.p_value == pytest.approx(binomtest(5, 20, 0.5).pvalue, rel=1e-12)
    assert result.accuracy.estimate == pytest.approx((85 - 75) / 100)
    assert result.tpr.estimate == pytest.approx(59 / 64 - 53 / 64)
    assert result.tnr.estimate == pytest.approx(26 / 36 - 22 / 36)
    assert result.accuracy.low < result.accuracy.estimate < result.accuracy.high
    assert result.ci_b == confidence_intervals(result.cm_b)
    # The paired interval is narrower than an unpaired one would be: it cannot exceed the discordant share.
    assert result.accuracy.high - result.accuracy.low < 0.2
    assert result.significant
    assert result.verdict.startswith("v2 agrees with the expert more often than v1: +10.0 points [")
    assert result.verdict.endswith(f"McNemar {format_p(result.p_value)}.")


def test_without_a_significant_difference_the_verdict_says_keep_labelling_with_labels_needed():
    cells = {("pass", "pass", "pass"): 40, ("pass", "pass", "fail"): 3, ("pass", "fail", "pass"): 4}
    cells |= {("fail", "fail", "fail"): 20, ("fail", "pass", "pass"): 1}
    result = compare_judges(cells, name_a="v1", name_b="v2", min_tpr=0.9, min_tnr=0.9)
    assert result.p_value == pytest.approx(binomtest(3, 7, 0.5).pvalue) and not result.significant
    # B is right once more (4 vs 3): its TPR 44/47 and TNR 20/21 decide how many labels are needed.
    tpr_needed, tnr_needed = labels_needed(44 / 47, 0.9), labels_needed(20 / 21, 0.9)
    assert result.verdict.startswith("No significant difference (+1.5 points [")
    assert "McNemar p = 1.00: keep labelling — labels_needed says, for v2's 95% lower bound to clear the bar" in (
        result.verdict
    )
    assert f"its TPR of 94% needs {tpr_needed:,} pass labels (these runs share 47)" in result.verdict
    assert f"its TNR of 95% needs {tnr_needed:,} fail labels (these runs share 21)" in result.verdict


def test_compare_judges_on_nothing_says_so_and_rejects_bad_cells():
    assert compare_judges({}).verdict.startswith("No trace was judged by both versions")
    with pytest.raises(ValueError, match="expected \\(expert, a, b\\) verdicts"):
        compare_judges({("pass", "maybe", "pass"): 1})


def test_format_p_reads_like_the_brief():
    assert (format_p(0.0042), format_p(0.41), format_p(0.00001)) == ("p = 0.004", "p = 0.41", "p < 0.001")


# --- the page ------------------------------------------------------------------------------------------------------


@pytest.fixture
def criterion(project):
    criterion = make_criterion(project=project, name="no_apology")
    for i in range(160):
        kind = i % 4
        output = ["Done.", "Sorry, no.", "Sorry for this.", "Ok."][kind]
        trace = make_trace(project=project, external_id=f"t-{i}", output=output)
        make_label(trace=trace, criterion=criterion, verdict="fail" if kind in (1, 2) else "pass")
    return criterion


@pytest.fixture
def runs(project, criterion):
    """v1 misses "Sorry for this." (expert fail, judged pass); v2 catches it. Their dev runs."""
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=LOOSE)
    v2 = judge_version_create(judge=judge, config=EXACT, comment="catch every apology")
    run_a = judge_run_execute(run=judge_run_create(version=judge.versions.get(number=1), split="dev"))
    run_b = judge_run_execute(run=judge_run_create(version=v2, split="dev"))
    return judge, run_a, run_b


def hand_counts(run_a, run_b, criterion):
    """Only-A-right and only-B-right counted in Python from the rows, independently of the page's SQL."""
    expert = labelled_trace_ids(criterion=criterion, split="all")
    a = dict(Judgment.objects.filter(run=run_a).exclude(verdict="").values_list("trace_id", "verdict"))
    b = dict(Judgment.objects.filter(run=run_b).exclude(verdict="").values_list("trace_id", "verdict"))
    common = [t for t in a if t in b and t in expert]
    only_a = sum(a[t] == expert[t] != b[t] for t in common)
    only_b = sum(b[t] == expert[t] != a[t] for t in common)
    return len(common), only_a, only_b


@pytest.mark.django_db
def test_page_compares_two_versions_with_mcnemar_and_lists_the_differences(expert_client, runs, criterion):
    judge, run_a, run_b = runs
    n, only_a, only_b = hand_counts(run_a, run_b, criterion)
    assert only_a == 0 and only_b > 5  # v2 fixes every "Sorry for this."
    response = expert_client.get(f"/projects/acme/judges/compare/?judge={judge.pk}&va=1&vb=2&split=dev")
    assert response.status_code == 200
    body = html.unescape(response.content.decode())
    p = binomtest(0, only_b, 0.5).pvalue
    diff = only_b / n * 100
    assert f"v2 agrees with the expert more often than v1: +{diff:.1f} points [" in body
    assert f"McNemar {format_p(p)}." in body
    assert f"Compared on <strong>{n}</strong> expert-labelled traces judged by both." in body
    assert f'data-cell="only_b">{only_b}<' in body and 'data-cell="only_a">0<' in body
    assert body.count('class="right-b"') == min(only_b, 25)
    # The same page by run ids.
    by_runs = expert_client.get(f"/projects/acme/judges/compare/?a={run_a.pk}&b={run_b.pk}")
    assert html.unescape(by_runs.content.decode()).count(f"+{diff:.1f} points [") >= 1


@pytest.mark.django_db
def test_traces_judged_by_one_version_or_errored_are_excluded_and_counted(expert_client, runs, criterion):
    judge, run_a, run_b = runs
    judged_b = list(Judgment.objects.filter(run=run_b).order_by("trace_id"))
    judged_b[0].delete()
    Judgment.objects.filter(pk=judged_b[1].pk).update(verdict="", error="timeout")
    n, _, _ = hand_counts(run_a, run_b, criterion)
    body = expert_client.get(f"/projects/acme/judges/compare/?a={run_a.pk}&b={run_b.pk}").content.decode()
    assert f"Compared on <strong>{n}</strong>" in body
    assert n == len(judged_b) - 2
    assert "Excluded: 1 judged only by A, 0 judged only by B" in body
    assert "1 where either judgment was an error" in body


@pytest.mark.django_db
def test_differing_traces_are_escaped_and_paged_by_keyset(expert_client, runs, criterion, monkeypatch):
    from judges import views_compare

    monkeypatch.setattr(views_compare, "DIFFERENCES_PER_PAGE", 5)
    judge, run_a, run_b = runs
    _, _, only_b = hand_counts(run_a, run_b, criterion)
    Judgment.objects.filter(run=run_b).update(reasoning="<script>alert('x')</script>")
    url = f"/projects/acme/judges/compare/?a={run_a.pk}&b={run_b.pk}"
    seen: list[str] = []
    page = expert_client.get(url).content.decode()
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    while True:
        ids = [chunk.split('"')[0] for chunk in page.split('<tr data-trace="')[1:]]
        assert 0 < len(ids) <= 5
        seen += ids
        if "next 5 →" not in page:
            break
        next_url = html.unescape(page.split('<a href="')[-1].split('"')[0]).split("#")[0]
        assert "after=" in next_url
        page = expert_client.get(next_url).content.decode()
    assert len(seen) == len(set(seen)) == only_b  # every differing trace once, in trace order across pages


@pytest.mark.django_db
def test_judge_page_links_each_version_to_its_comparison_with_the_previous_one(expert_client, runs):
    judge, _, _ = runs
    page = expert_client.get(f"/projects/acme/judges/{judge.pk}/").content.decode()
    link = f"/projects/acme/judges/compare/?judge={judge.pk}&amp;va=1&amp;vb=2&amp;split=dev"
    assert f'href="{link}"' in page
    assert expert_client.get(html.unescape(link)).status_code == 200


@pytest.mark.django_db
def test_judge_page_links_a_version_to_the_comparison_only_when_both_have_a_finished_dev_run(expert_client, runs):
    """A new version not yet run on dev has nothing to compare: the link would open a 400 page (found by the crawl
    of the demo, tests/test_crawl.py, after "New version" on a judge page)."""
    judge, _, _ = runs
    judge_version_create(judge=judge, config=LOOSE, comment="back to the loose check")
    page = expert_client.get(f"/projects/acme/judges/{judge.pk}/").content.decode()
    assert "va=1&amp;vb=2&amp;split=dev" in page
    assert "va=2&amp;vb=3" not in page
    judge_run_execute(run=judge_run_create(version=judge.versions.get(number=3), split="dev"))
    page = expert_client.get(f"/projects/acme/judges/{judge.pk}/").content.decode()
    link = f"/projects/acme/judges/compare/?judge={judge.pk}&amp;va=2&amp;vb=3&amp;split=dev"
    assert f'href="{link}"' in page and expert_client.get(html.unescape(link)).status_code == 200


@pytest.mark.django_db
def test_bad_or_impossible_requests_are_400_with_the_reason(expert_client, project, runs):
    judge, run_a, run_b = runs
    other = judge_create(
        project=project,
        criterion=make_criterion(project=project, name="other"),
        name="o",
        kind="assertion",
        config=EXACT,
    )
    cases = {
        "?a=x&b=2": "a: expected a number, got &#x27;x&#x27;",
        f"?a={run_a.pk}": "a, b: name two runs, like ?a=12&amp;b=15",
        f"?a={run_a.pk}&b=999999": "b: run 999999 is not a run of this project",
        f"?a={run_a.pk}&b={run_a.pk}": f"a, b: both name run {run_a.pk}",
        f"?judge={judge.pk}&va=1&vb=9&split=dev": "vb: apology has no version 9",
        f"?judge={judge.pk}&va=1&vb=2&split=test": "va: apology v1 has no finished run on test",
        f"?judge={judge.pk}&va=1&vb=2&split=nope": "split: expected one of",
        f"?judge={judge.pk}&va=1&vb=1&judge_b={other.pk}&split=dev": "vb: o v1 has no finished run on dev",
    }
    for query, message in cases.items():
        response = expert_client.get(f"/projects/acme/judges/compare/{query}")
        assert response.status_code == 400, query
        assert message in response.content.decode(), (query, response.content.decode()[-800:])
    other_run = judge_run_execute(run=judge_run_create(version=other.latest_version(), split="dev"))
    response = expert_client.get(f"/projects/acme/judges/compare/?a={run_a.pk}&b={other_run.pk}")
    assert response.status_code == 400 and "compare judges of the same criterion" in response.content.decode()


@pytest.mark.django_db
def test_outsiders_get_404_and_runs_of_another_project_are_not_found(outsider_client, expert_client, runs, outsider):
    _, run_a, run_b = runs
    assert outsider_client.get(f"/projects/acme/judges/compare/?a={run_a.pk}&b={run_b.pk}").status_code == 404
    from tests.factories import make_project

    make_project(slug="other", expert=outsider)
    response = outsider_client.get(f"/projects/other/judges/compare/?a={run_a.pk}&b={run_b.pk}")
    assert response.status_code == 400 and "is not a run of this project" in response.content.decode()


def test_paired_bootstrap_interval_covers_the_hand_computed_sampling_spread():
    # A sanity check of the interval's width against the normal approximation for paired proportions.
    cells = {("pass", "pass", "fail"): 10, ("pass", "fail", "pass"): 30, ("pass", "pass", "pass"): 160}
    result = compare_judges(cells)
    d = np.array([-1] * 10 + [1] * 30 + [0] * 160) / 1
    se = d.std() / np.sqrt(len(d))
    assert result.accuracy.high - result.accuracy.low == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_the_paired_difference_from_counts_draws_what_the_per_trace_bootstrap_draws():
    from judges.comparison import paired_difference_from_counts
    from judges.stats import paired_bootstrap_difference

    a = [True] * 30 + [False] * 12 + [True] * 50 + [False] * 8  # only A 30, only B 12, same 58
    b = [False] * 30 + [True] * 12 + [True] * 50 + [False] * 8
    expected = paired_bootstrap_difference(a, b, seed=7)
    got = paired_difference_from_counts(30, 58, 12, seed=7)
    assert (got.estimate, got.low, got.high) == pytest.approx(expected, abs=1e-12)
    assert paired_difference_from_counts(0, 0, 0) is None


@pytest.mark.django_db
def test_a_changed_label_changes_the_cached_comparison(expert_client, expert, runs, criterion):
    judge, run_a, run_b = runs
    url = f"/projects/acme/judges/compare/?a={run_a.pk}&b={run_b.pk}"
    before = expert_client.get(url).content.decode()
    n, only_a, only_b = hand_counts(run_a, run_b, criterion)
    assert f'data-cell="only_b">{only_b}<' in before
    # The expert flips one trace both versions judged "fail" correctly: now both are wrong there, and a trace
    # where only v2 was right becomes one where only v1 is.
    differing = Judgment.objects.filter(run=run_b, verdict="fail", trace__output="Sorry for this.").first()
    from annotation.services import label_submit

    label_submit(trace=differing.trace, criterion=criterion, verdict="pass", critique="Fine after all.", user=expert)
    after = expert_client.get(url).content.decode()
    assert f'data-cell="only_b">{only_b - 1}<' in after and 'data-cell="only_a">1<' in after


@pytest.mark.django_db
def test_a_bare_visit_shows_the_picker_and_its_form_compares_versions(expert_client, runs):
    judge, _, _ = runs
    page = expert_client.get("/projects/acme/judges/compare/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'class="error"' not in body and f'<option value="{judge.pk}">no_apology · apology (v1–v2)</option>' in body
    # What the form submits when B's judge is left at "same as A".
    response = expert_client.get(f"/projects/acme/judges/compare/?judge={judge.pk}&va=1&judge_b=&vb=2&split=dev")
    assert response.status_code == 200
    assert "v2 agrees with the expert more often than v1" in response.content.decode()
