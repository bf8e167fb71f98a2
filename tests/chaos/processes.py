"""Real processes the chaos tests start, kill and restart: Celery workers, gunicorn, a throwaway PostgreSQL cluster,
and a small HTTP client that streams trace batches and retries what was not acknowledged.

Every process gets its own process group, so a SIGKILL reaches the master and all its children at once, as when a
machine's OOM killer or an operator's `kill -9` hits a container. Nothing here touches the machine's shared
PostgreSQL: the restart test starts its own cluster under /tmp/chaos/.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
SCRATCH = Path("/tmp/chaos")
# A staleness window this short makes a takeover quick; the heartbeat is written every sixth of it.
STALE_SECONDS = 3


def wait_for(condition: Callable[[], Any], timeout: float, what: str, *, every: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy (returned) or `timeout` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(settings_dict: dict[str, Any]) -> str:
    """The URL of a Django database (the pytest test database) for a subprocess."""
    host = settings_dict["HOST"] or "127.0.0.1"
    port = settings_dict["PORT"] or 5432
    return f"postgres://{settings_dict['USER']}@{host}:{port}/{settings_dict['NAME']}"


def base_env(**overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "insecure-test-only-key",
        "DEBUG": "0",
        "PYTHONUNBUFFERED": "1",
        # The chaos client is one token sending as fast as it can; the rate limit is not what these tests measure.
        "EVALSTUDIO_API_RATE_PER_TOKEN": "0",
        "EVALSTUDIO_API_RATE_PER_IP": "0",
        **overrides,
    }


def kill_group(process: subprocess.Popen, sig: int = signal.SIGKILL, *, timeout: float = 30) -> None:
    """Send `sig` to the process's whole group and reap it; a no-op when it has already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def purge_broker() -> int:
    """Drop the messages earlier tests left in the broker's queue (runs of a database that no longer exists, whose
    ids a new database may reuse), so the workers started here see only this test's work. Returns how many."""
    from evalstudio.celery import app

    return app.control.purge()


def start_worker(env: dict[str, str], *, log: Path, concurrency: int = 2) -> subprocess.Popen:
    """`celery -A evalstudio worker` as production runs it (prefork), in its own process group."""
    command = [sys.executable, "-m", "celery", "-A", "evalstudio", "worker", "--pool", "prefork"]
    command += ["--concurrency", str(concurrency), "--loglevel", "INFO"]
    command += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, stdout=out, stderr=out)


# --- gunicorn --------------------------------------------------------------------------------------------------------


class Gunicorn:
    """`gunicorn evalstudio.wsgi` on a fixed loopback port (kept across restarts, so a client just retries)."""

    def __init__(self, env: dict[str, str], *, log: Path, workers: int = 2, timeout: int = 30) -> None:
        self.env, self.log, self.workers, self.timeout = env, log, workers, timeout
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> Gunicorn:
        command = [sys.executable, "-m", "gunicorn", "evalstudio.wsgi", "--bind", f"127.0.0.1:{self.port}"]
        command += ["--workers", str(self.workers), "--timeout", str(self.timeout), "--graceful-timeout", "5"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, start_new_session=True, stdout=out, stderr=out
            )
        self.starts += 1
        wait_for(self._answers, 60, f"gunicorn to answer on port {self.port}")
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {self.process.returncode}; see {self.log}")
        try:
            status, _, _ = request("GET", self.port, "/api/v1/openapi.json", timeout=5)
        except OSError:
            return False
        return status == 200

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None:
            kill_group(self.process, sig)

    def restart_if_dead(self) -> bool:
        """What an operator (or a supervisor) does after the crash: start a new gunicorn. True when it did."""
        if self.alive:
            return False
        self.start()
        return True


def request(
    method: str, port: int, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None, timeout=30
) -> tuple[int, bytes, dict[str, str]]:
    """One HTTP request on a fresh connection: status, body and headers (lower-case names). Raises OSError
    (connection refused, reset, timed out)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    except http.client.HTTPException as exc:  # e.g. RemoteDisconnected: the server died mid-request
        raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        connection.close()


# --- a client that streams batches and retries what was not acknowledged -------------------------------------------


@dataclass
class StreamStats:
    batches: int = 0
    acknowledged: int = 0  # batches answered 200
    retried: int = 0  # attempts not acknowledged, sent again
    connection_errors: int = 0
    server_errors: list[tuple[int, str, str]] = field(default_factory=list)  # (status, body, Retry-After) of each 5xx
    throttled: int = 0  # 429s waited out
    accepted: int = 0
    duplicates: int = 0
    acknowledged_ids: set[str] = field(default_factory=set)
    longest_failure_seconds: float = 0.0  # the slowest attempt that was not acknowledged


class BatchClient:
    """Posts NDJSON batches of traces to `/api/v1/projects/<slug>/traces` with a bearer token. A batch counts as
    acknowledged only on a 200; on a connection error or a 5xx it calls `recover` (restart the server, say) and
    sends the same batch again. Re-sending is safe because a trace's `id` is its idempotency key."""

    def __init__(self, *, port: Callable[[], int], slug: str, token: str, timeout: float = 30) -> None:
        self.port, self.slug, self.token, self.timeout = port, slug, token, timeout
        self.stats = StreamStats()

    def send(self, batch: list[dict[str, Any]], *, recover: Callable[[], None], deadline: float = 120) -> dict:
        body = b"".join(json.dumps(trace, separators=(",", ":")).encode() + b"\n" for trace in batch)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/x-ndjson"}
        self.stats.batches += 1
        give_up = time.monotonic() + deadline
        while True:
            started = time.monotonic()
            headers_in: dict[str, str] = {}
            try:
                status, raw, headers_in = request(
                    "POST",
                    self.port(),
                    f"/api/v1/projects/{self.slug}/traces",
                    body=body,
                    headers=headers,
                    timeout=self.timeout,
                )
            except OSError:
                status, raw = None, b""
                self.stats.connection_errors += 1
            if status == 200:
                result = json.loads(raw)
                self.stats.acknowledged += 1
                self.stats.accepted += result["accepted"]
                self.stats.duplicates += result["duplicates"]
                self.stats.acknowledged_ids.update(trace["id"] for trace in batch)
                return result
            if status is not None and status < 500 and status != 429:
                raise AssertionError(f"batch answered {status}: {raw[:500]!r}")
            if status is not None and status >= 500:
                answer = (status, raw[:300].decode(errors="replace"), headers_in.get("retry-after", ""))
                self.stats.server_errors.append(answer)
            self.stats.longest_failure_seconds = max(self.stats.longest_failure_seconds, time.monotonic() - started)
            if time.monotonic() > give_up:
                raise AssertionError(f"a batch was not acknowledged within {deadline} s (last status {status})")
            if status == 429:
                # Another part of the app limits request rates; waiting it out is what a client should do.
                self.stats.throttled += 1
                time.sleep(min(float(headers_in.get("retry-after") or 1), 5))
                continue
            self.stats.retried += 1
            recover()


# --- a throwaway PostgreSQL cluster ----------------------------------------------------------------------------------


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return found[-1].parent


class PostgresCluster:
    """A PostgreSQL cluster of its own (initdb, trust auth, a free port) under /tmp/chaos/pgN, which a test may stop
    and start at will. Run as the `postgres` user when the tests run as root (initdb refuses root)."""

    def __init__(self) -> None:
        SCRATCH.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="pg", dir=SCRATCH))
        self.data = self.dir / "data"
        self.port = free_port()
        self.bin = _pg_bin()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, user="postgres", group="postgres")
            self.dir.chmod(0o700)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> PostgresCluster:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends every session at once (clients see their connection dropped), like a restart for an upgrade."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> None:
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
