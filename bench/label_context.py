"""What recording how a label was given costs a label save (annotation.sittings: seconds on the trace, position in
the sitting, the queue), measured against the same save without it, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/label_context.py [--saves 400]

Writes into its own database (`evalstudio_bench_label_context`, rebuilt each run): 20,000 traces, 2,000 of them
reviewed in the current sitting. Each save is the review page's htmx autosave (a verdict), timed through Django's
test client. Saves alternate between the real view and the view with `sitting_act` replaced by an empty context
(what a save cost before labels recorded their context), so that drift of the machine falls on both; each save's
transaction is rolled back, so every save meets the same data.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pages import bench_urls, ensure_database, percentile, setup_django  # noqa: E402

BENCH_DB = "evalstudio_bench_label_context"
TRACES = 20_000
REVIEWED = 2_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=400)
    args = parser.parse_args()
    admin_url, bench_url = bench_urls(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"), BENCH_DB
    )
    ensure_database(admin_url, True, BENCH_DB)
    setup_django(bench_url)

    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import transaction
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    import annotation.views.review as review_views
    from annotation.ingest import import_records
    from annotation.models import Trace
    from annotation.services import LabelContext, criterion_create, project_create

    call_command("migrate", verbosity=0)
    expert = User.objects.create_user("bench-expert", password="x")
    project = project_create(slug="bench", name="Bench", expert=expert)
    criterion = criterion_create(project=project, name="no_apology", definition="Fail when it apologises.")
    records = (
        {"id": f"t-{i}", "input": "Where is my card?", "output": f"It ships in {i % 9} days."} for i in range(TRACES)
    )
    import_records(project=project, records=records)
    client = Client()
    client.force_login(expert)
    client.get(reverse("review_queue", args=["bench"]))  # starts the sitting; the reviews below fall in it
    Trace.objects.filter(project=project, external_id__in=[f"t-{i}" for i in range(REVIEWED)]).update(
        reviewed_at=timezone.now()
    )
    ids = list(Trace.objects.filter(project=project, reviewed_at=None).values_list("pk", flat=True)[: args.saves])
    real = review_views.sitting_act

    def without_context(*_args: object, **_kwargs: object) -> LabelContext:
        return LabelContext()

    timings: dict[str, list[float]] = {"with the label's context": [], "without (baseline)": []}
    for index, trace_id in enumerate(ids):
        name = "with the label's context" if index % 2 else "without (baseline)"
        review_views.sitting_act = real if index % 2 else without_context
        url = reverse("label_save", args=["bench", trace_id, criterion.pk]) + "?order=random"
        with transaction.atomic():
            started = time.perf_counter()
            response = client.post(url, {"verdict": "fail", "opened": ""}, HTTP_HX_REQUEST="true")
            timings[name].append((time.perf_counter() - started) * 1000)
            transaction.set_rollback(True)
        if response.status_code != 200 or b"Saved" not in response.content:
            raise SystemExit(f"{url} answered {response.status_code}")
    review_views.sitting_act = real
    print(f"{TRACES:,} traces, {REVIEWED:,} reviewed in the sitting; {len(ids)} saves, alternating")
    base = statistics.median(timings["without (baseline)"])
    for name, values in timings.items():
        p50, p95 = statistics.median(values), percentile(values, 0.95)
        print(f"{name:<28} p50 {p50:6.2f} ms   p95 {p95:6.2f} ms   ({p50 / base:.2f}× baseline p50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
