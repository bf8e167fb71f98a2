"""The expert's second session: a week of SMS and voice replies, reviewed for `plain_text` alone.

The first session coded a few notes "markdown in plain-text channel", all on SMS. The expert then pulled the
following week's SMS and voice traffic and labelled only that criterion: the fine-tune `harbor-ft-2026-10` wrote
markup into most of its replies there, the other models rarely did. Two replies quote a masked card number
("**** 4821"): plain text that happens to contain asterisks.
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
    """The session's replies in time order, numbered from `first_number`, labelled on `plain_text` with a note."""
    rng = random.Random(f"{seed}:sms-review")
    replies: list[tuple[datetime, Reply]] = []
    templates = [("single", template) for template, _ in SINGLE_TEMPLATES]
    templates += [("rag", template) for template, _ in RAG_TEMPLATES]
    for _ in range(REPLIES):
        when = START + timedelta(seconds=rng.randrange(DAYS * 86400))
        kind, template = rng.choice(templates)
        draft: Draft = template(Ctx(rng=rng, now=when, fail=None))
        channel = rng.choice(["sms", "sms", "voice"])
        model, _, markup_rate = rng.choices(MODELS, weights=[share for _, share, _ in MODELS])[0]
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
            verdict = plain_pass(channel, f"sms-review:{len(replies)}")
            note = rng.choice(["Plain, fine.", "Fine.", "OK as text.", "Plain text. Good."])
        record = _record(rng, draft, output, channel, model, when)
        record["labels"] = [{"criterion": PLAIN, "verdict": verdict[0], "critique": verdict[1]}]
        coded = formatting == "markup" and rng.random() < CODE_NOTE_RATE
        record["notes"] = [{"text": note, "failure_modes": [MARKDOWN]} if coded else note]
        replies.append((when, Reply(record, kind, channel, plain, formatting)))
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
    replies.sort(key=lambda item: item[0])
    for number, (_, reply) in enumerate(replies, start=first_number):
        reply.record["id"] = f"hb-{number:04d}"
    return [reply for _, reply in replies]


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
