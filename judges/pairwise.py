"""Pairwise judging with an LLM judge version: each pair of outputs asked in both orders, the answers already paid
for read from LLMResponse (the same store and key as the pointwise judge), new ones stored as their calls return.

The prompt is built (judges.providers.pairwise) from what the version froze when it was made: the criterion's name
and definition and the team's instructions; its model and parameters (max_tokens, attempts, timeout) are the
version's. The few-shot examples are not sent: they grade one output, not a pair. Used by the release comparison
(suites.pairwise); position bias is measured here, the pointwise biases by the bias battery.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from annotation.services import DomainError
from core import llm_calls
from core.llm_client import llm_client, llm_endpoint
from judges.kinds.llm import CALLS_PER_SLOT, LLMKind, ask_each, frozen_prompt
from judges.models import JudgeVersion
from judges.providers import TraceInput, llm
from judges.providers.pairwise import (
    BASELINE_FIRST,
    CANDIDATE_FIRST,
    PairAnswer,
    ask_preference,
    build_pair_messages,
    pair_params,
)


@dataclass(frozen=True)
class Pair:
    """Two outputs for one task: the task's input and context, and each run's output (or conversation)."""

    task: TraceInput
    baseline: TraceInput
    candidate: TraceInput


@dataclass(frozen=True)
class PairAnswers:
    baseline_first: PairAnswer
    candidate_first: PairAnswer


def pairwise_version_check(version: JudgeVersion) -> None:
    """Raises DomainError unless `version` is an LLM judge version that can run (its prompt was frozen)."""
    if version.judge.kind != LLMKind.name:
        raise DomainError(
            f"judge {version.judge.name!r} is a {version.judge.kind} judge; pairwise comparison needs an LLM judge"
        )
    frozen_prompt(version)


def pairs_per_chunk() -> int:
    """Pairs judged between two writes: two calls each, as many calls as an LLM judge's chunk makes."""
    return max(1, CALLS_PER_SLOT * settings.EVALSTUDIO_JUDGE_CONCURRENCY // 2)


def pairwise_ask(*, version: JudgeVersion, pairs: list[Pair]) -> list[PairAnswers]:
    """Both orders of every pair, in order, asked in parallel threads; this thread stores each new answer as its
    call returns (the pool's threads never touch the database)."""
    frozen = frozen_prompt(version)
    config = version.config
    model = config["model"]

    def messages(pair: Pair, order: str) -> list[dict[str, str]]:
        first, second = (pair.baseline, pair.candidate) if order == BASELINE_FIRST else (pair.candidate, pair.baseline)
        return build_pair_messages(
            criterion=frozen.criterion,
            definition=frozen.definition,
            instructions=frozen.instructions,
            task=pair.task,
            first=first,
            second=second,
        )

    prompts = [messages(pair, order) for pair in pairs for order in (BASELINE_FIRST, CANDIDATE_FIRST)]
    keys = [llm_calls.cache_key(model, prompt, pair_params(config)) for prompt in prompts]
    client = llm_client()
    endpoint = llm_endpoint(client, config)

    def ask(prompt: list[dict[str, str]], cache: llm_calls.ResponseCache) -> PairAnswer:
        return ask_preference(
            client=client, model=model, messages=prompt, config=config, cache=cache, endpoint=endpoint
        )

    answers = ask_each(prompts, keys=keys, model=model, ask=ask)
    return [PairAnswers(answers[2 * i], answers[2 * i + 1]) for i in range(len(pairs))]


def pairwise_cost(version: JudgeVersion, prompt_tokens: int, completion_tokens: int) -> float | None:
    """Dollars for the tokens at the version's prices, when it has them."""
    return llm.cost(version.config, prompt_tokens, completion_tokens)
