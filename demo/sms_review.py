"""The expert's sessions on `plain_text` alone: SMS and voice replies, labelled on that criterion only.

The first session coded a few notes "markdown in plain-text channel", all on SMS. The expert then pulled the
following week's SMS and voice traffic and labelled only that criterion (`build`): the fine-tune `harbor-ft-2026-10`
wrote markup into most of its replies there, the other models rarely did. Two replies quote a masked card number
("**** 4821"): plain text that happens to contain asterisks.

Before promoting a judge for the criterion, the team needed more labels: promotion is decided on the held-out test
split, by the 95% lower bounds of TPR and TNR, and a perfect TNR shows 90% only from 35 expert fails there on. So the
expert labelled the SMS and voice replies of the two weeks before (`build_evidence`), a third export of its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from demo.core import MARKDOWN, PLAIN, Ctx, Draft
from demo.formatting import add_markup, hyphen_lines, hyphen_pass, markup_fail, plain_pass
from demo.rag import RAG_TEMPLATES
from demo.single import SINGLE_TEMPLATES

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
DAYS = 7
REPLIES = 60
# Model → share of the week's SMS and voice traffic, and how often its replies there carried markup.
MODELS = (("harbor-ft-2026-10", 0.45, 0.7), ("gpt-4.1-mini", 0.4, 0.08), ("gpt-4.1", 0.15, 0.08))
HYPHEN_RATE = 0.12
CODE_NOTE_RATE = 0.4


@dataclass
class Reply:
    """One reviewed reply: its record, and what the generator did to it."""

    record: dict[str, Any]
    kind: str  # single | rag
    channel: str  # sms | voice
    plain: str  # the answer as plain sentences, before any formatting
    formatting: str  # plain | hyphens | markup | masked_card


def _masked_card(rng: random.Random) -> tuple[str, str]:
    last4 = f"{rng.randrange(0, 10000):04d}"
    question = rng.choice(
        [
            f"Your text said 'card **** {last4} was used at QuickFuel'. Why only 4 digits? Is that really my card?",
            f"got an alert about card **** {last4}, that's my debit card right? why is it all stars",
        ]
    )
    answer = (
        f"Yes: **** {last4} is your card, shown by its last four digits only. Harbor Bank never sends a full card "
        "number by text or email. If you don't recognize the purchase, reply HELP and I'll connect you to our fraud "
        "team."
    )
    return question, answer


def build(seed: int, *, first_number: int) -> list[Reply]:
    """The second session's replies in time order, numbered from `first_number`, labelled on `plain_text` with a
    note."""
    rng = random.Random(f"{seed}:sms-review")
    replies = _replies(rng, start=START, days=DAYS, count=REPLIES, key="sms-review", models=MODELS, rag=True)
    for day in (2, 5):
        when = START + timedelta(days=day, hours=rng.randrange(8, 20), minutes=rng.randrange(60))
        question, answer = _masked_card(rng)
        draft = Draft("single", question, answer)
        record = _record(rng, draft, answer, "sms", "gpt-4.1-mini", when)
        critique = (
            "Plain text. The asterisks are the masked card number the customer quoted, not formatting; "
            "the reply reads exactly as written."
        )
        record["labels"] = [{"criterion": PLAIN, "verdict": "pass", "critique": critique}]
        record["notes"] = ["Masked card number (****) is not markup. Pass."]
        replies.append((when, Reply(record, "single", "sms", answer, "masked_card")))
    return _numbered(replies, first_number)


# The third session: the two weeks before the second, for the test split's evidence (see the module docstring). The
# fine-tune answered most SMS and voice then. Single-turn replies only: they keep the committed file small.
EVIDENCE_START = START - timedelta(days=14)
EVIDENCE_DAYS = 14
EVIDENCE_REPLIES = 240
EVIDENCE_MODELS = (("harbor-ft-2026-10", 0.7, 0.7), ("gpt-4.1-mini", 0.2, 0.08), ("gpt-4.1", 0.1, 0.08))


def build_evidence(seed: int, *, first_number: int) -> list[Reply]:
    """The third session's replies in time order, numbered from `first_number`: SMS and voice replies of the two
    weeks before the second session, labelled on `plain_text` with a note. Its own random stream, so the sessions
    before it keep their bytes."""
    rng = random.Random(f"{seed}:sms-review-evidence")
    replies = _replies(
        rng,
        start=EVIDENCE_START,
        days=EVIDENCE_DAYS,
        count=EVIDENCE_REPLIES,
        key="sms-review-evidence",
        models=EVIDENCE_MODELS,
        rag=False,
    )
    return _numbered(replies, first_number)


def _numbered(replies: list[tuple[datetime, Reply]], first_number: int) -> list[Reply]:
    replies.sort(key=lambda item: item[0])
    for number, (_, reply) in enumerate(replies, start=first_number):
        reply.record["id"] = f"hb-{number:04d}"
    return [reply for _, reply in replies]


def _replies(
    rng: random.Random,
    *,
    start: datetime,
    days: int,
    count: int,
    key: str,
    models: tuple[tuple[str, float, float], ...],
    rag: bool,
) -> list[tuple[datetime, Reply]]:
    """`count` SMS and voice replies over `days` from `start` by `models` (name, share, markup rate), single-turn
    and (with `rag`) RAG answers, each labelled on `plain_text` with a note."""
    replies: list[tuple[datetime, Reply]] = []
    templates = [("single", template) for template, _ in SINGLE_TEMPLATES]
    if rag:
        templates += [("rag", template) for template, _ in RAG_TEMPLATES]
    for _ in range(count):
        when = start + timedelta(seconds=rng.randrange(days * 86400))
        kind, template = rng.choice(templates)
        draft: Draft = template(Ctx(rng=rng, now=when, fail=None))
        channel = rng.choice(["sms", "sms", "voice"])
        model, _, markup_rate = rng.choices(models, weights=[share for _, share, _ in models])[0]
        plain = draft.output
        roll = rng.random()
        if roll < markup_rate:
            output, markup = add_markup(plain, rng)
            formatting, verdict = "markup", markup_fail(channel, markup)
            note = f"{markup[0].upper()}{markup[1:]} over {channel.upper() if channel == 'sms' else channel}"
            note += f" ({model})." if rng.random() < 0.5 else "."
        elif roll < markup_rate + HYPHEN_RATE and hyphen_lines(plain):
            output, formatting, verdict = hyphen_lines(plain) or plain, "hyphens", hyphen_pass(channel)
            note = "Hyphen lines, no markup: reads fine on a phone. Pass."
        else:
            output, formatting = plain, "plain"
            verdict = plain_pass(channel, f"{key}:{len(replies)}")
            note = rng.choice(["Plain, fine.", "Fine.", "OK as text.", "Plain text. Good."])
        record = _record(rng, draft, output, channel, model, when)
        record["labels"] = [{"criterion": PLAIN, "verdict": verdict[0], "critique": verdict[1]}]
        coded = formatting == "markup" and rng.random() < CODE_NOTE_RATE
        record["notes"] = [{"text": note, "failure_modes": [MARKDOWN]} if coded else note]
        replies.append((when, Reply(record, kind, channel, plain, formatting)))
    return replies


def _record(rng: random.Random, draft: Draft, output: str, channel: str, model: str, when: datetime) -> dict[str, Any]:
    record: dict[str, Any] = {"id": "", "input": draft.input, "output": output}
    if draft.context:
        record["context"] = draft.context
    record["metadata"] = {
        "model": model,
        "locale": draft.locale or "en-US",
        "channel": channel,
        "prompt_version": "p15",
        "latency_ms": rng.randrange(420, 4800),
    }
    record["source"] = "production"
    record["timestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return record
