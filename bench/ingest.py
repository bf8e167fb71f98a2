"""Ingestion throughput: `import_traces` against raw psycopg COPY of the same rows, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/ingest.py [--traces N]

Generates N traces of about 1 KB (a temp file, deleted afterwards), imports them with `import_traces` into a fresh
project of a separate database (`evalstudio_bench`, recreated and migrated on every run), then loads the same rows
with a bare COPY into an index-free scratch table. Reports traces/s, the ratio to raw COPY and the importing
process's peak RSS. Targets: >= 25,000 traces/s, ratio >= 0.3, peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "evalstudio_bench"
TARGET_RATE, TARGET_RATIO, TARGET_RSS_MB = 25_000, 0.3, 300
WORDS = [
    "account",
    "balance",
    "transfer",
    "fee",
    "card",
    "branch",
    "loan",
    "rate",
    "payment",
    "statement",
    "dispute",
    "refund",
    "limit",
    "deposit",
    "wire",
    "overdraft",
    "savings",
    "checking",
    "interest",
    "credit",
    "debit",
    "online",
    "mobile",
    "app",
    "support",
    "agent",
    "policy",
    "customer",
]


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def generate(path: Path, count: int, seed: int = 7) -> int:
    """About 1 KB per trace: a mix of single-turn, RAG and agent traces; 1% carry an expert label and a note."""
    rng = random.Random(seed)
    size = 0
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            question = sentence(rng, 14)
            answer = sentence(rng, 40)
            record: dict[str, object] = {
                "id": f"bench-{i}",
                "input": question,
                "output": answer,
                "metadata": {
                    "model": rng.choice(["gpt-x", "gpt-y"]),
                    "locale": "en",
                    "latency_ms": rng.randint(80, 900),
                },
                "session_id": f"s-{i // 5}",
                "source": rng.choice(["production", "staging"]),
                "timestamp": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
            }
            kind = i % 3
            if kind == 1:
                record["context"] = [sentence(rng, 20), sentence(rng, 20)]
            elif kind == 2:
                record["messages"] = [
                    {"role": "user", "content": question},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}}
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": sentence(rng, 12)},
                    {"role": "assistant", "content": answer},
                ]
                record["task_id"], record["trial"] = f"task-{i % 100}", i % 4
            if i % 100 == 0:
                record["labels"] = [{"criterion": "factual", "verdict": rng.choice(["pass", "fail"]), "critique": "ok"}]
                record["notes"] = [{"text": "checked", "failure_modes": ["none"]}]
            line = json.dumps(record) + "\n"
            size += len(line)
            out.write(line)
    return size


def ensure_database(admin_url: str, bench_url: str, env: dict[str, str]) -> None:
    # Recreated on every run: index sizes left over from earlier runs would skew the figures.
    with psycopg.connect(with_database(admin_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    manage(["migrate", "--no-input", "-v", "0"], env)
    manage(
        [
            "shell",
            "-c",
            "from django.contrib.auth.models import User; User.objects.get_or_create(username='bench-expert')",
        ],
        env,
    )


def manage(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True, cwd=ROOT)


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


class TreeRss:
    """Peak resident memory of a process plus its children (the parser process), sampled every 20 ms.

    wait4's ru_maxrss is the larger of the two, not their sum; the sum is what the machine has to hold.
    """

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            total = _rss_kb(self.pid) + sum(_rss_kb(child) for child in _children(self.pid))
            self.peak_kb = max(self.peak_kb, total)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kb


def run_import(path: Path, slug: str, env: dict[str, str]) -> tuple[float, int, int, str]:
    """Wall time, peak RSS in KB of the importing process alone (wait4) and of it plus its parser child (sampled),
    and the command's summary."""
    command = [
        sys.executable,
        str(ROOT / "manage.py"),
        "import_traces",
        "--project",
        slug,
        "--create-project",
        "--expert",
        "bench-expert",
        str(path),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    tree = TreeRss(process.pid)
    output = process.stdout.read() if process.stdout else ""
    tree_kb = tree.stop()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"import_traces failed (exit {process.returncode}):\n{output[-2000:]}")
    return elapsed, usage.ru_maxrss, tree_kb, output.splitlines()[0] if output else ""


def run_raw_copy(path: Path, bench_url: str) -> float:
    """The floor: parse each line and COPY its columns into a table with no indexes or constraints."""
    with psycopg.connect(bench_url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw_copy")
        conn.execute(
            "CREATE TABLE bench_raw_copy (project_id bigint, external_id text, input text, output text,"
            " messages jsonb, context jsonb, metadata jsonb, session_id text, task_id text, trial int, source text,"
            " occurred_at timestamptz, shuffle_key bigint)"
        )
        conn.commit()
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            path.open("rb") as lines,
            cursor.copy(
                "COPY bench_raw_copy (project_id, external_id, input, output, messages, context, metadata,"
                " session_id, task_id, trial, source, occurred_at, shuffle_key) FROM STDIN"
            ) as copy,
        ):
            for number, line in enumerate(lines):
                r = json.loads(line)
                messages, context = r.get("messages"), r.get("context")
                copy.write_row(
                    (
                        1,
                        r["id"],
                        r.get("input", ""),
                        r.get("output", ""),
                        None if messages is None else json.dumps(messages),
                        None if context is None else json.dumps(context),
                        json.dumps(r.get("metadata", {})),
                        r.get("session_id", ""),
                        r.get("task_id", ""),
                        r.get("trial"),
                        r.get("source", ""),
                        r.get("timestamp"),
                        number,
                    )
                )
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_raw_copy")
        conn.commit()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1_000_000, help="how many traces (default 1,000,000)")
    args = parser.parse_args()
    if args.traces < 1:
        parser.error("--traces must be at least 1")

    admin_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    if not admin_url.startswith(("postgres://", "postgresql://")):
        parser.error("DATABASE_URL must point at PostgreSQL; this benchmark measures the COPY path")
    bench_url = with_database(admin_url, BENCH_DB)
    env = {**os.environ, "DATABASE_URL": bench_url, "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only"}
    env.setdefault("PYTHONPATH", str(ROOT))
    ensure_database(admin_url, bench_url, env)

    with tempfile.TemporaryDirectory(prefix="evalstudio-bench-") as tmp:
        path = Path(tmp) / "traces.jsonl"
        started = time.perf_counter()
        size = generate(path, args.traces)
        print(
            f"generated {args.traces:,} traces, {size / args.traces:,.0f} bytes each, in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        slug = f"bench-{int(time.time())}"
        import_s, rss_kb, tree_kb, summary = run_import(path, slug, env)
        copy_s = run_raw_copy(path, bench_url)

    rate, copy_rate = args.traces / import_s, args.traces / copy_s
    ratio = rate / copy_rate
    rss_mb, tree_mb = rss_kb / 1024, tree_kb / 1024
    rows = [
        ("traces", f"{args.traces:,}", ""),
        ("import_traces", f"{import_s:.1f} s", summary),
        ("import_traces rate", f"{rate:,.0f} traces/s", f"target >= {TARGET_RATE:,}"),
        ("raw COPY rate", f"{copy_rate:,.0f} traces/s", f"{copy_s:.1f} s"),
        ("ratio to raw COPY", f"{ratio:.2f}", f"target >= {TARGET_RATIO}"),
        ("peak RSS (import)", f"{rss_mb:,.0f} MB", f"target < {TARGET_RSS_MB} MB"),
        ("peak RSS (+ parser)", f"{tree_mb:,.0f} MB", "both processes together, sampled"),
    ]
    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    print()
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>{value_width}}  {note}")
    met = rate >= TARGET_RATE and ratio >= TARGET_RATIO and max(rss_mb, tree_mb) < TARGET_RSS_MB
    print(f"\ntargets {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
