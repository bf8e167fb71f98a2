"""Judge throughput: an LLM judge against a local OpenAI-compatible server, and classifier scoring.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/judge_throughput.py

LLM: 2,000 labelled traces judged by an LLM judge version against tests/llm_server.py answering after 200 ms, with
32 calls in flight (EVALSTUDIO_JUDGE_CONCURRENCY); the bound is 32 / 0.2 s = 160 traces/s, target >= 0.8 of it.
Classifier: a trained classifier judge scoring 20,000 traces (model alone, and a whole run with its database
writes); target >= 5,000 traces/s. Everything runs in a scratch database, `evalstudio_bench_judges`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pages import fresh_database  # noqa: E402

BENCH_DB = "evalstudio_bench_judges"
LLM_TRACES, LATENCY_S, CONCURRENCY = 2_000, 0.2, 32
CLASSIFIER_TRACES = 20_000
GOOD = ["Your card is on its way.", "The transfer went through.", "Here is the branch address.", "Done, refunded."]
BAD = ["Sorry, I cannot help.", "I apologise, no idea.", "Sorry, try later.", "Unfortunately, sorry."]


def main() -> int:
    fresh_database(BENCH_DB)
    from django.conf import settings
    from django.contrib.auth.models import User

    from annotation.ingest import import_records
    from annotation.models import Criterion
    from annotation.services import project_create
    from judges.providers import TraceInput
    from judges.providers.classifier import TrainedClassifier
    from judges.services import judge_create, judge_run_create, judge_run_execute

    rng = random.Random(3)
    expert = User.objects.create(username="bench-expert")
    project = project_create(slug="judges", expert=expert)
    records = []
    for i in range(CLASSIFIER_TRACES):
        bad = i % 3 == 0
        text = f"{rng.choice(BAD if bad else GOOD)} Reference {rng.randint(1, 99_999)}, " + " ".join(
            rng.choice(["account", "card", "branch", "fee", "loan", "app"]) for _ in range(30)
        )
        labels = [
            {"criterion": "polite", "verdict": "fail" if bad else "pass", "critique": "apologises" if bad else ""}
        ]
        records.append({"id": f"j-{i}", "input": "Help me", "output": text, "labels": labels})
    import_records(project=project, records=records)
    criterion = Criterion.objects.get(project=project, name="polite")

    # Classifier: the model alone, then a whole run (chunks, judgments written, the report).
    judge = judge_create(project=project, criterion=criterion, name="tfidf", kind="classifier", config={})
    version = judge.latest_version()
    model = TrainedClassifier.loads(bytes(version.artifact))
    traces = [TraceInput(external_id=r["id"], input=r["input"], output=r["output"]) for r in records]
    started = time.perf_counter()
    model.judge_many(traces)
    model_rate = len(traces) / (time.perf_counter() - started)
    run = judge_run_create(version=version, split="all")
    started = time.perf_counter()
    run = judge_run_execute(run=run)
    run_rate = run.total / (time.perf_counter() - started)

    # LLM: the first 2,000 traces, through a judge whose version has no few-shot examples (a short prompt).
    llm_project = project_create(slug="llm", expert=expert)
    import_records(project=llm_project, records=records[:LLM_TRACES])
    llm_criterion = Criterion.objects.get(project=llm_project, name="polite")
    settings.EVALSTUDIO_JUDGE_CONCURRENCY = CONCURRENCY
    # The provider runs in its own process, as a real one would: in this process its threads would compete with
    # the judge's for the interpreter lock and the figure would measure that instead.
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ}
    )
    try:
        settings.OPENAI_BASE_URL = server.stdout.readline().strip()
        llm_judge = judge_create(
            project=llm_project, criterion=llm_criterion, name="llm", kind="llm", config={"few_shot": 0, "model": "m"}
        )
        llm_run = judge_run_create(version=llm_judge.latest_version(), split="all")
        started = time.perf_counter()
        llm_run = judge_run_execute(run=llm_run)
        llm_seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait()
    llm_rate = llm_run.total / llm_seconds
    bound = CONCURRENCY / LATENCY_S

    print(f"classifier scoring, model alone      {model_rate:>8,.0f} traces/s  (target >= 5,000)")
    print(f"classifier run incl. database writes {run_rate:>8,.0f} traces/s  ({run.total:,} traces)")
    print(
        f"LLM judge, {CONCURRENCY} in flight, {LATENCY_S * 1000:.0f} ms each   {llm_rate:>8,.1f} traces/s  "
        f"= {llm_rate / bound:.2f} of the {bound:.0f}/s bound (target >= 0.8); errors {llm_run.report['errors']}"
    )
    return 0


def serve() -> None:
    """The stand-in provider: answers every call after LATENCY_S, failing apologies; prints its base URL."""
    from tests.llm_server import Reply, ScriptedLLMServer

    def answer(request):
        verdict = "fail" if "sorry" in request.messages[-1]["content"].lower() else "pass"
        return Reply(content=json.dumps({"reasoning": "checked", "verdict": verdict}), delay=LATENCY_S)

    with ScriptedLLMServer() as server:
        server.respond_with(answer)
        print(server.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    sys.exit(main())
