"""Judging the production sample: never in the way of ingestion, every sampled trace judged exactly once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db import connection, connections

from annotation import ingest
from annotation.models import Trace
from judges.bias import bias_run_create, bias_run_execute
from judges.models import JudgeVersion
from judges.promotions import judge_version_promote
from judges.providers import Outcome
from judges.services import judge_create, judge_run_create, judge_run_execute
from monitoring.models import MonitorJudgment
from monitoring.sampling import is_sampled
from monitoring.selectors import window_counts
from monitoring.services import BUSY, drain_chunk, monitoring_drain, sampling_rate_set
from monitoring.tasks import monitor_drain_task
from tests.llm_server import Reply, ScriptedLLMServer
from tests.monitoring.helpers import (
    check_row,
    cursor_of,
    jsonl,
    judge_check,
    production,
    promoted_judge,
    sampled,
    verdicts_of,
)

ROOT = Path(__file__).resolve().parent.parent.parent


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.django_db(transaction=True)
def test_ingestion_works_with_no_worker_and_a_worker_started_later_judges_every_sampled_trace_once(project, request):
    promotion = promoted_judge(project)
    report = ingest.import_stream(project=project, stream=jsonl(production(800)))
    assert report.created == 800
    want = sampled(project)
    assert 80 < len(want) < 170
    time.sleep(1)
    assert not MonitorJudgment.objects.exists()  # nobody consumed the kick

    request.getfixturevalue("celery_worker")
    monitor_drain_task.delay()
    wait_for(lambda: MonitorJudgment.objects.count() >= len(want), 60, "the backlog to drain")
    time.sleep(1)  # the kick queued at ingestion ran too (or runs now): still one verdict per trace
    judged = list(MonitorJudgment.objects.values_list("trace_id", "verdict", "monitored_check__key"))
    assert sorted(t for t, _, _ in judged) == sorted(want)
    assert {v for _, _, v in judged} == {promotion.version_id}
    outputs = dict(Trace.objects.filter(pk__in=want).values_list("id", "output"))
    assert all((verdict == "fail") == outputs[t].startswith("Sorry") for t, verdict, _ in judged)
    # The walk went past the production traces that are not in the sample too.
    last_production = Trace.objects.filter(project=project, source="production").order_by("id").last()
    assert cursor_of(promotion.version).last_trace_id == last_production.pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_drains_never_judge_a_trace_twice(project):
    promotion = promoted_judge(project)
    sampling_rate_set(project=project, rate=1.0)
    ingest.import_stream(project=project, stream=jsonl(production(300)))
    scored: list[str] = []
    lock = threading.Lock()

    def score(traces):
        time.sleep(0.05)
        with lock:
            scored.extend(t.external_id for t in traces)
        return [Outcome(verdict="pass") for _ in traces]

    check = judge_check(promotion)

    def drain():
        try:
            while (done := drain_chunk(project=project, check=check, score=score, chunk_size=25)) != 0:
                if done == BUSY:
                    time.sleep(0.01)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(scored) == 300 and len(set(scored)) == 300
    assert verdicts_of(promotion.version).count() == 300


@pytest.mark.django_db
def test_a_failed_chunk_is_given_back_and_judged_by_the_next_drain(project):
    promotion = promoted_judge(project)
    ingest.import_stream(project=project, stream=jsonl(production(400)))

    def broken(_traces):
        raise ConnectionError("provider down")

    with pytest.raises(ConnectionError):
        drain_chunk(project=project, check=judge_check(promotion), score=broken)
    assert not MonitorJudgment.objects.exists()
    assert monitoring_drain(project=project) == len(sampled(project))
    assert monitoring_drain(project=project) == 0  # safe to run twice
    assert MonitorJudgment.objects.count() == len(sampled(project))


@pytest.mark.django_db
def test_a_new_promotion_starts_with_the_backfill_window_not_all_history(project, settings):
    ingest.import_stream(project=project, stream=jsonl(production(300, prefix="old")))
    Trace.objects.filter(project=project).update(created_at="2020-01-01T00:00:00Z")
    ingest.import_stream(project=project, stream=jsonl(production(300, prefix="new")))
    promoted_judge(project)
    monitoring_drain(project=project)
    judged = set(MonitorJudgment.objects.values_list("trace__external_id", flat=True))
    assert judged and all(i.startswith("new-") for i in judged)
    assert judged == set(
        Trace.objects.filter(project=project, pk__in=sampled(project), external_id__startswith="new-").values_list(
            "external_id", flat=True
        )
    )


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_is_down_neither_fails_nor_slows_an_import(project, tmp_path):
    promoted_judge(project)
    path = tmp_path / "prod.jsonl"
    path.write_bytes(jsonl(production(500)).getvalue())
    # Nothing listens on port 9 (discard) of loopback: every connection to this broker is refused.
    env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": "redis://127.0.0.1:9/0"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", "import_traces", "--project", "acme", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "created 500" in result.stdout
    assert "Could not queue a monitoring drain of acme" in result.stderr
    assert elapsed < 15, f"the import took {elapsed:.1f} s"
    assert len(sampled(project)) > 40


def test_beat_schedules_the_drain_and_the_alert_evaluation_as_registered_tasks(settings):
    from evalstudio.celery import app

    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["monitoring-drain"]["schedule"] == settings.EVALSTUDIO_MONITOR_DRAIN_SECONDS == 60
    assert schedule["monitoring-alerts"]["schedule"] == settings.EVALSTUDIO_MONITOR_ALERT_SECONDS == 300
    app.loader.import_default_modules()
    for entry in schedule.values():
        assert entry["task"] in app.tasks, entry["task"]
    procfile = (ROOT / "Procfile.dev").read_text()
    assert "-B --schedule var/celerybeat-schedule" in procfile
    assert "celery -A evalstudio beat" in (ROOT / "docker-compose.yml").read_text()


@pytest.mark.django_db
def test_an_llm_judge_drains_through_the_provider_once_per_sampled_trace_and_errors_stay_errors(project, settings):
    # The provider fails on one sampled trace: its judgment must be an error, outside every rate.
    broken_index = next(i for i in range(60) if is_sampled(source="production", external_id=f"p-{i}", rate=0.5))

    def verdict_by_content(request) -> Reply:
        graded = request.messages[-1]["content"]
        if re.search(rf"question {broken_index}(?!\d)", graded):
            return Reply(status=500, content="provider broke")
        verdict = "fail" if "sorry" in graded.lower() else "pass"
        return Reply(content=json.dumps({"reasoning": f"Looked for an apology: {verdict}.", "verdict": verdict}))

    with ScriptedLLMServer() as llm:
        settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY, settings.EVALSTUDIO_LLM_MAX_RETRIES = llm.base_url, "k", 0
        llm.respond_with(verdict_by_content)
        criterion = promoted_judge(project).criterion  # labelled traces; replaced below by an LLM judge
        judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 0})
        version: JudgeVersion = judge.latest_version()
        for split in ("dev", "test"):
            judge_run_execute(run=judge_run_create(version=version, split=split))
        bias_run_execute(run=bias_run_create(version=version))  # an LLM judge is promoted after its bias battery
        promotion = judge_version_promote(version=version)
        sampling_rate_set(project=project, rate=0.5)
        ingest.import_stream(project=project, stream=jsonl(production(60)))
        before = len(llm.chat_requests)
        want = sampled(project)
        assert monitoring_drain(project=project) == len(want)
        assert len(llm.chat_requests) - before == len(want)
        judged = verdicts_of(version)
        assert set(judged.values_list("trace_id", flat=True)) == want
        broken = set(Trace.objects.filter(pk__in=want, input=f"question {broken_index}").values_list("id", flat=True))
        assert len(broken) == 1
        assert set(judged.filter(verdict="").values_list("trace_id", flat=True)) == broken
        passes, fails, errors = window_counts(
            check_id=check_row(promotion).pk, start=judged.earliest("occurred_at").occurred_at, end=time_far()
        )
        assert errors == len(broken) and passes + fails == len(want) - len(broken)
        assert judged.filter(verdict="pass").first().reasoning.startswith("Looked for an apology")


def time_far():
    return datetime(2100, 1, 1, tzinfo=UTC)
