"""The Django-free computation of each judge kind: a provider turns a version's config and a trace into an Outcome.

A provider module validates its config (`validate_config`, raising ConfigError that names the key) and judges
(`judge(config, trace)`, or builds prompts and parses answers). Providers never touch the database; the judge
kinds in judges.kinds wrap them with what does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A judge configuration is invalid; the message names the offending key."""


@dataclass(frozen=True)
class TraceInput:
    """What a judge sees of a trace."""

    external_id: str
    input: str = ""
    output: str = ""
    messages: list[Any] | None = None
    context: list[str] | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class Outcome:
    """A judgment: a verdict with its reasoning, or an error (then verdict is ""), and what it cost."""

    verdict: str = ""
    reasoning: str = ""
    raw_output: str = ""
    error: str = ""
    latency_ms: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Dollars, when the judge knows its prices (an LLM judge's config).
    cost_usd: float | None = None
