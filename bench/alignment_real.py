"""Real data: judges measured against human labels from FELM and FaithBench (../shared/data, never copied here).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/alignment_real.py

Imports each dataset into its own project of a scratch database (`evalstudio_bench_alignment`, recreated each run),
trains the classifier judge per dataset (train split, threshold on dev), imports FaithBench's eight detector
predictions (GPT-4o, GPT-4-Turbo, GPT-3.5-Turbo, HHEM variants, TrueTeacher, TRUE NLI) as external judges, and
prints test-split TPR, TNR and κ with 95% bootstrap intervals side by side, plus classifier scoring throughput.

Then, without the database, the classifier's two feature sets (`"text"`: TF-IDF + logistic regression, the
baseline; `"triple"`: plus the input/context/output features) are compared over several split seeds (the split
hash keyed by seed instead of the criterion): test balanced accuracy per seed with medians, and scoring throughput
the same way as above (20,000 traces through `judge_many`, median of five timings). `--seeds-only` runs just that.
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

from pages import fresh_database  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
# Its own name per checkout when several run side by side (the database is dropped and made again each run).
BENCH_DB = os.environ.get("BENCH_ALIGNMENT_DB", "evalstudio_bench_alignment")
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
TRIPLE_SCORING_TARGET = 20_000
SPLIT_SEEDS = range(7)


def rows(name: str) -> list[dict]:
    path = DATA / name / "binarized.jsonl"
    # These files use NaN for missing values, which Python's lenient json reads.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fmt(report: dict, metric: str) -> str:
    value, ci = report[metric], report["ci"][metric]
    if value is None:
        return "undefined"
    return f"{value:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def trace_of(row: dict):
    """A binarized row as a judge sees the trace imported from it (NaN and null texts are absent)."""
    from judges.providers import TraceInput

    def text(name: str) -> str:
        value = row.get(name)
        return value if isinstance(value, str) else ""

    return TraceInput(
        external_id=row["id"],
        input=text("input"),
        output=text("output"),
        context=[text("context")] if text("context") else None,
    )


def balanced_accuracy(verdicts: list[str], labels: list[str]) -> float:
    passed = [v == "pass" for v in verdicts]
    truth = [label == "pass" for label in labels]
    tpr = sum(p and t for p, t in zip(passed, truth, strict=True)) / max(1, sum(truth))
    tnr = sum(not p and not t for p, t in zip(passed, truth, strict=True)) / max(1, len(truth) - sum(truth))
    return (tpr + tnr) / 2


def scoring_rate(model, traces: list) -> float:
    """Traces a second through judge_many over 20,000 traces (the dataset repeated), median of five timings."""
    import statistics

    batch = (traces * (20_000 // len(traces) + 1))[:20_000]
    rates = []
    for _ in range(5):
        started = time.perf_counter()
        model.judge_many(batch)
        rates.append(len(batch) / (time.perf_counter() - started))
    return statistics.median(rates)


def compare_features() -> None:
    """Text vs triple classifier on the test split of several split seeds; throughput of both."""
    import statistics

    from judges.providers import classifier
    from judges.splits import split_of

    print(f"{'dataset':<11} {'features':<8} " + " ".join(f"seed {s:<2}" for s in SPLIT_SEEDS) + "  median")
    rates: list[str] = []
    for dataset in ("felm", "faithbench"):
        data = rows(dataset)
        traces = [trace_of(r) for r in data]
        scores: dict[str, list[float]] = {"text": [], "triple": []}
        models = {}
        for seed in SPLIT_SEEDS:
            where = {"train": [], "dev": [], "test": []}
            for trace, r in zip(traces, data, strict=True):
                where[split_of(f"bench-seed-{seed}", r["id"])].append((trace, r["label"]))
            for features in scores:
                model = classifier.train(
                    train_traces=[t for t, _ in where["train"]],
                    train_labels=[label for _, label in where["train"]],
                    dev_traces=[t for t, _ in where["dev"]],
                    dev_labels=[label for _, label in where["dev"]],
                    config=classifier.validate_config({"features": features}),
                )
                verdicts = [o.verdict for o in model.judge_many([t for t, _ in where["test"]])]
                scores[features].append(balanced_accuracy(verdicts, [label for _, label in where["test"]]))
                models[features] = model
        for features, values in scores.items():
            cells = " ".join(f"{v:<7.3f}" for v in values)
            print(f"{dataset:<11} {features:<8} {cells}  {statistics.median(values):.3f}")
        gains = [t - b for t, b in zip(scores["triple"], scores["text"], strict=True)]
        print(
            f"{dataset:<11} {'gain':<8} "
            + " ".join(f"{g:<+7.3f}" for g in gains)
            + f"  {statistics.median(gains):+.3f}"
        )
        for features, model in models.items():
            rates.append(f"{features} classifier scoring ({dataset}): {scoring_rate(model, traces):,.0f} traces/s")
    print()
    print("\n".join(rates), f"(target for triple >= {TRIPLE_SCORING_TARGET:,} traces/s)")


def main() -> int:
    if "--seeds-only" in sys.argv:
        compare_features()
        return 0
    fresh_database(BENCH_DB)
    from django.contrib.auth.models import User

    from annotation.ingest import import_records
    from annotation.models import Criterion, Trace
    from annotation.services import project_create
    from annotation.trace_format import from_binarized
    from judges.providers import TraceInput
    from judges.providers.classifier import TrainedClassifier
    from judges.services import judge_create, judge_run_create, judge_run_execute, judgments_import

    expert = User.objects.create(username="bench-expert")
    results: list[tuple[str, str, dict]] = []
    scoring: list[tuple[str, float, float]] = []  # (dataset and features, traces/s, traces per CPU-second)
    for dataset, criterion_name in (("felm", "factual"), ("faithbench", "faithful")):
        data = rows(dataset)
        project = project_create(slug=dataset, expert=expert)
        report = import_records(project=project, records=[from_binarized(r, criterion=criterion_name) for r in data])
        if report.rejected:
            raise SystemExit(f"{dataset}: {len(report.rejected)} rejected, first: {report.rejected[0]}")
        criterion = Criterion.objects.get(project=project, name=criterion_name)
        traces = [
            TraceInput(
                external_id=t.external_id, input=t.input, output=t.output, messages=t.messages, context=t.context
            )
            for t in Trace.objects.filter(project=project)
        ]
        for features in ("text", "triple"):
            judge = judge_create(
                project=project,
                criterion=criterion,
                name=f"classifier-{features}",
                kind="classifier",
                config={"features": features},
            )
            version = judge.latest_version()
            run = judge_run_execute(run=judge_run_create(version=version, split="test"))
            trained_on = f"train {version.training['train_pass']} pass + {version.training['train_fail']} fail"
            results.append((dataset, f"classifier, {features} ({trained_on})", run.report))
            model = TrainedClassifier.loads(bytes(version.artifact))
            batch = (traces * (20_000 // len(traces) + 1))[:20_000]
            started, cpu_started = time.perf_counter(), time.process_time()
            model.judge_many(batch)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            scoring.append((f"{dataset}, {features}", len(batch) / wall, len(batch) / cpu))
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

    print(f"{'dataset':<11} {'judge':<46} {'n':>4}  {'TPR [95% CI]':<19} {'TNR [95% CI]':<19} {'kappa [95% CI]':<19}")
    for dataset, name, report in results:
        print(
            f"{dataset:<11} {name:<46} {report['n']:>4}  {fmt(report, 'tpr'):<19} {fmt(report, 'tnr'):<19} "
            f"{fmt(report, 'kappa'):<19}"
        )
    print()
    for dataset, rate, per_cpu in scoring:
        print(
            f"classifier scoring ({dataset}): {rate:,.0f} traces/s, {per_cpu:,.0f} per CPU-second "
            f"(target >= {SCORING_TARGET:,} traces/s)"
        )
    print()
    compare_features()
    return 0


if __name__ == "__main__":
    sys.exit(main())
