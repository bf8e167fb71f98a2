"""A judge run survives its worker being killed: SIGKILL a real worker process mid-run, start another, and the run
finishes with exactly one judgment per trace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from judges.models import JudgeRun, Judgment
from judges.services import judge_create, judge_run_enqueue
from tests.factories import make_criterion, make_label, make_trace
from tests.llm_server import Reply, ScriptedLLMServer

ROOT = Path(__file__).resolve().parent.parent.parent
TRACES = 40


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(llm_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "test",
        "EVALSTUDIO_JUDGE_CONCURRENCY": "2",
        # The killed worker's run must look abandoned to the next worker quickly.
        "EVALSTUDIO_JUDGE_STALE_SECONDS": "2",
    }
    command = [sys.executable, "-m", "celery", "-A", "evalstudio", "worker", "--pool", "threads", "--concurrency", "2"]
    return subprocess.Popen(
        [*command, "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # its own process group, so SIGKILL reaches every process of it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a broker two processes share (REDIS_URL)")
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the worker process needs the test database by URL")
def test_a_run_whose_worker_is_killed_finishes_on_the_next_worker_with_one_judgment_each(project):
    criterion = make_criterion(project=project, name="no_apology")
    for i in range(TRACES):
        trace = make_trace(project=project, external_id=f"k-{i}", output="Sorry." if i % 2 else "Done.")
        make_label(trace=trace, criterion=criterion, verdict="fail" if i % 2 else "pass")
    judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 0})
    answer = json.dumps({"reasoning": "looked", "verdict": "pass"})
    with ScriptedLLMServer() as llm:
        llm.respond_with(lambda _request: Reply(content=answer, delay=0.2))
        first = start_worker(llm.base_url)
        try:
            run = judge_run_enqueue(version=judge.latest_version(), split="all")
            wait_for(lambda: len(llm.chat_requests) >= 5, 60, "the first worker to start judging")
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        run.refresh_from_db()
        assert run.status == JudgeRun.Status.RUNNING
        calls_before = len(llm.chat_requests)
        time.sleep(2.5)  # its heartbeat goes stale
        second = start_worker(llm.base_url)
        try:
            wait_for(lambda: JudgeRun.objects.get(pk=run.pk).is_finished, 90, "the second worker to finish the run")
        finally:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(timeout=30)
    run.refresh_from_db()
    assert run.status == JudgeRun.Status.DONE, run.error
    assert Judgment.objects.filter(run=run).count() == TRACES == run.report["n"] + run.report["errors"]
    assert len(set(Judgment.objects.filter(run=run).values_list("trace_id", flat=True))) == TRACES
    assert len(llm.chat_requests) > calls_before  # the second worker did judge what was left
    assert settings.EVALSTUDIO_JUDGE_STALE_SECONDS == 600  # this process kept the default
