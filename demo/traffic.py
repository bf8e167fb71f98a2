"""Production traffic for monitoring: ten days of unlabelled single-turn and RAG answers.

On the last day the fine-tune `harbor-ft-2026-12` takes over SMS and voice and writes markup into most of its replies
there; the other nine days have only the rare markdown answer. The file's days are nominal: `load_demo` moves them
so that the last one is the day before it runs (`shift_days`), which keeps this file the same bytes every time while
monitoring's "last 24 hours" and "last 7 days" have something to show. The answer texts name no dates, so moving
them changes nothing else.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from demo.bank import CHANNELS
from demo.core import Ctx, Draft
from demo.formatting import add_markup
from demo.rag import RAG_TEMPLATES
from demo.single import SINGLE_TEMPLATES

START = datetime(2026, 12, 1, tzinfo=UTC)
DAYS = 10
END = START + timedelta(days=DAYS)
PER_DAY = 60
# The incident day had more traffic, most of it by SMS: a fee-change text message went out that morning.
INCIDENT_PER_DAY = 150
INCIDENT_CHANNELS = ["sms", "sms", "sms", "sms", "voice", "web", "web", "app", "app", "app"]
RAG_SHARE = 0.15
FAIL_RATE = 0.12
INCIDENT_MODEL = "harbor-ft-2026-12"
INCIDENT_MARKUP_RATE = 0.85


def shift_days(today_start: datetime) -> timedelta:
    """How far to move the file's timestamps so that its last day ends at `today_start` (midnight UTC)."""
    return today_start - END


def build(seed: int, *, first_number: int) -> list[dict[str, Any]]:
    """The traffic in time order, numbered from `first_number`."""
    rng = random.Random(f"{seed}:traffic")
    traces: list[dict[str, Any]] = []
    for day in range(DAYS):
        incident = day == DAYS - 1
        count = INCIDENT_PER_DAY if incident else PER_DAY + rng.randrange(-8, 9)
        moments = sorted(START + timedelta(days=day, seconds=rng.randrange(86400)) for _ in range(count))
        for when in moments:
            traces.append(_trace(rng, when, incident=incident))
    for number, trace in enumerate(traces, start=first_number):
        trace["id"] = f"hb-{number:04d}"
    return traces


def _trace(rng: random.Random, when: datetime, *, incident: bool) -> dict[str, Any]:
    templates = RAG_TEMPLATES if rng.random() < RAG_SHARE else SINGLE_TEMPLATES
    template, fails = rng.choice(templates)
    # The templates' own failures, markdown on SMS among them, at the rate the team sees after a month of fixes.
    fail = rng.choice(fails) if rng.random() < FAIL_RATE else None
    draft: Draft = template(Ctx(rng=rng, now=when, fail=fail))
    channel = draft.channel or rng.choice(INCIDENT_CHANNELS if incident else CHANNELS)
    output = draft.output
    model, prompt = rng.choice(["gpt-4.1-mini", "gpt-4.1-mini", "gpt-4.1"]), "p15"
    if incident and channel in ("sms", "voice"):
        model, prompt = INCIDENT_MODEL, "p16"
        if draft.plain is None and rng.random() < INCIDENT_MARKUP_RATE:
            output, _ = add_markup(output, rng)
    trace: dict[str, Any] = {"id": "", "input": draft.input, "output": output}
    if draft.context:
        trace["context"] = draft.context
    trace["metadata"] = {
        "model": model,
        "locale": draft.locale or "en-US",
        "channel": channel,
        "prompt_version": prompt,
        "latency_ms": rng.randrange(420, 4800),
    }
    trace["source"] = "production"
    trace["timestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return trace
