"""Chaos: the worker is SIGKILLed three times during an LLM judge run over 300 traces, a fresh worker started each
time. The run still finishes, with exactly one judgment per trace and at most 5% more provider calls than traces:
answers are stored per call, so a kill loses only the calls in flight, and the next worker takes the run over once
its heartbeat is stale (EVALSTUDIO_RUN_STALE_SECONDS, 3 s here)."""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count

from annotation.models import Label, Trace
from judges.models import JudgeRun, Judgment
from judges.services import judge_create, judge_run_enqueue
from tests.chaos.processes import (
    SCRATCH,
    STALE_SECONDS,
    base_env,
    database_url,
    kill_group,
    purge_broker,
    start_worker,
    wait_for,
)
from tests.factories import make_criterion
from tests.llm_server import Reply, ScriptedLLMServer

TRACES = 300
KILLS = 3
SEED = 20261204
# A kill loses the calls in flight, and the answers received but not yet stored (each is stored as soon as the
# thread that owns the database connection gets to it: on a busy machine, a call or two behind). So the extra calls
# are bounded by kills x calls in flight, whatever the run's size: one prefork process judging with 2 concurrent
# calls loses 2-4 per kill, 6-12 for three kills, under the 5% of 300 (15) the issue allows. (With the production
# default of 16 concurrent calls a kill would cost up to 16 calls plus the same lag.)
WORKER_PROCESSES = 1
JUDGE_CONCURRENCY = 2

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a broker the processes share (REDIS_URL)"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the worker processes need the database by URL"),
]


def test_a_judge_run_survives_three_worker_kills_with_one_judgment_per_trace_and_few_extra_calls(project, settings):
    criterion = make_criterion(project=project, name="no_apology")
    traces = Trace.objects.bulk_create(
        Trace(project=project, external_id=f"k-{i}", shuffle_key=project.shuffle_key(f"k-{i}"), output=f"Done {i}.")
        for i in range(TRACES)
    )
    Label.objects.bulk_create(
        Label(trace=trace, criterion=criterion, verdict="pass", author=project.expert) for trace in traces
    )
    judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 0})
    answer = json.dumps({"reasoning": "looked", "verdict": "pass"})
    rng = random.Random(SEED)
    # One kill in each third of the run, at a random number of calls made: always mid-run, never at the same spot.
    kill_at = [rng.randrange(20 + 90 * k, 100 + 90 * k) for k in range(KILLS)]
    SCRATCH.mkdir(parents=True, exist_ok=True)
    log = Path(tempfile.mkdtemp(prefix="worker-kill-", dir=SCRATCH)) / "workers.log"
    kills: list[dict[str, float | int]] = []
    with ScriptedLLMServer(latency=(0.02, 0.05), seed=SEED) as llm:
        llm.respond_with(lambda _request: Reply(content=answer))
        env = base_env(
            DATABASE_URL=database_url(connection.settings_dict),
            OPENAI_BASE_URL=llm.base_url,
            OPENAI_API_KEY="test",
            EVALSTUDIO_JUDGE_CONCURRENCY=str(JUDGE_CONCURRENCY),
            EVALSTUDIO_RUN_STALE_SECONDS=str(STALE_SECONDS),
        )
        purge_broker()
        worker = start_worker(env, log=log, concurrency=WORKER_PROCESSES)
        try:
            settings.OPENAI_BASE_URL = llm.base_url  # the run is queued from here, to the workers' endpoint
            run = judge_run_enqueue(version=judge.latest_version(), split="all")
            enqueued_at, first_kill_at = time.monotonic(), 0.0
            for calls in kill_at:
                wait_for(lambda calls=calls: len(llm.chat_requests) >= calls, 90, f"{calls} provider calls")
                kill_group(worker)
                first_kill_at = first_kill_at or time.monotonic()
                judged = Judgment.objects.filter(run=run).count()
                attempts = JudgeRun.objects.get(pk=run.pk).attempts
                kills.append({"calls": len(llm.chat_requests), "judged": judged, "attempts": attempts})
                assert judged < TRACES, "the kill came after the run had finished"
                worker = start_worker(env, log=log, concurrency=WORKER_PROCESSES)
            restarted_at = time.monotonic()
            wait_for(lambda: JudgeRun.objects.get(pk=run.pk).is_finished, 120, "the run to finish after the last kill")
            finished_after = time.monotonic() - restarted_at
            total = time.monotonic() - enqueued_at
        finally:
            kill_group(worker)
        calls = len(llm.chat_requests)
        # The baseline, from the same run: the first worker's pace before anything was killed.
        first_call = llm.chat_requests[0].received_at
        rate = kills[0]["calls"] / (first_kill_at - first_call)
        # A request cut off by the kill has no readable body: it counts as a call, but names no prompt.
        asked = Counter(json.dumps(request.messages) for request in llm.chat_requests if request.messages)

    run.refresh_from_db()
    assert run.status == JudgeRun.Status.DONE, run.error
    # A fresh worker first works the chunks the dead one left queued, under the same attempt (it still owns the run);
    # what the dead worker held is taken over once the heartbeat is stale: at most one new attempt per kill.
    assert 1 < run.attempts <= KILLS + 1, kills
    per_trace = Judgment.objects.filter(run=run).values("trace_id").annotate(n=Count("id"))
    assert len(per_trace) == TRACES and {row["n"] for row in per_trace} == {1}
    assert run.report["n"] == TRACES and run.report["errors"] == 0
    assert calls <= 1.05 * TRACES, (calls, kills)
    print(
        f"\nworker kills: {KILLS} at calls {[k['calls'] for k in kills]}"
        f" (judgments then {[k['judged'] for k in kills]});"
        f" provider calls {calls} for {TRACES} traces ({calls / TRACES:.3f}x);"
        f" prompts asked twice {sum(1 for n in asked.values() if n > 1)};"
        f" finished {finished_after:.1f} s after the last restart; attempts {run.attempts};"
        f" whole run {total:.1f} s against {TRACES / rate:.1f} s at the undisturbed pace ({rate:.0f} calls/s)"
    )
