"""What an LLM judge's bias battery costs next to a dev run of the same version (the baseline, measured in the same
round), against a local OpenAI-compatible server in its own process answering after LATENCY_S.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/bias_battery.py [--rounds 3]

Per round, on a fresh answer cache: a dev run (every call new), then the battery (its unperturbed prompts are the
dev run's: found in the cache), then the battery again (every answer stored: no call). A scratch database,
`evalstudio_bench_bias`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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

BENCH_DB = "evalstudio_bench_bias"
TRACES, LATENCY_S, CONCURRENCY, FEW_SHOT = 1_000, 0.05, 16, 4
GOOD = "Sure! Your card is on its way. It ships today from the branch. Let me know if you need anything else."
BAD = "Sorry, I cannot help with that."


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    fresh_database(BENCH_DB)
    from django.conf import settings
    from django.contrib.auth.models import User

    from annotation.ingest import import_records
    from annotation.models import Criterion
    from annotation.services import project_create
    from judges.bias import bias_run_create, bias_run_execute
    from judges.models import LLMResponse
    from judges.services import judge_create, judge_run_create, judge_run_execute

    rng = random.Random(5)
    expert = User.objects.create(username="bench-expert")
    project = project_create(slug="bias", expert=expert)
    records = []
    for i in range(TRACES):
        bad = rng.random() < 0.4
        label = {"criterion": "polite", "verdict": "fail" if bad else "pass", "critique": "why"}
        records.append({"id": f"b-{i}", "input": f"Where is my card {i}?", "output": BAD if bad else GOOD,
                        "labels": [label]})  # fmt: skip
    import_records(project=project, records=records)
    criterion = Criterion.objects.get(project=project, name="polite")
    settings.EVALSTUDIO_JUDGE_CONCURRENCY = CONCURRENCY
    # The provider runs in its own process, as a real one would (see bench/judge_throughput.py).
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ}
    )
    dev_s, battery_s, cached_s = [], [], []
    try:
        settings.OPENAI_BASE_URL = server.stdout.readline().strip()
        judge = judge_create(project=project, criterion=criterion, name="llm", kind="llm",
                             config={"few_shot": FEW_SHOT, "model": "m"})  # fmt: skip
        version = judge.latest_version()
        for _ in range(rounds):
            LLMResponse.objects.all().delete()
            started = time.perf_counter()
            dev = judge_run_execute(run=judge_run_create(version=version, split="dev"))
            dev_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            battery = bias_run_execute(run=bias_run_create(version=version))
            battery_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            again = bias_run_execute(run=bias_run_create(version=version))
            cached_s.append(time.perf_counter() - started)
            assert battery.status == again.status == "done", (battery.error, again.error)
    finally:
        server.terminate()
        server.wait()
    n, prompts = dev.report["n"], battery.report["prompts"]
    dev_m, battery_m, cached_m = (statistics.median(x) for x in (dev_s, battery_s, cached_s))
    flips = {name: bias["flipped"] for name, bias in battery.report["biases"].items()}
    print(f"dev traces {n}; battery prompts {prompts} ({prompts - n} new: the unperturbed ones are the dev run's)")
    print(f"medians of {rounds} rounds, {CONCURRENCY} in flight, {LATENCY_S * 1000:.0f} ms a call")
    print(f"dev run (baseline, every call new)   {dev_m:7.2f} s  {n / dev_m:7.1f} traces/s")
    print(f"bias battery after the dev run       {battery_m:7.2f} s  {battery_m / dev_m:5.2f}x the dev run")
    print(f"bias battery again (all cached)      {cached_m:7.2f} s  {cached_m / dev_m:5.2f}x the dev run")
    print(f"flips (an honest scripted judge: 0 expected) {flips}")
    return 0


def serve() -> None:
    """The stand-in provider: fails apologies after LATENCY_S, whatever else the prompt says; prints its URL."""
    from tests.llm_server import Reply, ScriptedLLMServer

    def answer(request):
        graded = request.messages[-1]["content"]
        output = graded.split("<output>", 1)[-1]
        verdict = "fail" if "sorry" in output.lower() else "pass"
        return Reply(content=json.dumps({"reasoning": "checked", "verdict": verdict}), delay=LATENCY_S)

    with ScriptedLLMServer() as server:
        server.respond_with(answer)
        print(server.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    sys.exit(main())
