"""LLM judges: critique shadowing (judges.providers.llm builds the prompt and checks the answer) with few-shot
examples from the train split's critiqued labels, calls in parallel threads, and the answers already paid for
(LLMResponse).

A version freezes its prompt when it is made (`build`): the rubric, the criterion's name and definition, and each
example's trace as the prompt shows it with the expert's verdict and critique go into the version's snapshot; the
model, instructions and parameters are in its config. Runs, previews, suites and monitoring build the prompt from
those only, so editing the definition or a critique later changes nothing a version sends: it makes the version
drift (`drift`), and the pages offer a new version from the current state.

Every answer is stored as soon as its call returns, by the thread that owns the database connection (the pool's
threads never touch the database): a worker killed mid-chunk keeps what it paid for, and the chunk, run again,
asks only for what is missing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.db.models.fields.json import KT, KeyTransform

from annotation.models import Criterion, Label, Trace
from annotation.services import DomainError
from core import llm_calls, llm_compat
from core.llm_client import llm_client, llm_configured, llm_endpoint
from judges import selectors
from judges.kinds.base import TRACE_INPUT_FIELDS, Built, Drift, JudgeKind, Scorer, trace_input
from judges.models import Judge, JudgeVersion, LLMResponse
from judges.providers import ConfigError, Outcome, TraceInput, llm
from judges.selectors import labelled_trace_ids
from judges.splits import split_of

T = TypeVar("T")

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
    bias_battery = True

    def unavailable_reason(self) -> str:
        return "" if llm_configured() else ENDPOINT_HELP

    def validate_config(self, config: object) -> dict[str, Any]:
        cleaned = llm.validate_config(config)
        cleaned.setdefault("model", settings.EVALSTUDIO_JUDGE_MODEL)
        return cleaned

    def build(self, *, criterion: Criterion, config: dict[str, Any]) -> Built:
        """The few-shot examples, written into the config (the listed ones after the leakage check, or picked),
        and the prompt's parts frozen into the snapshot."""
        ids = _pick_examples(criterion, config)
        return Built(config={**config, "examples": ids}, snapshot=_snapshot(criterion, ids))

    def drift(self, *, version_ids: list[int]) -> dict[int, Drift]:
        """The criterion renamed or its definition edited, an example's label relabelled, its critique edited or
        the label removed, since each version was made. Reads only the snapshot's small parts (not the example
        traces)."""
        return _drift(version_ids)

    def chunk_size(self, version: JudgeVersion) -> int:
        return CALLS_PER_SLOT * settings.EVALSTUDIO_JUDGE_CONCURRENCY

    def scorer(self, version: JudgeVersion, *, as_of: datetime | None = None) -> Scorer:
        """LLM calls in parallel threads (the client is thread-safe; the work is waiting on the network)."""
        config = version.config
        frozen = frozen_prompt(version)
        client = llm_client()

        def score(traces: list[TraceInput]) -> list[Outcome]:
            all_messages = [frozen.messages(trace) for trace in traces]
            return [_priced(config, outcome) for outcome in _ask_all(client, config, all_messages)]

        return score


def _priced(config: dict[str, Any], outcome: Outcome) -> Outcome:
    if outcome.prompt_tokens is None:
        return outcome
    return replace(outcome, cost_usd=llm.cost(config, outcome.prompt_tokens, outcome.completion_tokens or 0))


def _ask_all(client: Any, config: dict[str, Any], all_messages: list[list[dict[str, str]]]) -> list[Outcome]:
    """Every prompt's outcome, in order (`ask_each`)."""
    model = config["model"]
    keys = [llm_calls.cache_key(model, messages, llm.params(config)) for messages in all_messages]
    endpoint = llm_endpoint(client, config)

    def ask(messages: list[dict[str, str]], cache: llm_calls.ResponseCache) -> Outcome:
        return llm.judge_messages(
            client=client, model=model, messages=messages, config=config, cache=cache, endpoint=endpoint
        )

    outcomes = ask_each(all_messages, keys=keys, model=model, ask=ask)
    pairs = zip(outcomes, all_messages, strict=True)
    return [_warned(outcome, messages, config, endpoint) for outcome, messages in pairs]


def ask_each(
    prompts: list[list[dict[str, str]]],
    *,
    keys: list[str],
    model: str,
    ask: Callable[[list[dict[str, str]], llm_calls.ResponseCache], T],
) -> list[T]:
    """`ask` of every prompt, in order, in parallel threads (the client is thread-safe; the work is waiting on the
    network). The stored answers of `keys` are read in one query; the pool's threads never touch the database, and
    this thread stores each new answer as its call returns."""
    cache = _AnswerCache(model, keys)
    answers: dict[int, T] = {}
    pool = ThreadPoolExecutor(max_workers=settings.EVALSTUDIO_JUDGE_CONCURRENCY)
    try:
        futures: dict[Future[T], int] = {pool.submit(ask, prompt, cache): i for i, prompt in enumerate(prompts)}
        for future in as_completed(futures):
            i = futures[future]
            answers[i] = future.result()
            cache.store(keys[i])
    finally:
        # Interrupted (a time limit, a lost database): the calls not yet started are never paid for; those in
        # flight finish in the background and are asked again when the chunk runs again.
        pool.shutdown(wait=False, cancel_futures=True)
    return [answers[i] for i in range(len(prompts))]


def _warned(
    outcome: Outcome, messages: list[dict[str, str]], config: dict[str, Any], endpoint: llm_calls.Endpoint
) -> Outcome:
    """A verdict on a prompt estimated longer than the context stands (the server said nothing of a cut), warned."""
    if outcome.error or not outcome.verdict:
        return outcome
    warning = llm_compat.over_context_warning(
        llm_compat.estimate_tokens(messages), config["max_tokens"], endpoint.context
    )
    return replace(outcome, warning=warning) if warning else outcome


class _AnswerCache:
    """The stored answers for a batch's prompts, read in one query. The pool's threads read them and hand in new
    answers (`get`, `put`: dict operations, safe across threads); the owning thread writes each new answer with
    `store` as soon as its call has returned."""

    def __init__(self, model: str, keys: list[str]) -> None:
        self.model = model
        self.found = {
            row.key: llm_calls.Completion(
                text=row.text, prompt_tokens=row.prompt_tokens, completion_tokens=row.completion_tokens
            )
            for row in LLMResponse.objects.filter(key__in=keys)
        }
        self.new: dict[str, llm_calls.Completion] = {}

    def get(self, key: str) -> llm_calls.Completion | None:
        return self.found.get(key)

    def put(self, key: str, completion: llm_calls.Completion) -> None:
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


# --- few-shot examples and the frozen prompt --------------------------------------------------------------------


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _pick_examples(criterion: Criterion, config: dict[str, Any]) -> list[str]:
    """The example trace ids: the listed ones after the leakage and critique checks, else `few_shot` train traces
    with a written critique, balanced between pass and fail, in a stable pseudo-random order. An example without a
    critique would have nothing to shadow, so such labels are never picked and never accepted."""
    train = labelled_trace_ids(criterion=criterion, split="train")
    external = dict(Trace.objects.filter(pk__in=list(train)).values_list("id", "external_id"))
    critiques = {
        trace_id: critique
        for trace_id, critique in Label.objects.filter(criterion=criterion, trace_id__in=list(train)).values_list(
            "trace_id", "critique"
        )
        if critique.strip()
    }
    if "examples" in config:
        in_train = {external_id: trace_id for trace_id, external_id in external.items()}
        for external_id in config["examples"]:
            if external_id not in in_train:
                where = _split_of_external_id(criterion, external_id)
                raise DomainError(
                    f"examples: trace {external_id!r} is {where}; few-shot examples may only come from the "
                    "train split, or the judge would be measured on its own examples"
                )
            if in_train[external_id] not in critiques:
                raise DomainError(
                    f"examples: trace {external_id!r} has no critique for {criterion.name!r}; a few-shot example "
                    "shows the judge the expert's reasoning, so write one on the trace's page or pick another trace"
                )
        return list(config["examples"])
    if config["few_shot"] > len(critiques):
        raise DomainError(
            f"few_shot: {config['few_shot']} asked, "
            f"{_plural(len(critiques), 'train label of this criterion has', 'train labels of this criterion have')} "
            "a critique"
        )
    key = selectors.split_key(criterion)
    order = sorted(critiques, key=lambda t: hashlib.sha256(f"{key}:{t}".encode()).digest())
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


def _snapshot(criterion: Criterion, example_ids: list[str]) -> dict[str, Any]:
    """The prompt's parts that live outside the version, as they are now: the rubric, the criterion's name and
    definition, each example's label (`examples`, small: what `drift` compares) and its trace as the prompt shows
    it (`shown`, by trace id: up to a few blocks of 12,000 characters each)."""
    traces = {
        t.external_id: t
        for t in Trace.objects.filter(project=criterion.project_id, external_id__in=example_ids).only(
            *TRACE_INPUT_FIELDS
        )
    }
    labels = {
        external_id: (verdict, critique)
        for external_id, verdict, critique in Label.objects.filter(
            criterion=criterion, trace__in=list(traces.values())
        ).values_list("trace__external_id", "verdict", "critique")
    }
    examples = []
    for external_id in example_ids:
        if external_id not in labels:  # checked by _pick_examples in the same transaction; a guard, not a path
            raise DomainError(f"examples: trace {external_id!r} has no label for {criterion.name!r}")
        verdict, critique = labels[external_id]
        examples.append({"trace": external_id, "verdict": verdict, "critique": critique})
    return {
        "criterion": criterion.name,
        "definition": criterion.definition,
        "rubric": llm.RUBRIC,
        "examples": examples,
        "shown": {external_id: llm.render_trace(trace_input(traces[external_id])) for external_id in example_ids},
    }


@dataclass(frozen=True)
class FrozenPrompt:
    """What a version sends before the trace it grades, as frozen when the version was made."""

    criterion: str
    definition: str
    rubric: str
    instructions: str
    examples: list[llm.Example]
    use_reference: bool = False

    def messages(self, trace: TraceInput) -> list[dict[str, str]]:
        try:
            return llm.build_messages(
                criterion=self.criterion,
                definition=self.definition,
                instructions=self.instructions,
                examples=self.examples,
                trace=trace,
                rubric=self.rubric,
                use_reference=self.use_reference,
            )
        except ConfigError as exc:
            raise DomainError(f"few-shot {exc}") from None


def frozen_prompt(version: JudgeVersion) -> FrozenPrompt:
    """The version's prompt parts from its config and snapshot only: never the criterion or labels as they are now.
    Raises DomainError for a version that could not be frozen (the reason is in its snapshot)."""
    snapshot = version.snapshot or {}
    if "unfrozen" in snapshot or "examples" not in snapshot:
        reason = snapshot.get("unfrozen", "it has no frozen prompt")
        raise DomainError(
            f"{version.judge.name} v{version.number} cannot run: {reason}; make a new version from current labels"
        )
    return FrozenPrompt(
        criterion=snapshot["criterion"],
        definition=snapshot["definition"],
        rubric=snapshot["rubric"],
        instructions=version.config.get("instructions", ""),
        use_reference=bool(version.config.get("use_reference", False)),
        examples=[
            llm.Example(shown=snapshot["shown"][e["trace"]], verdict=e["verdict"], critique=e["critique"])
            for e in snapshot["examples"]
        ],
    )


def prompt_preview(*, version: JudgeVersion, trace: Trace) -> list[dict[str, str]]:
    """The exact messages an LLM judge version sends for `trace`: its frozen prompt, then the trace."""
    if version.judge.kind != LLMKind.name:
        raise DomainError(
            f"judge {version.judge.name!r} is a {version.judge.kind} judge; only LLM judges have a prompt"
        )
    return frozen_prompt(version).messages(trace_input(trace))


def _drift(version_ids: list[int]) -> dict[int, Drift]:
    rows = list(
        JudgeVersion.objects.filter(pk__in=version_ids)
        .order_by()
        .values(
            "pk",
            "judge__criterion_id",
            name=KT("snapshot__criterion"),
            definition=KT("snapshot__definition"),
            unfrozen=KT("snapshot__unfrozen"),
            examples=KeyTransform("examples", "snapshot"),
        )
    )
    criterion_ids = {row["judge__criterion_id"] for row in rows}
    criteria = {pk: (name, definition) for pk, name, definition in Criterion.objects.filter(pk__in=criterion_ids)
                .values_list("pk", "name", "definition")}  # fmt: skip
    example_ids = {e["trace"] for row in rows for e in row["examples"] or []}
    labels = {
        (criterion_id, external_id): (verdict, critique)
        for criterion_id, external_id, verdict, critique in Label.objects.filter(
            criterion_id__in=criterion_ids, trace__external_id__in=example_ids
        ).values_list("criterion_id", "trace__external_id", "verdict", "critique")
    }
    drifts = {}
    for row in rows:
        if row["unfrozen"] or row["examples"] is None:
            reason = row["unfrozen"] or "it was made before versions froze their prompt"
            drifts[row["pk"]] = Drift(headline="cannot run", changes=(reason,), runs=False)
            continue
        name, definition = criteria[row["judge__criterion_id"]]
        older, changes = [], []
        if row["name"] != name:
            changes.append(f"the criterion was renamed from {row['name']!r} to {name!r}")
        if row["definition"] != definition:
            changes.append("the criterion's definition was edited")
        if changes:
            older.append("definition")
        edited, relabelled, removed = [], [], []
        for example in row["examples"]:
            now = labels.get((row["judge__criterion_id"], example["trace"]))
            if now is None:
                removed.append(example["trace"])
            elif now[0] != example["verdict"]:
                relabelled.append(f"{example['trace']} (now {now[0]})")
            elif now[1] != example["critique"]:
                edited.append(example["trace"])
        if edited:
            changes.append(f"the critique of {_ids(edited)} was edited")
        if relabelled:
            changes.append(f"the verdict of {_ids(relabelled)} changed")
        if removed:
            changes.append(f"the label of {_ids(removed)} was removed")
        if edited or relabelled or removed:
            older.append("critiques")
        if changes:
            headline = "is built on an older " + " and older ".join(older)
            drifts[row["pk"]] = Drift(headline=headline, changes=tuple(changes))
    return drifts


def _ids(ids: list[str]) -> str:
    """ "example t-3" or "examples t-3, t-9"."""
    return ("example " if len(ids) == 1 else "examples ") + ", ".join(ids)
