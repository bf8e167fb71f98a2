"""LLM judges: critique shadowing (judges.providers.llm builds the prompt and checks the answer) with few-shot
examples from the train split, calls in parallel threads, and the answers already paid for (LLMResponse).

Every answer is stored as soon as its call returns, by the thread that owns the database connection (the pool's
threads never touch the database): a worker killed mid-chunk keeps what it paid for, and the chunk, run again,
asks only for what is missing.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import replace
from datetime import datetime
from typing import Any

from django.conf import settings

from annotation.models import Criterion, Label, Trace
from annotation.services import DomainError
from annotation.suggestions import llm_configured
from judges import selectors
from judges.kinds.base import TRACE_INPUT_FIELDS, Built, JudgeKind, Scorer, trace_input
from judges.models import Judge, JudgeVersion, LLMResponse
from judges.providers import Outcome, TraceInput, llm
from judges.selectors import labelled_trace_ids
from judges.splits import split_of

# Calls per concurrency slot in a chunk: big enough that the wait for a chunk's slowest call and the database round
# trips between chunks stay small next to the calls, small enough that progress and the heartbeat move every few
# seconds.
CALLS_PER_SLOT = 16
# What to do when no endpoint is set: the demo's LLM judge meets this first.
ENDPOINT_HELP = (
    "No LLM endpoint is configured, so LLM judges cannot run yet. Point EvalStudio at any OpenAI-compatible server "
    "by setting OPENAI_BASE_URL before starting it: a local vLLM, Ollama or llama.cpp server works "
    "(Ollama: OPENAI_BASE_URL=http://127.0.0.1:11434/v1; llama.cpp's llama-server: http://127.0.0.1:8080/v1; "
    "vLLM: its --port, e.g. http://127.0.0.1:8001/v1), or set OPENAI_API_KEY to use OpenAI's API. The judge asks "
    'for the model named in its version\'s "model" setting: make a version naming a model your server serves.'
)


class LLMKind(JudgeKind):
    name = Judge.Kind.LLM
    label = "LLM"
    local = False

    def unavailable_reason(self) -> str:
        return "" if llm_configured() else ENDPOINT_HELP

    def validate_config(self, config: object) -> dict[str, Any]:
        cleaned = llm.validate_config(config)
        cleaned.setdefault("model", settings.EVALSTUDIO_JUDGE_MODEL)
        return cleaned

    def build(self, *, criterion: Criterion, config: dict[str, Any]) -> Built:
        """The few-shot examples, written into the config: the listed ones after the leakage check, or picked."""
        return Built(config={**config, "examples": _pick_examples(criterion, config)})

    def chunk_size(self, version: JudgeVersion) -> int:
        return CALLS_PER_SLOT * settings.EVALSTUDIO_JUDGE_CONCURRENCY

    def scorer(self, version: JudgeVersion, *, as_of: datetime | None = None) -> Scorer:
        """LLM calls in parallel threads (the client is thread-safe; the work is waiting on the network)."""
        criterion = version.judge.criterion
        config = version.config
        client = llm_client()
        examples = few_shot_examples(version)

        def score(traces: list[TraceInput]) -> list[Outcome]:
            all_messages = [
                llm.build_messages(
                    criterion=criterion.name,
                    definition=criterion.definition,
                    instructions=config.get("instructions", ""),
                    examples=examples,
                    trace=trace,
                )
                for trace in traces
            ]
            return [_priced(config, outcome) for outcome in _ask_all(client, config, all_messages)]

        return score


def llm_client() -> Any:
    import openai

    return openai.OpenAI(
        base_url=settings.OPENAI_BASE_URL or None,
        # The client refuses to start without a key; a local OpenAI-compatible server usually needs none.
        api_key=settings.OPENAI_API_KEY or "not-needed",
        max_retries=settings.EVALSTUDIO_LLM_MAX_RETRIES,
    )


def _priced(config: dict[str, Any], outcome: Outcome) -> Outcome:
    if outcome.prompt_tokens is None:
        return outcome
    return replace(outcome, cost_usd=llm.cost(config, outcome.prompt_tokens, outcome.completion_tokens or 0))


def _ask_all(client: Any, config: dict[str, Any], all_messages: list[list[dict[str, str]]]) -> list[Outcome]:
    """Every prompt's outcome, in order. The pool's threads ask; this thread stores each new answer as its call
    returns."""
    model = config["model"]
    keys = [llm.cache_key(model, messages, llm.params(config)) for messages in all_messages]
    cache = _AnswerCache(model, keys)
    outcomes: dict[int, Outcome] = {}
    pool = ThreadPoolExecutor(max_workers=settings.EVALSTUDIO_JUDGE_CONCURRENCY)
    try:
        futures: dict[Future[Outcome], int] = {
            pool.submit(
                llm.judge_messages, client=client, model=model, messages=messages, config=config, cache=cache
            ): i
            for i, messages in enumerate(all_messages)
        }
        for future in as_completed(futures):
            i = futures[future]
            outcomes[i] = future.result()
            cache.store(keys[i])
    finally:
        # Interrupted (a time limit, a lost database): the calls not yet started are never paid for; those in
        # flight finish in the background and are asked again when the chunk runs again.
        pool.shutdown(wait=False, cancel_futures=True)
    return [outcomes[i] for i in range(len(all_messages))]


class _AnswerCache:
    """The stored answers for a batch's prompts, read in one query. The pool's threads read them and hand in new
    answers (`get`, `put`: dict operations, safe across threads); the owning thread writes each new answer with
    `store` as soon as its call has returned."""

    def __init__(self, model: str, keys: list[str]) -> None:
        self.model = model
        self.found = {
            row.key: llm.Completion(
                text=row.text, prompt_tokens=row.prompt_tokens, completion_tokens=row.completion_tokens
            )
            for row in LLMResponse.objects.filter(key__in=keys)
        }
        self.new: dict[str, llm.Completion] = {}

    def get(self, key: str) -> llm.Completion | None:
        return self.found.get(key)

    def put(self, key: str, completion: llm.Completion) -> None:
        if key not in self.found:
            self.new[key] = completion

    def store(self, key: str) -> None:
        completion = self.new.pop(key, None)
        if completion is None:  # read from the store, a malformed answer (never stored), or stored already
            return
        self.found[key] = completion
        LLMResponse.objects.bulk_create(
            [
                LLMResponse(
                    key=key,
                    model=self.model,
                    text=completion.text or "",
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                )
            ],
            ignore_conflicts=True,  # the same prompt answered by a concurrent run
        )


# --- few-shot examples -----------------------------------------------------------------------------------------


def _pick_examples(criterion: Criterion, config: dict[str, Any]) -> list[str]:
    """The example trace ids: the listed ones after the leakage check, else `few_shot` train traces balanced
    between pass and fail, those with a written critique first, in a stable pseudo-random order."""
    train = labelled_trace_ids(criterion=criterion, split="train")
    external = dict(Trace.objects.filter(pk__in=list(train)).values_list("id", "external_id"))
    if "examples" in config:
        in_train = set(external.values())
        for external_id in config["examples"]:
            if external_id not in in_train:
                where = _split_of_external_id(criterion, external_id)
                raise DomainError(
                    f"examples: trace {external_id!r} is {where}; few-shot examples may only come from the "
                    "train split, or the judge would be measured on its own examples"
                )
        return list(config["examples"])
    critiques = dict(
        Label.objects.filter(criterion=criterion, trace_id__in=list(train)).values_list("trace_id", "critique")
    )
    key = selectors.split_key(criterion)
    order = sorted(train, key=lambda t: (not critiques.get(t), hashlib.sha256(f"{key}:{t}".encode()).digest()))
    by_verdict = {verdict: [t for t in order if train[t] == verdict] for verdict in ("fail", "pass")}
    picked: list[int] = []
    while len(picked) < config["few_shot"] and (by_verdict["fail"] or by_verdict["pass"]):
        for verdict in ("fail", "pass"):
            if by_verdict[verdict] and len(picked) < config["few_shot"]:
                picked.append(by_verdict[verdict].pop(0))
    return [external[t] for t in picked]


def _split_of_external_id(criterion: Criterion, external_id: str) -> str:
    trace = Trace.objects.filter(project=criterion.project_id, external_id=external_id).first()
    if trace is None:
        return "not a trace of this project"
    if not Label.objects.filter(criterion=criterion, trace=trace).exists():
        return "not labelled for this criterion"
    return f"in the {split_of(selectors.split_key(criterion), external_id)} split"


def few_shot_examples(version: JudgeVersion) -> list[llm.Example]:
    """The version's examples with the expert's verdict and critique as they are now."""
    criterion = version.judge.criterion
    ids = version.config.get("examples", [])
    traces = {
        t.external_id: t
        for t in Trace.objects.filter(project=criterion.project_id, external_id__in=ids).only(*TRACE_INPUT_FIELDS)
    }
    labels = {
        label.trace_id: label for label in Label.objects.filter(criterion=criterion, trace__in=list(traces.values()))
    }
    examples = []
    for external_id in ids:
        trace = traces.get(external_id)
        label = labels.get(trace.pk) if trace else None
        if label is None:
            raise DomainError(f"few-shot example {external_id!r} has no label any more; make a new version")
        examples.append(llm.Example(trace=trace_input(trace), verdict=label.verdict, critique=label.critique))
    return examples


def prompt_preview(*, version: JudgeVersion, trace: Trace) -> list[dict[str, str]]:
    """The exact messages an LLM judge version would send for `trace`."""
    if version.judge.kind != LLMKind.name:
        raise DomainError(
            f"judge {version.judge.name!r} is a {version.judge.kind} judge; only LLM judges have a prompt"
        )
    criterion = version.judge.criterion
    return llm.build_messages(
        criterion=criterion.name,
        definition=criterion.definition,
        instructions=version.config.get("instructions", ""),
        examples=few_shot_examples(version),
        trace=trace_input(trace),
    )
