"""Pairwise release comparison: an LLM judge asked both orders of every pair, against a local OpenAI-compatible
server, beside the pointwise LLM judge on the same number of calls (the baseline, measured in the same run).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/pairwise.py [--rounds 3]

PAIRS golden cases answered by two suite runs: 2 × PAIRS calls, each answered after LATENCY_S, CONCURRENCY in flight
(EVALSTUDIO_JUDGE_CONCURRENCY); the bound is CONCURRENCY / LATENCY_S calls/s. The baseline is a pointwise LLM judge
run over 2 × PAIRS labelled traces (the same number of calls). Then the same comparison again, every answer read
from the store (LLMResponse): what a re-run costs. Everything runs in a scratch database, `evalstudio_bench_pairwise`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pages import fresh_database  # noqa: E402

BENCH_DB = "evalstudio_bench_pairwise"
PAIRS, LATENCY_S, CONCURRENCY = 500, 0.2, 32


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fresh_database(BENCH_DB)
    from django.conf import settings
    from django.contrib.auth.models import User

    from annotation.ingest import import_records
    from annotation.models import Criterion, Trace
    from annotation.services import project_create
    from judges.models import LLMResponse
    from judges.services import judge_create, judge_run_create, judge_run_execute
    from suites.models import SuiteCase, SuiteRun
    from suites.pairwise import pairwise_comparison_create, pairwise_comparison_execute

    expert = User.objects.create(username="bench-expert")
    project = project_create(slug="pairwise", expert=expert)
    records = [
        {
            "id": f"g-{i}",
            "input": f"What is the refund window for order {i}?",
            "output": f"Within 30 days of delivery for order {i}.",
            "labels": [{"criterion": "complete", "verdict": "pass" if i % 3 else "fail", "critique": "c"}],
        }
        for i in range(2 * PAIRS)
    ]
    import_records(project=project, records=records)
    criterion = Criterion.objects.get(project=project, name="complete")
    traces = list(Trace.objects.filter(project=project).order_by("id")[:PAIRS])
    baseline = SuiteRun.objects.create(project=project, name="41", golden_version=1, status=SuiteRun.Status.DONE)
    candidate = SuiteRun.objects.create(project=project, name="42", golden_version=1, status=SuiteRun.Status.DONE)
    for i, trace in enumerate(traces):
        short, full = "30 days.", f"Within 30 days of delivery for order {i}, by mail or in store."
        SuiteCase.objects.create(run=baseline, trace=trace, output=short if i % 2 else full)
        SuiteCase.objects.create(run=candidate, trace=trace, output=full if i % 2 else short)

    settings.EVALSTUDIO_JUDGE_CONCURRENCY = CONCURRENCY
    # The provider runs in its own process, as a real one would (see bench/judge_throughput.py).
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ}
    )
    pointwise, pairwise, cached = [], [], []
    try:
        settings.OPENAI_BASE_URL = server.stdout.readline().strip()
        judge = judge_create(
            project=project, criterion=criterion, name="llm", kind="llm", config={"few_shot": 0, "model": "m"}
        )
        version = judge.latest_version()
        for _ in range(args.rounds):
            LLMResponse.objects.all().delete()  # every round pays for its calls
            run = judge_run_create(version=version, split="all")
            started = time.perf_counter()
            run = judge_run_execute(run=run)
            pointwise.append(run.total / (time.perf_counter() - started))

            LLMResponse.objects.all().delete()
            comparison = pairwise_comparison_create(
                project=project, baseline=baseline, candidate=candidate, criterion=criterion, version=version
            )
            started = time.perf_counter()
            pairwise_comparison_execute(comparison=comparison)
            pairwise.append(2 * PAIRS / (time.perf_counter() - started))
            comparison.refresh_from_db()
            summary = comparison.summary
            assert summary["judged"] == PAIRS and summary["inconsistent"] == 0, summary

            again = pairwise_comparison_create(
                project=project, baseline=baseline, candidate=candidate, criterion=criterion, version=version
            )
            started = time.perf_counter()
            pairwise_comparison_execute(comparison=again)
            cached.append(PAIRS / (time.perf_counter() - started))
            again.refresh_from_db()
            assert again.summary["prompt_tokens"] == 0, again.summary
    finally:
        server.terminate()
        server.wait()
    bound = CONCURRENCY / LATENCY_S
    point, pair, reread = (statistics.median(x) for x in (pointwise, pairwise, cached))
    print(f"medians of {args.rounds} rounds; {CONCURRENCY} calls in flight, {LATENCY_S * 1000:.0f} ms each")
    print(f"baseline: pointwise LLM judge run       {point:>8,.1f} calls/s = {point / bound:.2f} of the "
          f"{bound:.0f}/s bound")  # fmt: skip
    print(f"pairwise comparison, both orders        {pair:>8,.1f} calls/s = {pair / bound:.2f} of the bound "
          f"({pair / point:.2f}× the baseline; {pair / 2:,.1f} pairs/s)")  # fmt: skip
    print(f"the same comparison again, from store   {reread:>8,.0f} pairs/s, 0 calls")
    return 0


def serve() -> None:
    """The stand-in provider: answers every call after LATENCY_S; a pairwise prompt gets the longer response
    preferred, a pointwise one a verdict. Prints its base URL."""
    from tests.llm_server import Reply, ScriptedLLMServer

    def answer(request):
        text = request.messages[-1]["content"]
        if "<response_A>" in text:
            a, b = (re.search(rf"<response_{x}>(.*?)</response_{x}>", text, re.S).group(1) for x in "AB")
            body = {"reasoning": "checked", "preference": "A" if len(a) > len(b) else "B"}
        else:
            body = {"reasoning": "checked", "verdict": "pass"}
        return Reply(content=json.dumps(body), delay=LATENCY_S)

    with ScriptedLLMServer() as server:
        server.respond_with(answer)
        print(server.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    sys.exit(main())
