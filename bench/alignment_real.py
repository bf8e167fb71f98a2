"""Real data: judges measured against human labels from FELM and FaithBench (../shared/data, never copied here).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/alignment_real.py

Imports each dataset into its own project of a scratch database (`evalstudio_bench_alignment`, recreated each run),
trains the classifier judge per dataset (train split, threshold on dev), imports FaithBench's eight detector
predictions (GPT-4o, GPT-4-Turbo, GPT-3.5-Turbo, HHEM variants, TrueTeacher, TRUE NLI) as external judges, and
prints test-split TPR, TNR and κ with 95% bootstrap intervals side by side, plus classifier scoring throughput.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import with_database  # noqa: E402
from pages import setup_django  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
BENCH_DB = "evalstudio_bench_alignment"
# FaithBench meta: 1 = consistent (pass), 0 = hallucinated (fail). HHEM scores are probabilities of consistency.
DETECTORS = {
    "gpt_4o": None,
    "gpt-4-turbo": None,
    "gpt-3.5-turbo": None,
    "trueteacher": None,
    "true_nli": None,
    "hhemv1": 0.5,
    "hhem-2.1": 0.5,
    "hhem-2.1-english": 0.5,
}
SCORING_TARGET = 5_000


def rows(name: str) -> list[dict]:
    path = DATA / name / "binarized.jsonl"
    # These files use NaN for missing values, which Python's lenient json reads.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fmt(report: dict, metric: str) -> str:
    value, ci = report[metric], report["ci"][metric]
    if value is None:
        return "undefined"
    return f"{value:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def main() -> int:
    import psycopg

    admin_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    setup_django(with_database(admin_url, BENCH_DB))
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from annotation.ingest import import_records
    from annotation.models import Criterion, Trace
    from annotation.services import project_create
    from annotation.trace_format import from_binarized
    from judges.providers import TraceInput
    from judges.providers.classifier import TrainedClassifier
    from judges.services import judge_create, judge_run_create, judge_run_execute, judgments_import

    expert = User.objects.create(username="bench-expert")
    results: list[tuple[str, str, dict]] = []
    scoring: list[tuple[str, float, float]] = []
    for dataset, criterion_name in (("felm", "factual"), ("faithbench", "faithful")):
        data = rows(dataset)
        project = project_create(slug=dataset, expert=expert)
        report = import_records(project=project, records=[from_binarized(r, criterion=criterion_name) for r in data])
        if report.rejected:
            raise SystemExit(f"{dataset}: {len(report.rejected)} rejected, first: {report.rejected[0]}")
        criterion = Criterion.objects.get(project=project, name=criterion_name)
        judge = judge_create(project=project, criterion=criterion, name="classifier", kind="classifier", config={})
        version = judge.latest_version()
        run = judge_run_execute(run=judge_run_create(version=version, split="test"))
        trained_on = f"train {version.training['train_pass']} pass + {version.training['train_fail']} fail"
        results.append((dataset, f"classifier ({trained_on})", run.report))
        model = TrainedClassifier.loads(bytes(version.artifact))
        traces = [
            TraceInput(external_id=t.external_id, input=t.input, output=t.output, messages=t.messages)
            for t in Trace.objects.filter(project=project)
        ]
        batch = (traces * (20_000 // len(traces) + 1))[:20_000]
        started, cpu_started = time.perf_counter(), time.process_time()
        model.judge_many(batch)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        scoring.append((dataset, len(batch) / wall, len(batch) / cpu))
        if dataset != "faithbench":
            continue
        for detector, cutoff in DETECTORS.items():
            verdicts = []
            for r in data:
                value = r["meta"].get(detector)
                if not isinstance(value, int | float) or value != value:  # missing or NaN
                    continue
                passed = value >= cutoff if cutoff is not None else value == 1
                verdicts.append(json.dumps({"id": r["id"], "verdict": "pass" if passed else "fail"}).encode())
            external = judge_create(project=project, criterion=criterion, name=detector, kind="external")
            imported = judgments_import(judge=external, stream=io.BytesIO(b"\n".join(verdicts)), source_name=detector)
            if imported.rejected:
                raise SystemExit(f"{detector}: {imported.rejected[0]}")
            run = judge_run_execute(run=judge_run_create(version=external.latest_version(), split="test"))
            results.append((dataset, detector, run.report))

    print(f"{'dataset':<11} {'judge':<40} {'n':>4}  {'TPR [95% CI]':<19} {'TNR [95% CI]':<19} {'kappa [95% CI]':<19}")
    for dataset, name, report in results:
        print(
            f"{dataset:<11} {name:<40} {report['n']:>4}  {fmt(report, 'tpr'):<19} {fmt(report, 'tnr'):<19} "
            f"{fmt(report, 'kappa'):<19}"
        )
    print()
    for dataset, rate, per_cpu in scoring:
        print(
            f"classifier scoring ({dataset}): {rate:,.0f} traces/s, {per_cpu:,.0f} per CPU-second "
            f"(target >= {SCORING_TARGET:,} traces/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
