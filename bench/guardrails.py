"""The guardrail route's server time: ten guardrail-ready checks on a 4 KB answer (goal: p99 under 5 ms).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x REDIS_URL=redis://127.0.0.1:6379/N \
        .venv/bin/python bench/guardrails.py [--requests 2000] [--rounds 5]

Writes into its own database (`evalstudio_bench_guardrails` on the server DATABASE_URL names). Each request goes
through the Django test client: the whole server side (middleware, the API rate limit counting in Redis, token
auth, the one query for the project's guardrail-ready versions, the ten checks, the JSON answer), no network.
Baseline in the same run: the same route on a project with no guardrail (everything but the checks). Requests
alternate between the two so that drift of the machine falls on both. Also: the guardrails' part of each request
as the route's `Server-Timing` header reports it (the query for the marked versions and the ten checks), the ten
prepared checks alone, and the first request after a mark changed, which prepares the checks again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pages import fresh_database  # noqa: E402

BENCH_DB = "evalstudio_bench_guardrails"

# Ten checks of the kinds teams mark as guardrails: leaked identifiers, forbidden phrases, length.
CHECKS = [
    ("no_phone", {"check": "regex", "pattern": r"\b\d{3}[-. ]\d{3}[-. ]\d{4}\b", "must_match": False}),
    ("no_email", {"check": "regex", "pattern": r"[\w.+-]+@[\w-]+\.[\w.]+", "must_match": False}),
    ("no_card", {"check": "regex", "pattern": r"\b(?:\d[ -]?){13,16}\b", "must_match": False}),
    ("no_ssn", {"check": "regex", "pattern": r"\b\d{3}-\d{2}-\d{4}\b", "must_match": False}),
    (
        "no_ai_talk",
        {"check": "regex", "pattern": r"as an ai (language )?model", "ignore_case": True, "must_match": False},
    ),
    ("no_apology", {"check": "contains", "value": "I apologize", "ignore_case": True, "must_contain": False}),
    ("no_internal", {"check": "contains", "value": "INTERNAL-ONLY", "must_contain": False}),
    ("no_competitor", {"check": "contains", "value": "acme bank", "ignore_case": True, "must_contain": False}),
    ("not_empty", {"check": "length", "min_chars": 20}),
    ("not_rambling", {"check": "length", "max_chars": 8000}),
]
SENTENCE = "Your card ending in 4821 is frozen; unfreeze it in the app under Cards, then Security, at any time. "


def answer_4kb() -> str:
    text = (SENTENCE * (4096 // len(SENTENCE) + 1))[:4096]
    assert len(text.encode()) == 4096
    return text


def quantile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per round and project")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ["LOG_LEVEL"] = "ERROR"
    fresh_database(BENCH_DB)
    from django.conf import settings
    from django.core.cache import cache
    from django.test import Client

    from annotation.services import api_token_create
    from core.rates import Rate
    from judges import guardrails
    from judges.models import GuardrailMark
    from judges.providers import checks
    from judges.services import judge_create
    from tests.factories import make_criterion, make_project, make_user

    expert = make_user("bench-expert")
    project = make_project(slug="bench", expert=expert)
    empty = make_project(slug="bench-empty", expert=make_user("bench-expert-2"))
    for name, config in CHECKS:
        judge = judge_create(
            project=project, criterion=make_criterion(project=project, name=name), name=name, kind="assertion",
            config=config,
        )  # fmt: skip
        # The bench measures the route, not the evidence: the marks are written directly (the tests cover the rule).
        GuardrailMark.objects.create(project=project, judge=judge, version=judge.latest_version(), min_tpr=0.99)
    tokens = {p.slug: api_token_create(project=p, name="bench")[1] for p in (project, empty)}
    # The API rate limit on, as in production, counting in Redis; far above what the bench sends.
    settings.EVALSTUDIO_API_RATE_PER_TOKEN = settings.EVALSTUDIO_API_RATE_PER_IP = Rate(10**9, 60)
    cache.clear()
    client = Client()
    body = json.dumps({"output": answer_4kb(), "input": "How do I unfreeze my card?"})

    timings: list[float] = []

    def post(slug: str) -> tuple[float, dict]:
        started = time.perf_counter()
        response = client.post(
            f"/api/v1/projects/{slug}/guardrails/check",
            body,
            content_type="application/json",
            headers={"Authorization": f"Bearer {tokens[slug]}"},
        )
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.content
        if slug == "bench":
            timings.append(float(response["Server-Timing"].partition("dur=")[2]) / 1000)
        return elapsed, response.json()

    _, answer = post("bench")
    assert answer == {"allowed": True, "violations": [], "errors": [], "checks": 10}, answer
    for _ in range(200):  # warm-up: connections, imports
        post("bench")
        post("bench-empty")
    timings.clear()
    samples: dict[str, list[float]] = {"bench": [], "bench-empty": []}
    for index in range(args.rounds):
        # Request by request, alternating which goes first: load from other processes falls on both alike.
        for i in range(args.requests):
            for slug in ("bench", "bench-empty") if (index + i) % 2 == 0 else ("bench-empty", "bench"):
                samples[slug].append(post(slug)[0])

    in_route = list(timings)
    alone = []
    output = answer_4kb()
    prepared = guardrails.project_guardrails(project_id=project.pk).prepared
    for _ in range(args.requests * args.rounds):
        started = time.perf_counter()
        checks.guardrail_answer(prepared, output=output)
        alone.append(time.perf_counter() - started)

    cold = []
    for _ in range(50):
        guardrails._compiled.clear()  # what a changed set of marks costs the next request
        cold.append(post("bench")[0])

    def row(label: str, values: list[float]) -> str:
        ms = [v * 1000 for v in values]
        return f"| {label} | {statistics.median(ms):.3f} | {quantile(ms, 99):.3f} | {max(ms):.3f} |"

    print(f"cache: {settings.CACHES['default']['BACKEND']}; {args.rounds} rounds × {args.requests} requests each")
    print("| server time per request (Django test client) | median ms | p99 ms | max ms |")
    print("|---|---|---|---|")
    print(row("baseline: the route, project with no guardrail", samples["bench-empty"]))
    print(row("10 guardrails on a 4 KB answer", samples["bench"]))
    print(row("in those requests, the guardrails' part (Server-Timing: one query + 10 checks)", in_route))
    print(row("the 10 prepared checks alone (checks.guardrail_answer, no query)", alone))
    print(row("first request after the marks changed (50×)", cold))
    difference = statistics.median(samples["bench"]) - statistics.median(samples["bench-empty"])
    print(f"| the checks' share of the median request | {difference * 1000:+.3f} | | |")
    cache.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
