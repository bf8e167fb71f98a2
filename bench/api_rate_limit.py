"""The API rate limit's cost per request: the same authenticated API call with the limit on and off, same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x REDIS_URL=redis://127.0.0.1:6379/N \
        .venv/bin/python bench/api_rate_limit.py [--requests 2000] [--rounds 5]

Writes into its own database (`evalstudio_bench_apiauth` on the server DATABASE_URL names). The limit counts in the
cache REDIS_URL names (Redis: two keys per request, the token's and the address's; the limits are set far above
what the bench sends, so every request is counted and none refused). Rounds alternate on/off so that drift of the
machine falls on both. Prints the median time per request of each, the difference, and the median of the limit
check alone (`core.ratelimit.api_rate_limited`).
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

from pages import fresh_database  # noqa: E402

BENCH_DB = "evalstudio_bench_apiauth"
URL = "/api/v1/projects/bench/failure-modes"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per round and setting")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        print("REDIS_URL is not set: the limit would count in a per-process memory cache, not Redis", file=sys.stderr)
    os.environ["LOG_LEVEL"] = "ERROR"
    fresh_database(BENCH_DB)
    from django.conf import settings
    from django.core.cache import cache
    from django.test import Client, RequestFactory

    from annotation.services import api_token_create
    from core.ratelimit import api_rate_limited
    from core.rates import Rate
    from tests.factories import make_project, make_user

    project = make_project(slug="bench", expert=make_user("bench-expert"))
    _, raw = api_token_create(project=project, name="bench")
    headers = {"Authorization": f"Bearer {raw}"}
    client = Client()
    high = Rate(10**9, 60)
    cache.clear()

    def round_of(on: bool) -> list[float]:
        settings.EVALSTUDIO_API_RATE_PER_TOKEN = high if on else None
        settings.EVALSTUDIO_API_RATE_PER_IP = high if on else None
        times = []
        for _ in range(args.requests):
            started = time.perf_counter()
            response = client.get(URL, headers=headers)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.content
        return times

    round_of(True)  # warm-up: connections, caches, imports
    samples: dict[bool, list[float]] = {True: [], False: []}
    for index in range(args.rounds):
        for on in (True, False) if index % 2 == 0 else (False, True):
            samples[on] += round_of(on)

    settings.EVALSTUDIO_API_RATE_PER_TOKEN = high
    settings.EVALSTUDIO_API_RATE_PER_IP = high
    request = RequestFactory().get(URL, headers=headers)
    check = []
    for _ in range(args.requests * args.rounds):
        started = time.perf_counter()
        assert api_rate_limited(request) is None
        check.append(time.perf_counter() - started)

    on_ms, off_ms = (statistics.median(samples[x]) * 1000 for x in (True, False))
    print(f"cache: {settings.CACHES['default']['BACKEND']}; {args.rounds} rounds × {args.requests} requests each")
    print("| per request (median) | ms |")
    print("|---|---|")
    print(f"| GET {URL}, limit off (baseline) | {off_ms:.3f} |")
    print(f"| same, limit on (token + IP) | {on_ms:.3f} |")
    print(f"| difference | {on_ms - off_ms:+.3f} ({(on_ms - off_ms) / off_ms:+.1%}) |")
    print(f"| the limit check alone | {statistics.median(check) * 1000:.3f} |")
    cache.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
