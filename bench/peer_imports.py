"""Peer-file imports: the same traces as native JSONL (baseline), OTLP/JSON (Collector file exporter), a Phoenix span
dataframe (Parquet) and a Langfuse export (JSONL), each imported with `import_traces --format …`.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/peer_imports.py [--traces N]
        [--database NAME] [--repeat R]

Every trace has 5 spans (agent root, retriever, two LLM calls with a tool call between them, the tool); the native
file holds `trace_record` of those same spans, so all four imports store the same traces. Each import runs in a
fresh project of a separate database (recreated and migrated on every run). Reports the median wall time over R
runs, traces/s and spans/s, and the importing process's peak RSS (with its children).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import TreeRss, manage, with_database  # noqa: E402

SPANS_PER_TRACE = 5
SPANS_PER_LINE = 500  # a Collector file exporter line holds one export batch


def spans_of(index: int, rng: random.Random) -> list:
    from annotation.otel.spans import SpanData

    trace_id = f"{index + 1:032x}"
    base = 1_764_806_400_000_000_000 + index * 10_000_000_000
    question = f"Where is parcel {index}? " + " ".join(
        rng.choice(["please", "urgent", "today", "thanks"]) for _ in range(8)
    )
    answer = f"Parcel {index} is in Lyon and arrives in {rng.randint(1, 5)} days."
    call = {"id": f"call_{index}", "name": "track", "arguments": json.dumps({"parcel": index})}

    def span(n: int, parent: int, start: int, end: int, name: str, **attributes) -> SpanData:
        return SpanData(
            trace_id=trace_id,
            span_id=f"{index * 8 + n + 1:016x}",
            parent_span_id=f"{index * 8 + parent + 1:016x}" if parent >= 0 else "",
            name=name,
            kind="internal",
            start_ns=base + start * 1_000_000,
            end_ns=base + end * 1_000_000,
            attributes=attributes,
            resource={"service.name": "parcel-bot", "deployment.environment": "prod"},
        )

    def messages(prefix: str, items: list[dict]) -> dict:
        flat = {}
        for i, message in enumerate(items):
            flat[f"{prefix}.{i}.message.role"] = message["role"]
            if message.get("content") is not None:
                flat[f"{prefix}.{i}.message.content"] = message["content"]
            if message.get("tool_call_id"):
                flat[f"{prefix}.{i}.message.tool_call_id"] = message["tool_call_id"]
            for j, tool_call in enumerate(message.get("tool_calls", [])):
                flat[f"{prefix}.{i}.message.tool_calls.{j}.tool_call.id"] = tool_call["id"]
                flat[f"{prefix}.{i}.message.tool_calls.{j}.tool_call.function.name"] = tool_call["name"]
                flat[f"{prefix}.{i}.message.tool_calls.{j}.tool_call.function.arguments"] = tool_call["arguments"]
        return flat

    user = {"role": "user", "content": question}
    asks = {"role": "assistant", "tool_calls": [call]}
    result = {"role": "tool", "content": "in Lyon", "tool_call_id": call["id"]}
    final = {"role": "assistant", "content": answer}
    llm = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini"}
    return [
        span(
            1,
            0,
            1,
            3,
            "kb",
            **{
                "openinference.span.kind": "RETRIEVER",
                "retrieval.documents.0.document.content": "Parcels ship from Lyon.",
            },
        ),
        span(
            2,
            0,
            4,
            40,
            "llm",
            **llm,
            **messages("llm.input_messages", [user]),
            **messages("llm.output_messages", [asks]),
            **{"llm.token_count.prompt": 50, "llm.token_count.completion": 9},
        ),
        span(
            3,
            0,
            41,
            45,
            "track",
            **{"openinference.span.kind": "TOOL", "tool.name": "track", "output.value": "in Lyon"},
        ),
        span(
            4,
            0,
            46,
            90,
            "llm",
            **llm,
            **messages("llm.input_messages", [user, asks, result]),
            **messages("llm.output_messages", [final]),
            **{"llm.token_count.prompt": 70, "llm.token_count.completion": 12},
        ),
        # The root last, as batch processors export it.
        span(
            0,
            -1,
            0,
            95,
            "agent",
            **{
                "openinference.span.kind": "AGENT",
                "input.value": question,
                "output.value": answer,
                "session.id": f"s-{index // 4}",
            },
        ),
    ]


def otlp_request(spans: list) -> dict:
    """An OTLP/JSON export request (hex ids, camelCase) as the Collector's file exporter writes one."""

    def value(item):
        if isinstance(item, bool):
            return {"boolValue": item}
        if isinstance(item, int):
            return {"intValue": str(item)}
        return {"stringValue": str(item)}

    def attributes(mapping: dict) -> list:
        return [{"key": key, "value": value(item)} for key, item in mapping.items()]

    return {
        "resourceSpans": [
            {
                "resource": {"attributes": attributes(spans[0].resource)},
                "scopeSpans": [
                    {
                        "scope": {"name": "openinference.instrumentation.openai"},
                        "spans": [
                            {
                                "traceId": span.trace_id,
                                "spanId": span.span_id,
                                "parentSpanId": span.parent_span_id,
                                "name": span.name,
                                "kind": 1,
                                "startTimeUnixNano": str(span.start_ns),
                                "endTimeUnixNano": str(span.end_ns),
                                "attributes": attributes(span.attributes),
                            }
                            for span in spans
                        ],
                    }
                ],
            }
        ]
    }


def phoenix_rows(spans: list) -> list[dict]:
    rows = []
    for span in spans:
        rows.append(
            {
                "context.trace_id": span.trace_id,
                "context.span_id": span.span_id,
                "parent_id": span.parent_span_id or None,
                "name": span.name,
                "span_kind": span.attributes.get("openinference.span.kind"),
                "start_time": span.start_ns,
                "end_time": span.end_ns,
                "status_code": "OK",
                "attributes": json.dumps(span.attributes),
            }
        )
    return rows


def langfuse_trace(spans: list, record: dict) -> dict:
    from datetime import UTC, datetime

    def iso(ns: int) -> str:
        return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")

    root = spans[-1]
    observations = []
    for span in spans[:-1]:
        observation = {
            "id": span.span_id,
            "type": "SPAN",
            "name": span.name,
            "startTime": iso(span.start_ns),
            "endTime": iso(span.end_ns),
            "parentObservationId": None,
        }
        if span.name == "llm":
            observation["type"] = "GENERATION"
            observation["model"] = "gpt-4o-mini"
            observation["usageDetails"] = {
                "input": span.attributes["llm.token_count.prompt"],
                "output": span.attributes["llm.token_count.completion"],
            }
        observations.append(observation)
    return {
        "id": root.trace_id,
        "timestamp": iso(root.start_ns),
        "name": "agent",
        "input": record["input"],
        "output": record["output"],
        "sessionId": record.get("session_id"),
        "messages": None,
        "observations": observations,
    }


def generate(folder: Path, count: int) -> dict[str, tuple[Path, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from annotation.otel.conventions import trace_record

    rng = random.Random(7)
    paths = {name: folder / f"traces.{name}" for name in ("native", "otlp", "phoenix", "langfuse")}
    schema = pa.schema(
        [
            ("context.trace_id", pa.string()),
            ("context.span_id", pa.string()),
            ("parent_id", pa.string()),
            ("name", pa.string()),
            ("span_kind", pa.string()),
            ("start_time", pa.timestamp("ns", tz="UTC")),
            ("end_time", pa.timestamp("ns", tz="UTC")),
            ("status_code", pa.string()),
            ("attributes", pa.string()),
        ]
    )
    pending: list = []
    phoenix: list[dict] = []
    with (
        open(paths["native"], "w") as native,
        open(paths["otlp"], "w") as otlp,
        open(paths["langfuse"], "w") as langfuse,
        pq.ParquetWriter(paths["phoenix"], schema) as parquet,
    ):
        for index in range(count):
            spans = spans_of(index, rng)
            record = trace_record(spans)
            native.write(json.dumps(record) + "\n")
            trace = langfuse_trace(spans, record)
            trace.pop("messages")
            langfuse.write(json.dumps(trace) + "\n")
            pending.extend(spans)
            phoenix.extend(phoenix_rows(spans))
            if len(pending) >= SPANS_PER_LINE:
                otlp.write(json.dumps(otlp_request(pending)) + "\n")
                pending.clear()
            if len(phoenix) >= 10_000:
                parquet.write_table(pa.Table.from_pylist(phoenix, schema=schema))
                phoenix.clear()
        if pending:
            otlp.write(json.dumps(otlp_request(pending)) + "\n")
        if phoenix:
            parquet.write_table(pa.Table.from_pylist(phoenix, schema=schema))
    return {
        "native JSONL (baseline)": (paths["native"], "jsonl"),
        "otlp-json": (paths["otlp"], "otlp-json"),
        "phoenix (Parquet)": (paths["phoenix"], "phoenix"),
        "langfuse (JSONL)": (paths["langfuse"], "langfuse"),
    }


def run_import(path: Path, fmt: str, slug: str, env: dict[str, str]) -> tuple[float, int, str]:
    command = [
        sys.executable,
        str(ROOT / "manage.py"),
        "import_traces",
        "--project",
        slug,
        "--create-project",
        "--format",
        fmt,
        str(path),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    tree = TreeRss(process.pid)
    output = process.stdout.read() if process.stdout else ""
    peak_kb = tree.stop()
    process.wait()
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"import_traces --format {fmt} failed:\n{output[-2000:]}")
    return elapsed, peak_kb, output.splitlines()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--database", default="conventions_bench")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", action="append", help="run only these --format values (repeatable)")
    args = parser.parse_args()
    admin_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    bench_url = with_database(admin_url, args.database)
    env = {**os.environ, "DATABASE_URL": bench_url, "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only"}
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalstudio.settings")
    with psycopg.connect(with_database(admin_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
    manage(["migrate", "--no-input", "-v", "0"], env)
    with tempfile.TemporaryDirectory(prefix="conventions-bench-") as tmp:
        files = generate(Path(tmp), args.traces)
        print(f"{args.traces:,} traces x {SPANS_PER_TRACE} spans; median of {args.repeat} runs", flush=True)
        print("| format | file MB | s | traces/s | spans/s | peak RSS MB | summary |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for label, (path, fmt) in files.items():
            if args.only and fmt not in args.only:
                continue
            times, peaks = [], []
            summary = ""
            for run in range(args.repeat):
                elapsed, peak_kb, summary = run_import(path, fmt, f"b-{fmt}-{run}", env)
                times.append(elapsed)
                peaks.append(peak_kb)
            median = statistics.median(times)
            spans = "" if fmt == "jsonl" else f"{args.traces * SPANS_PER_TRACE / median:,.0f}"
            print(
                f"| {label} | {path.stat().st_size / 1e6:,.1f} | {median:.2f} | {args.traces / median:,.0f} | "
                f"{spans} | {max(peaks) / 1024:,.0f} | {summary} |",
                flush=True,
            )
    with psycopg.connect(with_database(admin_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
