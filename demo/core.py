"""The building blocks of demo scenarios: a draft trace with the expert's verdicts, the generation context and a
chat builder that writes OpenAI-format messages."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from demo.bank import SYSTEM_PROMPT

GROUNDED = "grounded"
RESOLVES = "resolves_request"
PLAIN = "plain_text"

# The failure taxonomy the expert's coded notes use (axial coding of the open notes).
HALLUCINATION = "hallucinated fee or policy"
WRONG_ARGS = "wrong tool arguments"
IGNORES_CONTEXT = "ignores retrieved context"
MISSED_HANDOFF = "missed human handoff"
TONE = "wrong tone"
LEAK = "leaks internal notes"
MARKDOWN = "markdown in plain-text channel"


@dataclass
class Draft:
    """One trace before ids, timestamps and metadata, plus what the expert would say about it."""

    kind: str  # single | chat | rag | agent (which DESIGN.md shape it takes)
    input: str = ""
    output: str = ""
    messages: list[dict[str, Any]] | None = None
    context: list[str] | None = None
    grounded: tuple[str, str] = ("pass", "")
    resolves: tuple[str, str] = ("pass", "")
    # The plain-text verdict when the template injected markup; None: plain sentences (see formatting.py).
    plain: tuple[str, str] | None = None
    note: str = ""
    modes: list[str] = field(default_factory=list)
    channel: str | None = None
    locale: str | None = None


@dataclass
class Ctx:
    rng: random.Random
    now: datetime
    fail: str | None  # the failure this trace shows, or None for a good trace
    # Trials of one agent task share `rng` (same seed, so the same customer and request); `vary` differs per
    # trial so the assistant's wording does too.
    vary: random.Random | None = None

    def pick(self, options: list[Any]) -> Any:
        return self.rng.choice(options)

    def say(self, options: list[str]) -> str:
        return (self.vary or self.rng).choice(options)


class Chat:
    """Builds an OpenAI-format message list; tool call ids are unique within the trace."""

    def __init__(self, *, system: bool = True) -> None:
        self.messages: list[dict[str, Any]] = []
        self._calls = 0
        if system:
            self.messages.append({"role": "system", "content": SYSTEM_PROMPT})

    def user(self, text: str) -> Chat:
        self.messages.append({"role": "user", "content": text})
        return self

    def assistant(self, text: str) -> Chat:
        self.messages.append({"role": "assistant", "content": text})
        return self

    def call(self, name: str, arguments: dict[str, Any], result: Any) -> Chat:
        self._calls += 1
        call_id = f"call_{self._calls}"
        self.messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
                ],
            }
        )
        content = result if isinstance(result, str) else json.dumps(result)
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
        return self


Template = Callable[[Ctx], Draft]


def ok(critique: str) -> tuple[str, str]:
    return ("pass", critique)


def bad(critique: str) -> tuple[str, str]:
    return ("fail", critique)
