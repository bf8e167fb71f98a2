"""OTLP ingestion at full speed: 100,000 spans (20,000 traces of 5 spans) exported by the real OpenTelemetry SDK
exporter against gunicorn with two workers, a real Celery worker assembling the traces.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x REDIS_URL=redis://127.0.0.1:6379/N \
        .venv/bin/python bench/otlp_ingest.py [--traces 20000] [--threads 4] [--rounds 1]

Writes into its own database (`evalstudio_bench_otlp`, rebuilt each round). The spans are made with the SDK's tracer
(ReadableSpans, the root carrying `input.value`/`output.value`) before the clock starts; then `--threads` threads
each call `OTLPSpanExporter.export` on batches of 512 spans (the BatchSpanProcessor's default batch) — protobuf,
HTTP keep-alive, the exporter's own retries on 429/503. Reported: spans/s accepted (all exports answered 200),
seconds until every trace is assembled (counted from the first export), spans and traces lost (must be 0), and the
peak RSS (VmHWM) of each gunicorn worker and of the Celery worker's processes. Baseline in the same run: the native
REST API (`POST /api/v1/projects/bench/traces`, 100 traces a request, same threads) with the same 20,000 traces.
Then the trace page's median time for a 1,000-span trace, beside a 5-span one (`--page-only` for just that).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pages import bench_urls, ensure_database, setup_django  # noqa: E402

BENCH_DB = "evalstudio_bench_otlp"
SCRATCH = Path("/tmp/otlp/bench")
BATCH = 512


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _make_spans(n_traces: int):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for n in range(n_traces):
        with tracer.start_as_current_span("chat") as root:
            root.set_attribute("input.value", f"question {n}: where is my order?")
            with tracer.start_as_current_span("retrieve") as retrieve:
                retrieve.set_attribute("retrieval.documents.0.document.content", "Orders ship in 2 days.")
            with tracer.start_as_current_span("llm") as llm:
                llm.set_attribute("llm.model_name", "m-small")
                llm.set_attribute("llm.token_count.total", 120)
            with tracer.start_as_current_span("tool"):
                pass
            with tracer.start_as_current_span("llm") as llm:
                llm.set_attribute("llm.model_name", "m-small")
            root.set_attribute("output.value", f"answer {n}: it ships today.")
    spans = list(memory.get_finished_spans())
    # Batch processors export children before their root: keep the SDK's end order (root last in each trace).
    return spans


def _export_all(url: str, token: str, spans, threads: int) -> float:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    batches = [spans[i : i + BATCH] for i in range(0, len(spans), BATCH)]
    exporters = [
        OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        for _ in range(threads)
    ]

    def send(index: int) -> None:
        result = exporters[index % threads].export(batches[index])
        if result != SpanExportResult.SUCCESS:
            raise RuntimeError(f"batch {index} was not accepted")

    # One exporter per thread (a requests session is not shared across threads): batch i goes to thread i % threads.
    def worker(slot: int) -> None:
        for index in range(slot, len(batches), threads):
            send(index)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    elapsed = time.perf_counter() - started
    for exporter in exporters:
        exporter.shutdown()
    return elapsed


def _rest_baseline(url: str, token: str, n_traces: int, threads: int) -> float:
    records = [
        {"id": f"rest-{n}", "input": f"question {n}: where is my order?", "output": f"answer {n}: it ships today."}
        for n in range(n_traces)
    ]
    bodies = [json.dumps({"traces": records[i : i + 100]}).encode() for i in range(0, n_traces, 100)]

    def send(body: bytes) -> None:
        req = urllib.request.Request(
            f"{url}/api/v1/projects/bench/traces",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as response:
            assert response.status == 200, response.status

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, bodies))
    return time.perf_counter() - started


def run_round(args, admin: str, bench: str) -> dict[str, float]:
    from tests.chaos.processes import Gunicorn, base_env, kill_group, purge_broker, start_worker

    ensure_database(admin, rebuild=True, name=BENCH_DB)
    from django.core.management import call_command
    from django.db import connections

    connections.close_all()
    call_command("migrate", verbosity=0)
    from annotation.models import Span, SpanAssembly, Trace
    from annotation.services import api_token_create
    from tests.factories import make_project, make_user

    project = make_project(slug="bench", expert=make_user("bench-expert"))
    _, token = api_token_create(project=project, name="bench")
    connections.close_all()
    purge_broker()
    spans = _make_spans(args.traces)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    env = base_env(DATABASE_URL=bench, LOG_LEVEL="WARNING")
    web = Gunicorn(env, log=SCRATCH / "gunicorn.log", workers=2, timeout=120).start()
    worker = start_worker(env, log=SCRATCH / "worker.log", concurrency=1)
    try:
        url = f"http://127.0.0.1:{web.port}"
        started = time.monotonic()
        export_s = _export_all(url, token, spans, args.threads)
        while Trace.objects.filter(project=project).count() < args.traces or SpanAssembly.objects.exists():
            if time.monotonic() - started > args.timeout:
                break
            time.sleep(0.2)
        assembled_s = time.monotonic() - started
        stored = Span.objects.filter(project=project).count()
        traces = Trace.objects.filter(project=project).count()
        web_rss = [_peak_rss_mb(pid) for pid in _children(web.process.pid)]
        worker_rss = [_peak_rss_mb(pid) for pid in [worker.pid, *_children(worker.pid)]]
        rest_s = _rest_baseline(url, token, args.traces, args.threads)
        connections.close_all()
    finally:
        kill_group(worker, 15)
        kill_group(web.process, 15)
    return {
        "spans": len(spans),
        "export_s": export_s,
        "spans_per_s": len(spans) / export_s,
        "assembled_s": assembled_s,
        "lost_spans": len(spans) - stored,
        "lost_traces": args.traces - traces,
        "web_rss_mb": max(web_rss or [0]),
        "worker_rss_mb": max(worker_rss or [0]),
        "rest_traces_per_s": args.traces / rest_s,
        "otlp_traces_per_s": args.traces / export_s,
    }


def trace_page_times(admin: str, *, spans_per_trace: int = 1000, requests: int = 15) -> dict[str, float]:
    """Median server time (ms) of the trace page of a 1,000-span trace and, as the baseline in the same run, of a
    5-span trace with the same input/output; a fresh database, the page rendered through Django's test client."""
    from django.core.management import call_command
    from django.db import connections
    from django.test import Client
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from annotation.otel.spans import spans_from_request
    from annotation.otel.store import assembly_drain, spans_store
    from tests.factories import make_project, make_user

    ensure_database(admin, rebuild=True, name=BENCH_DB)
    connections.close_all()
    call_command("migrate", verbosity=0)
    expert = make_user("page-expert")
    project = make_project(slug="bench", expert=expert)
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    times: dict[str, float] = {}
    for label, count in (("5 spans", 5), (f"{spans_per_trace} spans", spans_per_trace)):
        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer("bench")
        with tracer.start_as_current_span("chat") as root:
            root.set_attribute("input.value", "question")
            root.set_attribute("output.value", "answer")
            for n in range(count - 1):
                with tracer.start_as_current_span(f"step {n}") as step:
                    step.set_attribute("llm.model_name", "m-small")
            trace_id = format(root.get_span_context().trace_id, "032x")
        spans, _ = spans_from_request(encode_spans(memory.get_finished_spans()))
        spans_store(project=project, spans=spans)
        assembly_drain()
        client = Client()
        client.force_login(expert)
        url = f"/projects/bench/traces/{trace_id}/"
        client.get(url)
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        times[label] = statistics.median(samples)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--page-only", action="store_true", help="only the trace page timing (1,000 spans)")
    args = parser.parse_args()
    admin, bench = bench_urls(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x"), BENCH_DB)
    ensure_database(admin, rebuild=True, name=BENCH_DB)
    os.environ["LOG_LEVEL"] = "ERROR"
    setup_django(bench)
    if args.page_only:
        for label, ms in trace_page_times(admin).items():
            print(f"| trace page, {label} | {ms:,.1f} ms |")
        return 0
    results = [run_round(args, admin, bench) for _ in range(args.rounds)]
    print(f"| figure (median of {args.rounds} round(s)) | value |")
    print("|---|---:|")
    for key in results[0]:
        print(f"| {key} | {statistics.median(r[key] for r in results):,.1f} |")
    for label, ms in trace_page_times(admin).items():
        print(f"| trace page, {label} (ms) | {ms:,.1f} |")
    lost = max(r["lost_spans"] + r["lost_traces"] for r in results)
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
