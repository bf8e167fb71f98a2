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
    # The trace's known-good answer (a string or any JSON value), None when it has none: reference judges compare
    # the output with it, and an LLM judge with `use_reference` shows it.
    reference: Any = None


@dataclass(frozen=True)
class Outcome:
    """A judgment: a verdict with its reasoning, or an error (then verdict is ""), or a skip (then verdict and error
    are "" and `skipped` says why: the judge cannot judge this trace, e.g. a reference judge on a trace without a
    reference), and what it cost. A skip is neither a pass, a fail nor an error: reports count skips apart."""

    verdict: str = ""
    reasoning: str = ""
    raw_output: str = ""
    error: str = ""
    skipped: str = ""
    latency_ms: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Dollars, when the judge knows its prices (an LLM judge's config).
    cost_usd: float | None = None
    # Something to know about a judgment that still stands, e.g. a prompt estimated longer than the model's context.
    warning: str = ""
