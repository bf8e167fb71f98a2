"""The suite-run pages: the list of runs with per-criterion badges, one run's table and failing cases (candidate
output beside the baseline's, escaped), 404 for outsiders."""

from __future__ import annotations

import pytest

from suites.models import SuiteRun
from tests.suites import test_evalsuite as cli

pytestmark = pytest.mark.django_db
criterion = cli.criterion  # the fixture: a promoted assertion judge and 40 golden traces
SCRIPT = "<script>alert('owned')</script> Sorry, no."


def run_suite(tmp_path, outputs, *args: str) -> SuiteRun:
    cli.evalsuite("--project", "acme", "--candidates", cli.write_candidates(tmp_path, outputs), *args)
    return SuiteRun.objects.order_by("-id").first()


def test_the_list_shows_each_run_with_its_criterion_verdicts(teammate_client, criterion, tmp_path):
    run_suite(tmp_path, cli.golden_outputs(), "--name", "v1.0")
    run_suite(tmp_path, cli.golden_outputs(apologising=25), "--baseline", "v1.0")
    response = teammate_client.get("/projects/acme/suites/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("data-run=") == 2 and "v1.0" in html
    assert "no_apology: regression" in html and "no_apology: pass" in html
    assert 'href="/projects/acme/suites/"' in html  # the nav link
    # Each run of the 40-case golden set carries its warning, counted on the list (the run page says it in full).
    assert html.count('data-warnings="1"') == 2 and "the golden set has 40 cases, fewer than 100" in html


def test_a_run_page_shows_the_numbers_and_the_regressed_cases_first_escaped(expert_client, criterion, tmp_path):
    outputs = cli.golden_outputs(apologising=30)
    outputs["g-20"] = SCRIPT
    run = run_suite(tmp_path, outputs)
    response = expert_client.get(f"/projects/acme/suites/{run.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-verdict="regression"' in html and 'data-exit="1"' in html
    assert "0.250" in html and "0.750" in html  # pass rate and the baseline's
    assert "30 failing cases" in html and "The first 25, regressions first." in html
    cases = [chunk.split('"')[0] for chunk in html.split('data-case="')[1:]]
    assert cases == [f"g-{i}" for i in range(10, 30)] + [f"g-{i}" for i in range(5)]  # 20 regressions, then known
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in html
    # The baseline output beside the candidate's: the golden trace's own answer.
    assert cli.GOOD in html
    assert (
        '<p class="suite-warning">Warning: the golden set has 40 cases, fewer than 100: at a 70% pass rate a '
        "criterion&#x27;s 95% interval is 30 points wide (53%–83%), too wide to see a regression" in html
    )


def test_outsiders_get_404_and_other_projects_runs_are_not_found(outsider_client, expert_client, criterion, tmp_path):
    run = run_suite(tmp_path, cli.golden_outputs())
    assert outsider_client.get("/projects/acme/suites/").status_code == 404
    assert outsider_client.get(f"/projects/acme/suites/{run.pk}/").status_code == 404
    assert expert_client.get(f"/projects/acme/suites/{run.pk + 1000}/").status_code == 404


def test_queued_and_failed_runs_show_their_status_instead_of_numbers(expert_client, project, criterion):
    from tests.suites.test_evalsuite_api import candidates

    queued = expert_client.post(
        "/api/v1/projects/acme/evalsuite", {"candidates": candidates(), "wait": False}, content_type="application/json"
    ).json()
    html = expert_client.get("/projects/acme/suites/").content.decode()
    assert 'data-status="queued"' in html
    # The run page polls while the worker judges, and stops (286) once the run has ended.
    url = f"/projects/acme/suites/{queued['run_id']}/"
    polled = expert_client.get(url, headers={"HX-Request": "true"})
    assert polled.status_code == 200 and 'hx-trigger="every 1s"' in polled.content.decode()
    assert "<html" not in polled.content.decode()
    SuiteRun.objects.filter(pk=queued["run_id"]).update(status="failed", error="ValueError: <b>bad</b> judge")
    html = expert_client.get(url).content.decode()
    assert 'data-status="failed"' in html and "The run failed: ValueError: &lt;b&gt;bad&lt;/b&gt; judge" in html
    assert "hx-trigger" not in html
    final = expert_client.get(url, headers={"HX-Request": "true"})
    assert final.status_code == 286 and 'data-status="failed"' in final.content.decode()
