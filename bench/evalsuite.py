"""The regression suite end to end: `manage.py evalsuite` on a 200-case golden set with a promoted assertion judge
and a promoted classifier judge, as CI would run it (a fresh process each time: Django start-up, reading the
candidates, judging candidates and baseline, the paired statistics, writing the run, the JUnit XML).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/evalsuite.py

Target: < 10 s per run (median of RUNS). Everything runs in a scratch database, `evalstudio_bench_evalsuite`.
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pages import fresh_database  # noqa: E402

BENCH_DB = "evalstudio_bench_evalsuite"
LABELLED, GOLDEN, RUNS, TARGET_S = 2_000, 200, 5, 10.0
GOOD = ["Your card is on its way.", "The transfer went through.", "Here is the branch address.", "Done, refunded."]
BAD = ["Sorry, I cannot help.", "I apologise, no idea.", "Sorry, try later.", "Unfortunately, sorry."]
TOPICS = ["account", "card", "branch", "fee", "loan", "app", "transfer", "limit"]


def answer(rng: random.Random, bad: bool) -> str:
    return f"{rng.choice(BAD if bad else GOOD)} Reference {rng.randint(1, 99_999)}, " + " ".join(
        rng.choice(TOPICS) for _ in range(30)
    )


def main() -> int:
    bench_url = fresh_database(BENCH_DB)
    from django.contrib.auth.models import User

    from annotation.ingest import import_records
    from annotation.models import Criterion, Trace
    from annotation.services import project_create
    from judges.promotions import judge_version_promote
    from judges.services import judge_create, judge_run_create, judge_run_execute
    from suites.golden import golden_add

    rng = random.Random(5)
    expert = User.objects.create(username="bench-expert")
    project = project_create(slug="suite", expert=expert)
    records = []
    for i in range(LABELLED):
        bad = i % 3 == 0
        labels = [
            {"criterion": "polite", "verdict": "fail" if bad else "pass"},
            {"criterion": "no_apology", "verdict": "fail" if bad else "pass"},
        ]
        records.append({"id": f"s-{i}", "input": "Help me", "output": answer(rng, bad), "labels": labels})
    import_records(project=project, records=records)
    for criterion_name, kind, config in (
        ("no_apology", "assertion", {"check": "regex", "pattern": "(?i)sorry|apologi", "must_match": False}),
        ("polite", "classifier", {}),
    ):
        criterion = Criterion.objects.get(project=project, name=criterion_name)
        judge = judge_create(
            project=project, criterion=criterion, name=f"{criterion_name}-{kind}", kind=kind, config=config
        )
        for split in ("dev", "test"):  # promotion is decided on test
            judge_run_execute(run=judge_run_create(version=judge.latest_version(), split=split))
        judge_version_promote(version=judge.latest_version())
    golden_ids = [f"s-{i}" for i in range(GOLDEN)]
    golden_add(
        project=project, traces=Trace.objects.filter(project=project, external_id__in=golden_ids), reason="core_feature"
    )

    with tempfile.TemporaryDirectory() as tmp:
        candidates = Path(tmp) / "candidates.jsonl"
        # A release that apologises on 20 more cases than the golden outputs: a regression to detect.
        with candidates.open("w") as out:
            for i in range(GOLDEN):
                out.write(json.dumps({"id": f"s-{i}", "output": answer(rng, i % 3 == 0 or i % 10 == 1)}) + "\n")
        env = {**os.environ, "DATABASE_URL": bench_url, "SECRET_KEY": "insecure-bench-only-key", "DEBUG": "0"}
        command = [
            sys.executable, str(ROOT / "manage.py"), "evalsuite", "--project", "suite",
            "--candidates", str(candidates), "--junit", str(Path(tmp) / "junit.xml"), "--json",
        ]  # fmt: skip
        times, cpu, codes, result = [], [], set(), {}
        for _ in range(RUNS):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            # CPU seconds of the command: on a shared machine the wall time mostly measures the other tenants.
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            codes.add(done.returncode)
            if done.returncode not in (0, 1):
                print(done.stderr, file=sys.stderr)
                return 1
            result = json.loads(done.stdout)
        # In process: the suite itself, without interpreter and Django start-up.
        from annotation.trace_format import read_jsonl
        from suites.evalsuite import evalsuite_run

        inner = []
        for _ in range(RUNS):
            started = time.perf_counter()
            with candidates.open("rb") as stream:
                evalsuite_run(project=project, records=list(read_jsonl(stream, max_bytes=1 << 20)))
            inner.append(time.perf_counter() - started)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "check"], env=env, cwd=ROOT, capture_output=True, check=True
        )
        startup = time.perf_counter() - started

    median = statistics.median(times)
    print(f"evalsuite, {GOLDEN} cases x 2 criteria (assertion + classifier), candidates and baseline judged")
    print(
        f"  end to end (new process)   median {median:6.2f} s  "
        f"(min {min(times):.2f}, max {max(times):.2f}; target < {TARGET_S:.0f} s)"
    )
    print(f"  CPU time of that process   median {statistics.median(cpu):6.2f} s  (user + system)")
    print(f"  the suite in process       median {statistics.median(inner):6.2f} s")
    print(f"  `manage.py check`, for scale      {startup:6.2f} s (Django start-up and system checks, no judging)")
    for c in result["criteria"]:
        print(
            f"  {c['criterion']:<11} pass {c['pass_rate']:.3f} vs baseline {c['baseline_pass_rate']:.3f}, "
            f"p = {c['p_value']:.2g}: {c['verdict']}"
        )
    print(f"  exit codes {sorted(codes)} (1: the 20-case regression was caught)")
    print(f"  machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    return 0 if median < TARGET_S and codes == {1} else 1


if __name__ == "__main__":
    sys.exit(main())
