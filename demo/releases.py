"""The golden set and two releases' outputs for it, for the regression suite (`evalsuite`).

Golden traces are reviewed single-turn and RAG answers, each kept for a reason: everyday questions answered well
(core feature), the markdown replies of the SMS and voice review (past regression), and plain text that looks like
markup to a careless check (edge case). A golden trace carries `"golden": {"reason", "comment"}` in the demo file,
the key a golden-set export writes and `import_traces` ignores; `load_demo` adds them through the golden-set service.

Release 1.4.0 answers every golden input in plain text. Release 1.5.0 moves SMS and voice to the fine-tune
`harbor-ft-2026-12`, which puts markup into most of those answers: a regression on `plain_text`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from demo.core import Draft
from demo.formatting import add_markup
from demo.sms_review import Reply

CORE, PAST, EDGE = "core_feature", "past_regression", "edge_case"
COMMENTS = {
    CORE: "Everyday questions answered well, on every channel.",
    PAST: "Markdown sent over SMS or voice, found in the SMS and voice review.",
    EDGE: "Plain text that looks like markup to a careless check: hyphen lines, masked card numbers.",
}
REVIEWED_CORE, SMS_CORE, PAST_COUNT, HYPHEN_EDGES = 8, 6, 8, 3
RELEASES = ("1.4.0", "1.5.0")
REGRESSED_MODEL = "harbor-ft-2026-12"
REGRESSION_RATE = 0.8


@dataclass
class Golden:
    record: dict[str, Any]
    reason: str
    channel: str
    answer: str  # a good plain answer to the golden input


def pick_golden(seed: int, first: Iterable[tuple[dict[str, Any], Draft]], second: list[Reply]) -> list[Golden]:
    """Choose the golden traces and mark their records; returned in id order."""
    rng = random.Random(f"{seed}:golden")
    good = [
        record
        for record, draft in first
        if record.get("labels")
        and draft.kind in ("single", "rag")
        and draft.grounded[0] == draft.resolves[0] == "pass"
        and draft.plain is None
    ]
    chosen = [Golden(r, CORE, r["metadata"]["channel"], r["output"]) for r in rng.sample(good, REVIEWED_CORE)]
    plain = [reply for reply in second if reply.formatting == "plain"]
    chosen += [Golden(r.record, CORE, r.channel, r.plain) for r in rng.sample(plain, SMS_CORE)]
    markup = [reply for reply in second if reply.formatting == "markup"]
    chosen += [Golden(r.record, PAST, r.channel, r.plain) for r in rng.sample(markup, PAST_COUNT)]
    hyphens = [reply for reply in second if reply.formatting == "hyphens"]
    edges = rng.sample(hyphens, HYPHEN_EDGES) + [reply for reply in second if reply.formatting == "masked_card"]
    chosen += [Golden(r.record, EDGE, r.channel, r.record["output"]) for r in edges]
    chosen.sort(key=lambda golden: golden.record["id"])
    for golden in chosen:
        golden.record["golden"] = {"reason": golden.reason, "comment": COMMENTS[golden.reason]}
    return chosen


def candidates(seed: int, golden: list[Golden], release: str) -> list[dict[str, Any]]:
    """One release's outputs for the golden inputs, in the evalsuite candidates format."""
    rng = random.Random(f"{seed}:release:{release}")
    lines = []
    for case in golden:
        output, model = case.answer, "gpt-4.1-mini"
        if release == "1.5.0" and case.channel in ("sms", "voice"):
            model = REGRESSED_MODEL
            if rng.random() < REGRESSION_RATE:
                output, _ = add_markup(case.answer, rng)
        metadata = {**case.record["metadata"], "model": model, "prompt_version": "p16", "release": release}
        lines.append({"id": case.record["id"], "output": output, "metadata": metadata})
    return lines
