"""The demo project in a real browser, as `make run` shows it: the demo expert logs in and walks the stages after
review — the promoted judge, the LLM judge's Run button with no endpoint, the regressing suite run and its
side-by-side comparison, the fired alert, the golden set."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command

from annotation.models import Criterion
from demo.services import LLM_JUDGE, PLAIN_JUDGE
from judges.models import Judge, JudgeRun
from monitoring.models import Alert
from suites.golden import golden_size
from suites.models import SuiteRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = "/tmp/demo-{}.png"


def test_demo_expert_walks_from_judges_to_suites_monitoring_and_the_golden_set(page, live_server, settings):
    settings.DEBUG = True  # load_demo creates the demo login only with DEBUG on
    settings.OPENAI_BASE_URL = settings.OPENAI_API_KEY = ""  # as on a fresh `make run`
    call_command("load_demo", stdout=io.StringIO())
    plain = Criterion.objects.get(project__slug="demo", name="plain_text")
    llm = Judge.objects.get(project__slug="demo", name=LLM_JUDGE)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))

    page.goto(f"{live_server.url}/accounts/login/?next=/projects/demo/judges/")
    page.fill('input[name="username"]', "demo")
    page.fill('input[name="password"]', "demo")
    page.click('button[type="submit"]')
    page.wait_for_url(re.compile(r"/projects/demo/judges/$"))

    # Judges: the plain-text criterion's promoted judge, and an LLM judge that says how to get an endpoint.
    promoted = page.locator(f'.criterion-promotion[data-criterion="{plain.pk}"] a.badge.promoted')
    assert promoted.inner_text().strip() == f"★ {PLAIN_JUDGE} v2"
    blocked = page.locator(f"#run-blocked-{llm.pk}")
    assert blocked.locator("button").is_disabled()
    assert "OPENAI_BASE_URL=http://127.0.0.1:11434/v1" in blocked.inner_text()
    assert "Ollama" in blocked.inner_text() and "llama.cpp" in blocked.inner_text()
    assert "{#" not in page.inner_text("body")  # no template comment leaks into the page
    page.screenshot(path=SCREENSHOTS.format("judges"), full_page=True)
    page.click(f"#judge-{llm.pk} h3 a")
    page.wait_for_url(re.compile(rf"/projects/demo/judges/{llm.pk}/$"))
    assert "OPENAI_BASE_URL=http://127.0.0.1:11434/v1" in page.inner_text(f"#run-blocked-{llm.pk}")
    assert JudgeRun.objects.filter(version__judge=llm).count() == 0

    # Suites: two runs, the second exits 1 on plain_text; its page links to the side-by-side comparison.
    page.click("nav.project-nav >> text=Suites")
    page.wait_for_url(re.compile(r"/projects/demo/suites/$"))
    second = SuiteRun.objects.get(project__slug="demo", name="1.5.0")
    row = page.locator(f'tr[data-run="{second.pk}"]')
    assert "plain_text: regression" in row.inner_text()
    row.locator(f'a[href="/projects/demo/suites/{second.pk}/"]').click()
    page.wait_for_url(re.compile(rf"/projects/demo/suites/{second.pk}/$"))
    assert page.locator("[data-exit]").get_attribute("data-exit") == "1"
    assert page.locator("tr.regressed").count() >= 10
    page.click("text=side by side")
    page.wait_for_url(re.compile(r"/projects/demo/suites/compare/\?a=\d+&b=\d+$"))
    page.wait_for_selector("text=1 regressed")
    assert "1.5.0 regresses against 1.4.0" in page.inner_text("body")
    page.screenshot(path=SCREENSHOTS.format("compare"), full_page=True)

    # Monitoring: the alert fired on yesterday's sample, and its page lists the traces the judge failed.
    page.click("nav.project-nav >> text=Monitoring")
    page.wait_for_url(re.compile(r"/projects/demo/monitoring/$"))
    alert = Alert.objects.get(project__slug="demo")
    page.screenshot(path=SCREENSHOTS.format("monitoring"), full_page=True)
    page.click(f'a.state-firing[href="/projects/demo/monitoring/alerts/{alert.pk}/"]')
    page.wait_for_url(re.compile(rf"/projects/demo/monitoring/alerts/{alert.pk}/$"))
    failed = page.locator('a[href^="/projects/demo/traces/hb-"]')
    assert failed.count() == alert.judged - alert.passes > 0
    page.screenshot(path=SCREENSHOTS.format("alert"), full_page=True)

    # The golden set: its members, filed under their reasons.
    page.click("nav.project-nav >> text=Golden set")
    page.wait_for_url(re.compile(r"/projects/demo/golden/$"))
    body = page.inner_text("body")
    assert str(golden_size(project=alert.project)) in body
    for reason in ("Core feature", "Past regression", "Edge case"):
        assert reason in body, reason
    page.screenshot(path=SCREENSHOTS.format("golden"), full_page=True)
    page.goto(f"{live_server.url}/projects/demo/monitoring/{plain.pk}/?bucket=day&window=30d")
    page.screenshot(path=SCREENSHOTS.format("monitoring-criterion"), full_page=True)
    assert not [text for text in console if "error" in text.lower()]
