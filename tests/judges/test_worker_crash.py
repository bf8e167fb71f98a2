"""A judge run survives its worker being killed: SIGKILL a real worker process mid-run, start another at once, and
the run is taken over within about the staleness window and finishes with exactly one judgment per trace; every LLM
answer the killed worker received is kept, and never paid for again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from judges.models import JudgeRun, Judgment, LLMResponse
from judges.services import judge_create, judge_run_enqueue, judge_run_execute
from tests.factories import make_criterion, make_label, make_trace
from tests.llm_server import Reply, ScriptedLLMServer

ROOT = Path(__file__).resolve().parent.parent.parent
TRACES = 40
# The staleness window of the workers started here (the default is 60 s): short, so the test is quick.
STALE_SECONDS = 1


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(llm_url: str, *, judge_concurrency: int = 2) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "test",
        "EVALSTUDIO_JUDGE_CONCURRENCY": str(judge_concurrency),
        "EVALSTUDIO_RUN_STALE_SECONDS": str(STALE_SECONDS),
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
def test_a_run_whose_worker_is_killed_finishes_on_the_next_worker_with_one_judgment_each(project, settings):
    criterion = make_criterion(project=project, name="no_apology")
    for i in range(TRACES):
        trace = make_trace(project=project, external_id=f"k-{i}", output="Sorry." if i % 2 else "Done.")
        make_label(trace=trace, criterion=criterion, verdict="fail" if i % 2 else "pass")
    judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 0})
    answer = json.dumps({"reasoning": "looked", "verdict": "pass"})
    with ScriptedLLMServer() as llm:
        llm.respond_with(lambda _request: Reply(content=answer, delay=0.1))
        first = start_worker(llm.base_url)
        try:
            settings.OPENAI_BASE_URL = llm.base_url  # the run is queued from here, to the workers' endpoint
            run = judge_run_enqueue(version=judge.latest_version(), split="all")
            wait_for(lambda: len(llm.chat_requests) >= 5, 60, "the first worker to start judging")
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        killed_at = time.monotonic()
        run.refresh_from_db()
        assert run.status == JudgeRun.Status.RUNNING and run.attempts == 1
        last_beat = run.heartbeat_at  # the window runs from here, which may be up to a beat before the kill
        calls_before = len(llm.chat_requests)
        # Started at once, not after the window: the new worker takes the run over once its heartbeat is stale
        # (queued for that moment if still fresh when it starts), not at a broker redelivery an hour later.
        second = start_worker(llm.base_url)
        try:
            wait_for(lambda: JudgeRun.objects.get(pk=run.pk).attempts == 2, 60, "the second worker to take it over")
            taken_over_after = time.monotonic() - killed_at
            silent_for = (timezone.now() - last_beat).total_seconds()
            wait_for(lambda: JudgeRun.objects.get(pk=run.pk).is_finished, 90, "the second worker to finish the run")
        finally:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(timeout=30)
    run.refresh_from_db()
    assert run.status == JudgeRun.Status.DONE, run.error
    # The window, plus the new worker's start-up (a few seconds on a busy machine); nowhere near the old 600 s.
    assert silent_for >= STALE_SECONDS, silent_for  # never taken over while the heartbeat was fresh
    assert taken_over_after < STALE_SECONDS + 25, taken_over_after
    assert Judgment.objects.filter(run=run).count() == TRACES == run.report["n"] + run.report["errors"]
    assert len(set(Judgment.objects.filter(run=run).values_list("trace_id", flat=True))) == TRACES
    assert len(llm.chat_requests) > calls_before  # the second worker did judge what was left
    assert settings.EVALSTUDIO_RUN_STALE_SECONDS == 60  # this process kept the default


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a broker two processes share (REDIS_URL)")
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the worker process needs the test database by URL")
def test_a_worker_killed_mid_chunk_keeps_every_answer_it_paid_for_and_the_rerun_asks_only_for_the_rest(
    project, settings
):
    criterion = make_criterion(project=project, name="no_apology")
    held = {3, 11}  # the provider sits on these two prompts until the worker is dead
    for i in range(20):
        trace = make_trace(project=project, external_id=f"c-{i}", output=f"Held {i}." if i in held else f"Done {i}.")
        make_label(trace=trace, criterion=criterion, verdict="pass")
    judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 0})
    answer = json.dumps({"reasoning": "looked", "verdict": "pass"})
    release = threading.Event()

    def respond(request):
        if "Held" in request.messages[-1]["content"]:
            release.wait(120)
        return Reply(content=answer)

    with ScriptedLLMServer() as llm:
        llm.respond_with(respond)
        # Four calls in flight, so two held prompts leave two slots for the rest of the one 64-trace chunk.
        worker = start_worker(llm.base_url, judge_concurrency=4)
        try:
            settings.OPENAI_BASE_URL = llm.base_url  # the run is queued from here, to the workers' endpoint
            run = judge_run_enqueue(version=judge.latest_version(), split="all")
            wait_for(lambda: LLMResponse.objects.count() == 18, 60, "the 18 answered prompts to be stored")
            assert not Judgment.objects.filter(run=run).exists()  # the chunk itself is not done
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            release.set()
        assert len(llm.chat_requests) == 20
        settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = llm.base_url, "test"
        settings.EVALSTUDIO_RUN_STALE_SECONDS = 1
        time.sleep(1.5)  # the killed worker's heartbeat goes stale: the run is this process's to take over
        run = judge_run_execute(run=JudgeRun.objects.get(pk=run.pk))
        asked_again = llm.chat_requests[20:]
    assert run.status == JudgeRun.Status.DONE and (run.report["n"], run.report["errors"]) == (20, 0)
    assert sorted(r.messages[-1]["content"].split("<output>\n")[1].split("\n")[0] for r in asked_again) == [
        "Held 11.",
        "Held 3.",
    ]
    assert LLMResponse.objects.count() == 20
