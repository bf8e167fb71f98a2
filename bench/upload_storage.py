"""Browser uploads through local files (the embedded default) against S3-compatible object storage
(EVALSTUDIO_STORAGE_URL), end to end on the web and worker code paths: `import_job_create` stores the file,
`import_job_execute` imports it as the worker does, and deletes it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/upload_storage.py [--traces N]

The object store is moto's server in its own process on loopback (an in-memory Python server: slower than MinIO or
S3, so the overhead measured is an upper bound). Runs alternate local / S3, `--rounds` each; medians are printed,
with this process's peak RSS growth over the run (the file must not be read into memory).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DB = "evalstudio_bench_storage"


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class PeakRss:
    def __init__(self) -> None:
        self.start = _rss_kb()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_kb())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.start


def generate(path: Path, count: int) -> int:
    rng = random.Random(7)
    words = "account balance transfer fee card branch loan rate payment statement dispute refund".split()  # noqa: SIM905
    with path.open("w") as out:
        for i in range(count):
            text = " ".join(rng.choice(words) for _ in range(120))
            out.write(json.dumps({"id": f"u-{i}", "input": f"Question {i}?", "output": text}) + "\n")
    return path.stat().st_size


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    admin_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    parts = urlsplit(admin_url)
    bench_url = urlunsplit(parts._replace(path=f"/{BENCH_DB}"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    workdir = Path(tempfile.mkdtemp(prefix="evalstudio-bench-storage-"))
    os.environ.update(
        DATABASE_URL=bench_url,
        DJANGO_SETTINGS_MODULE="evalstudio.settings",
        EVALSTUDIO_VAR_DIR=str(workdir / "var"),
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
    )
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("SECRET_KEY", "insecure-bench-only-key")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
    port = free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return run(args, workdir, endpoint)
    finally:
        moto.terminate()
        moto.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def run(args: argparse.Namespace, workdir: Path, endpoint: str) -> int:
    import boto3
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import TemporaryUploadedFile
    from django.core.management import call_command
    from django.test.utils import override_settings

    from annotation import ingest
    from annotation.ingest import import_job_execute
    from annotation.models import ImportJob, Trace
    from annotation.services import project_create
    from annotation.uploads import import_job_create
    from core.storage_url import s3_storage_options, s3_transfer_config

    call_command("migrate", verbosity=0)
    subprocess_min_bytes = ingest.SUBPROCESS_MIN_BYTES
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
    source = workdir / "traces.jsonl"
    size = generate(source, args.traces)
    user = User.objects.create_user("bench")
    # As settings.py builds it from EVALSTUDIO_STORAGE_URL (the transfer config included).
    options = s3_storage_options(f"s3://bench/uploads?endpoint_url={endpoint}&region=us-east-1")
    options["transfer_config"] = s3_transfer_config()
    s3 = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}
    local = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    # A local file over 8 MB is parsed in a child process, whose memory this process's RSS does not show; a file from
    # object storage is parsed in this process. "in-process" parses the local file here too: the like-for-like
    # baseline for the memory column.
    variants = (("local files", local, False), ("local, in-process", local, True), ("S3 (moto)", s3, False))
    results: dict[str, list[tuple[float, float, int, int]]] = {label: [] for label, _, _ in variants}
    for round_no in range(args.rounds):
        for number, (label, backend, in_process) in enumerate(variants):
            from django.conf import settings

            ingest.SUBPROCESS_MIN_BYTES = 1 << 62 if in_process else subprocess_min_bytes
            with override_settings(STORAGES={**settings.STORAGES, "default": backend}):
                project = project_create(slug=f"bench-{round_no}-{number}", name=label, expert=user)
                upload = TemporaryUploadedFile("traces.jsonl", "application/octet-stream", size, None)
                with source.open("rb") as handle:
                    while chunk := handle.read(1 << 20):
                        upload.write(chunk)
                upload.seek(0)
                rss = PeakRss()
                started = time.perf_counter()
                job = import_job_create(project=project, user=user, upload=upload)
                stored = time.perf_counter() - started
                grew_store = rss.stop()
                ImportJob.objects.filter(pk=job.pk).update(status="running")
                job.refresh_from_db()
                rss = PeakRss()
                job = import_job_execute(job=job)
                total = time.perf_counter() - started
                grew_import = rss.stop()
                upload.close()
                assert job.status == "done", job.error
                assert Trace.objects.filter(project=project).count() == args.traces
                results[label].append((stored, total, grew_store, grew_import))
    print(f"{args.traces:,} traces, {size / 1e6:.1f} MB, {args.rounds} rounds alternating; medians")
    header = ("storage", "store (s)", "store+import (s)", "traces/s", "RSS growth MB: store", "import")
    print(f"{header[0]:<18} {header[1]:>9} {header[2]:>16} {header[3]:>9} {header[4]:>21} {header[5]:>7}")
    medians = {label: [statistics.median(row[i] for row in rows) for i in range(4)] for label, rows in results.items()}
    for label, (store, total, grew_store, grew_import) in medians.items():
        rate, store_mb, import_mb = args.traces / total, grew_store / 1024, grew_import / 1024
        print(f"{label:<18} {store:>9.2f} {total:>16.2f} {rate:>9,.0f} {store_mb:>21.1f} {import_mb:>7.1f}")
    print(f"S3 / local time ratio: {medians['S3 (moto)'][1] / medians['local files'][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
