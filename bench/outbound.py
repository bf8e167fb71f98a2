"""What the outbound guard (core/outbound.py) costs per request, against a plain http.client POST to the same
loopback receiver in the same run.

    .venv/bin/python bench/outbound.py [--requests 300] [--rounds 5]

Both sides open a new connection per request (a webhook delivery does), POST the same 1 KB JSON body and read the
answer. The guard adds: parsing and checking the URL, the address checks against the allowlist, the pinned
connection and its watchdog timer. Rounds alternate baseline and guard so that the machine's drift hits both alike.
Also timed: refusing a loopback URL (no connection is made) and checking a URL whose host needs a lookup
(`localhost`, from /etc/hosts). No database is needed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django.conf import settings  # noqa: E402

settings.configure(EVALSTUDIO_OUTBOUND_ALLOWLIST=["127.0.0.1"])

from core import outbound  # noqa: E402

BODY = json.dumps({"event": "alert.fired", "message": "x" * 900}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def log_message(self, *_args: object) -> None:
        pass


def plain(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/hook", body=BODY, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 204
    finally:
        conn.close()


def guarded(port: int) -> None:
    result = outbound.request(
        "POST", f"http://127.0.0.1:{port}/hook", body=BODY, headers={"Content-Type": "application/json"}, timeout=5
    )
    assert result.ok, result.detail


def refused() -> None:
    try:
        outbound.check_url("http://10.0.0.5:8080/hook")
    except outbound.OutboundRefused:
        return
    raise AssertionError("not refused")


def resolved() -> None:
    outbound.check_url("http://localhost:8080/hook", allowed=outbound.parse_allowlist(["localhost"]))


def timed(fn, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    port = server.server_address[1]
    for fn in (lambda: plain(port), lambda: guarded(port)):  # warm-up
        timed(fn, 20)
    base, guard = [], []
    for _ in range(args.rounds):
        base += timed(lambda: plain(port), args.requests)
        guard += timed(lambda: guarded(port), args.requests)
    refuse = timed(refused, 2000)
    lookup = timed(resolved, 500)
    server.shutdown()
    b, g = statistics.median(base), statistics.median(guard)
    print(f"{'':44} {'median ms':>10} {'p95 ms':>8}")
    for name, values in [
        ("plain http.client POST (baseline)", base),
        ("through the guard", guard),
        ("guard refusing 10.0.0.5 (no connection)", refuse),
        ("guard checking localhost (getaddrinfo)", lookup),
    ]:
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"{name:44} {statistics.median(values):10.3f} {p95:8.3f}")
    print(f"guard overhead per delivery: {g - b:+.3f} ms ({g / b:.2f}x the baseline), n = {len(guard)} each")


if __name__ == "__main__":
    main()
