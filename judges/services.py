"""Writes for judges: creating judges and versions, running them, importing verdicts made elsewhere."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.ingest_batches import Rejection
from annotation.models import Criterion, Label, Project, Trace
from annotation.services import DomainError
from annotation.trace_format import FormatError, read_jsonl
from core.runs import run_cancel, run_claim, run_fail, run_finish, run_working
from judges import selectors
from judges.models import Judge, JudgeRun, JudgeVersion, Judgment, LLMResponse
from judges.providers import ConfigError, Outcome, TraceInput, assertion, classifier, llm
from judges.selectors import labelled_trace_ids, run_confusion
from judges.splits import split_of
from judges.stats import alignment_report

NAME_MAX_CHARS = Judge._meta.get_field("name").max_length
# Traces per chunk of work (one task on the worker) for assertion and classifier judges.
CHUNK_SIZE = 500
LLM_CHUNK_CALLS_PER_SLOT = 16
MAX_REASONING_CHARS = 20_000
# Judges a chunk of traces, in order.
Scorer = Callable[[list[TraceInput]], list[Outcome]]


def _validate_config(kind: str, config: object) -> dict[str, Any]:
    if kind == Judge.Kind.ASSERTION:
        try:
            return assertion.validate_config(config)
        except ConfigError as exc:
            raise DomainError(f"config: {exc}") from None
    if kind == Judge.Kind.CLASSIFIER:
        try:
            return classifier.validate_config(config)
        except ConfigError as exc:
            raise DomainError(f"config: {exc}") from None
    if kind == Judge.Kind.LLM:
        try:
            cleaned = llm.validate_config(config)
        except ConfigError as exc:
            raise DomainError(f"config: {exc}") from None
        cleaned.setdefault("model", settings.EVALSTUDIO_JUDGE_MODEL)
        return cleaned
    if kind == Judge.Kind.EXTERNAL:
        if config not in (None, {}):
            raise DomainError("config: an external judge takes no settings; its verdicts are imported")
        return {}
    raise DomainError(f"kind: expected one of {', '.join(Judge.Kind.values)}, got {kind!r}")


@transaction.atomic
def judge_create(
    *,
    project: Project,
    criterion: Criterion,
    name: str,
    kind: str,
    config: object = None,
    user: AbstractBaseUser | None = None,
) -> Judge:
    """A judge with its first version."""
    name = name.strip()
    if not name:
        raise DomainError("name: a judge needs a name")
    if len(name) > NAME_MAX_CHARS:
        raise DomainError(f"name: at most {NAME_MAX_CHARS} characters")
    if criterion.project_id != project.pk:
        raise DomainError(f"criterion {criterion.name!r} belongs to another project")
    if Judge.objects.filter(project=project, name=name).exists():
        raise DomainError(f"name: project {project.slug!r} already has a judge named {name!r}")
    cleaned = _validate_config(kind, config if config is not None else {})
    trained = _train(criterion, kind, cleaned)
    judge = Judge.objects.create(project=project, criterion=criterion, name=name, kind=kind, created_by=user)
    JudgeVersion.objects.create(
        judge=judge, number=1, config=cleaned, comment="first version", created_by=user, **trained
    )
    return judge


def _train(criterion: Criterion, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """For a classifier: train on the train split, choose the threshold on dev; the version's artifact fields.
    For an LLM judge: check or pick its few-shot examples (train split only), written into the config."""
    if kind == Judge.Kind.LLM:
        config["examples"] = _few_shot_examples(criterion, config)
        return {}
    if kind != Judge.Kind.CLASSIFIER:
        return {}
    splits = {name: labelled_trace_ids(criterion=criterion, split=name) for name in ("train", "dev")}
    texts = {
        trace.pk: classifier.trace_text(trace_input(trace))
        for trace in Trace.objects.filter(pk__in=[*splits["train"], *splits["dev"]]).only(
            "id", "external_id", "input", "output", "messages"
        )
    }
    train_ids, dev_ids = sorted(splits["train"]), sorted(splits["dev"])
    try:
        model = classifier.train(
            train_texts=[texts[i] for i in train_ids],
            train_labels=[splits["train"][i] for i in train_ids],
            dev_texts=[texts[i] for i in dev_ids],
            dev_labels=[splits["dev"][i] for i in dev_ids],
            config=config,
        )
    except classifier.TrainingError as exc:
        raise DomainError(str(exc)) from None
    fingerprint = hashlib.sha256(repr(sorted(splits["train"].items())).encode()).hexdigest()[:16]
    return {"artifact": model.dumps(), "training": {**model.summary, "train_fingerprint": fingerprint}}


def _few_shot_examples(criterion: Criterion, config: dict[str, Any]) -> list[str]:
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


@transaction.atomic
def judge_version_create(
    *, judge: Judge, config: object, comment: str = "", user: AbstractBaseUser | None = None
) -> JudgeVersion:
    """The next version of a judge. Versions are immutable, so this is the only way to change a judge."""
    cleaned = _validate_config(judge.kind, config)
    Judge.objects.select_for_update().get(pk=judge.pk)  # serialises version numbering
    latest = judge.latest_version()
    trained = _train(judge.criterion, judge.kind, cleaned)
    if latest is not None and latest.config == cleaned:
        same_training = latest.training.get("train_fingerprint") == trained.get("training", {}).get("train_fingerprint")
        if judge.kind != Judge.Kind.CLASSIFIER or same_training:
            raise DomainError(f"nothing changed: the config is the same as version {latest.number}")
    number = (latest.number if latest else 0) + 1
    return JudgeVersion.objects.create(
        judge=judge, number=number, config=cleaned, comment=comment, created_by=user, **trained
    )


def judge_run_create(*, version: JudgeVersion, split: str, user: AbstractBaseUser | None = None) -> JudgeRun:
    """A queued run of the version over the labelled traces of `split`; the caller executes or enqueues it."""
    if split not in JudgeRun.Split.values:
        raise DomainError(f"split: expected one of {', '.join(JudgeRun.Split.values)}, got {split!r}")
    judge = version.judge
    if judge.kind == Judge.Kind.EXTERNAL and _latest_import(judge) is None:
        raise DomainError(f"judge {judge.name!r} has no imported judgments yet; import them first")
    total = len(labelled_trace_ids(criterion=judge.criterion, split=split))
    return JudgeRun.objects.create(version=version, split=split, total=total, created_by=user)


def _latest_import(judge: Judge) -> JudgeRun | None:
    return (
        JudgeRun.objects.filter(version__judge=judge, status=JudgeRun.Status.DONE)
        .exclude(imported_from="")
        .order_by("-finished_at", "-id")
        .first()
    )


def chunk_size(version: JudgeVersion) -> int:
    # LLM chunks: big enough that the wait for a chunk's slowest call and the database round trips between
    # chunks stay small next to the calls, small enough that progress and the heartbeat move every few seconds.
    if version.judge.kind == Judge.Kind.LLM:
        return LLM_CHUNK_CALLS_PER_SLOT * settings.EVALSTUDIO_JUDGE_CONCURRENCY
    return CHUNK_SIZE


def judge_run_plan(*, run: JudgeRun) -> list[list[int]]:
    """Claim the run and split what is left to judge into chunks (trace ids); [] when there is nothing to do here.

    Claiming is a conditional update (queued, or running with a stale heartbeat), so of two deliveries of the same
    run only one plans it.
    """
    if not run_claim(run=run):
        return []
    return judge_run_chunks_left(run=run)


def judge_run_chunks_left(*, run: JudgeRun) -> list[list[int]]:
    """What the claimed run has left to judge, in chunks (trace ids): a takeover after a worker died keeps every
    judgment already written and judges only the rest. An external judge's run is a copy of imported verdicts:
    done here, in one step."""
    judge = run.version.judge
    try:
        if judge.kind == Judge.Kind.EXTERNAL:
            _copy_imported(run)
            judge_run_maybe_finish(run=run)
            return []
        wanted = list(labelled_trace_ids(criterion=judge.criterion, split=run.split))
        done = set(Judgment.objects.filter(run=run).values_list("trace_id", flat=True))
    except Exception as exc:
        run_fail(run=run, error=exc)
        raise
    todo = [trace_id for trace_id in wanted if trace_id not in done]
    if not todo:
        judge_run_maybe_finish(run=run)
        return []
    size = chunk_size(run.version)
    return [todo[start : start + size] for start in range(0, len(todo), size)]


def judge_run_chunk(*, run: JudgeRun, trace_ids: list[int], score: Scorer | None = None) -> int:
    """Judge the traces of one chunk that have no judgment yet; returns how many were written.

    Does nothing once the run is cancelled, finished, or taken over by another attempt (which planned its own
    chunks). Safe to repeat: the unique (run, trace) constraint keeps exactly one judgment per trace, whoever writes
    it first. The run's heartbeat is kept while the chunk is judged, however long its LLM calls take.
    """
    owned = JudgeRun.objects.filter(pk=run.pk, status=JudgeRun.Status.RUNNING, claim_token=run.claim_token)
    if not owned.exists():
        return 0
    done = set(Judgment.objects.filter(run=run, trace_id__in=trace_ids).values_list("trace_id", flat=True))
    todo = [trace_id for trace_id in trace_ids if trace_id not in done]
    if not todo:
        return 0
    try:
        with run_working(run=run):
            traces = list(
                Trace.objects.filter(pk__in=todo).only(
                    "id", "external_id", "input", "output", "messages", "context", "metadata"
                )
            )
            outcomes = (score or version_scorer(run.version))([trace_input(trace) for trace in traces])
    except Exception as exc:
        run_fail(run=run, error=exc)
        raise
    judgments = [_judgment(run, trace.pk, outcome) for trace, outcome in zip(traces, outcomes, strict=True)]
    Judgment.objects.bulk_create(judgments, ignore_conflicts=True)
    return len(judgments)


def judge_run_maybe_finish(*, run: JudgeRun) -> bool:
    """Write the report once every planned trace has its judgment; True when this call finished the run."""
    if Judgment.objects.filter(run=run).count() < run.total:
        return False
    confusion, errors = run_confusion(run)
    report = alignment_report(confusion, errors=errors, split=run.split)
    finished = run_finish(run=run, report=report)
    run.refresh_from_db()
    return finished


def judge_run_execute(*, run: JudgeRun) -> JudgeRun:
    """The whole run in this process (`run_judge --inline`, tests): plan, every chunk in turn, the report."""
    chunks = judge_run_plan(run=run)
    if chunks:
        score = version_scorer(run.version)
        for chunk in chunks:
            judge_run_chunk(run=run, trace_ids=chunk, score=score)
        judge_run_maybe_finish(run=run)
    run.refresh_from_db()
    return run


def version_scorer(version: JudgeVersion) -> Scorer:
    """Judge a chunk of traces with the version: per trace for assertions, vectorised for a classifier, LLM calls
    in parallel threads (the client is thread-safe; the work is waiting on the network)."""
    judge = version.judge
    if judge.kind == Judge.Kind.CLASSIFIER:
        model = classifier.TrainedClassifier.loads(bytes(version.artifact))

        def score(traces: list[TraceInput]) -> list[Outcome]:
            started = time.perf_counter()
            outcomes = model.judge_many(traces)
            each_ms = round(1000 * (time.perf_counter() - started) / max(1, len(traces)))
            return [replace(outcome, latency_ms=each_ms) for outcome in outcomes]

        return score
    if judge.kind == Judge.Kind.LLM:
        config = version.config
        client = llm_client()
        examples = _examples(version)

        def score_llm(traces: list[TraceInput]) -> list[Outcome]:
            all_messages = [
                llm.build_messages(
                    criterion=judge.criterion.name,
                    definition=judge.criterion.definition,
                    instructions=config.get("instructions", ""),
                    examples=examples,
                    trace=trace,
                )
                for trace in traces
            ]
            # The cache is read and written here, in this thread: the pool's threads never touch the database.
            cache = _ChunkCache(
                config["model"], [llm.cache_key(config["model"], m, llm.params(config)) for m in all_messages]
            )

            def ask(messages: list[dict[str, str]]) -> Outcome:
                return llm.judge_messages(
                    client=client, model=config["model"], messages=messages, config=config, cache=cache
                )

            with ThreadPoolExecutor(max_workers=settings.EVALSTUDIO_JUDGE_CONCURRENCY) as pool:
                outcomes = list(pool.map(ask, all_messages))
            cache.save()
            return outcomes

        return score_llm
    config = version.config
    return lambda traces: [assertion.judge(config, trace) for trace in traces]


def llm_client() -> Any:
    import openai

    return openai.OpenAI(
        base_url=settings.OPENAI_BASE_URL or None,
        # The client refuses to start without a key; a local OpenAI-compatible server usually needs none.
        api_key=settings.OPENAI_API_KEY or "not-needed",
        max_retries=settings.EVALSTUDIO_LLM_MAX_RETRIES,
    )


def _examples(version: JudgeVersion) -> list[llm.Example]:
    criterion = version.judge.criterion
    ids = version.config.get("examples", [])
    traces = {t.external_id: t for t in Trace.objects.filter(project=criterion.project_id, external_id__in=ids)}
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


class _ChunkCache:
    """The stored answers for one chunk's prompts, read in one query; new answers are written in one insert."""

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
            self.new[key] = completion  # a dict assignment: safe from the pool's threads

    def save(self) -> None:
        LLMResponse.objects.bulk_create(
            [
                LLMResponse(
                    key=key,
                    model=self.model,
                    text=c.text or "",
                    prompt_tokens=c.prompt_tokens,
                    completion_tokens=c.completion_tokens,
                )
                for key, c in self.new.items()
            ],
            ignore_conflicts=True,  # the same prompt answered by a concurrent run
        )


def prompt_preview(*, version: JudgeVersion, trace: Trace) -> list[dict[str, str]]:
    """The exact messages an LLM judge version would send for `trace`."""
    if version.judge.kind != Judge.Kind.LLM:
        raise DomainError(
            f"judge {version.judge.name!r} is a {version.judge.kind} judge; only LLM judges have a prompt"
        )
    criterion = version.judge.criterion
    return llm.build_messages(
        criterion=criterion.name,
        definition=criterion.definition,
        instructions=version.config.get("instructions", ""),
        examples=_examples(version),
        trace=trace_input(trace),
    )


def trace_input(trace: Trace) -> TraceInput:
    return TraceInput(
        external_id=trace.external_id,
        input=trace.input,
        output=trace.output,
        messages=trace.messages,
        context=trace.context,
        metadata=trace.metadata,
    )


def _judgment(run: JudgeRun, trace_id: int, outcome: Outcome) -> Judgment:
    config = run.version.config
    return Judgment(
        run=run,
        trace_id=trace_id,
        verdict=outcome.verdict,
        reasoning=outcome.reasoning[:MAX_REASONING_CHARS],
        raw_output=outcome.raw_output,
        error=outcome.error,
        latency_ms=outcome.latency_ms,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        cost_usd=llm.cost(config, outcome.prompt_tokens or 0, outcome.completion_tokens or 0)
        if outcome.prompt_tokens is not None
        else None,
    )


def _copy_imported(run: JudgeRun) -> None:
    """An external judge's run on a split: the latest imported verdicts for the split's traces. Its total is what
    was imported for them: a trace the other tool never judged is not this run's to wait for."""
    source = _latest_import(run.version.judge)
    if source is None:
        raise DomainError("no imported judgments to measure")
    wanted = labelled_trace_ids(criterion=run.version.judge.criterion, split=run.split)
    imported = Judgment.objects.filter(run=source, trace_id__in=list(wanted))
    Judgment.objects.bulk_create(
        [
            Judgment(
                run=run,
                trace_id=j.trace_id,
                verdict=j.verdict,
                reasoning=j.reasoning,
                raw_output=j.raw_output,
                error=j.error,
            )
            for j in imported.iterator(chunk_size=2000)
        ],
        ignore_conflicts=True,
        batch_size=2000,
    )
    run.total = Judgment.objects.filter(run=run).count()
    JudgeRun.objects.filter(pk=run.pk).update(total=run.total)


# --- verdicts made elsewhere ---------------------------------------------------------------------------------------


@dataclass
class JudgmentsImport:
    run: JudgeRun | None = None
    imported: int = 0
    rejected: list[Rejection] = field(default_factory=list)


_JUDGMENT_KEYS = ("id", "verdict", "reasoning")


def _parse_judgment(value: object) -> tuple[str, str, str]:
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object with id, verdict and reasoning")
    for key in value:
        if key not in _JUDGMENT_KEYS:
            raise ValueError(f"unknown field {key!r} (fields: id, verdict, reasoning)")
    external_id = value.get("id")
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)
    if not isinstance(external_id, str) or not external_id:
        raise ValueError("id: the trace id is required")
    verdict = value.get("verdict")
    if verdict not in ("pass", "fail"):
        raise ValueError(f"verdict: expected 'pass' or 'fail', got {verdict!r}")
    reasoning = value.get("reasoning") or ""
    if not isinstance(reasoning, str):
        raise ValueError(f"reasoning: expected a string, got {type(reasoning).__name__}")
    return external_id, verdict, reasoning


def judgments_import(
    *, judge: Judge, stream: BinaryIO, source_name: str, user: AbstractBaseUser | None = None
) -> JudgmentsImport:
    """Import an external judge's JSONL verdicts as a run over every trace they name.

    All or nothing: any bad line (reported by number, like import_traces) means nothing is written, so a
    half-imported judge is never measured.
    """
    if judge.kind != Judge.Kind.EXTERNAL:
        raise DomainError(
            f"judge {judge.name!r} is a {judge.kind} judge; verdicts can only be imported into an external one"
        )
    result = JudgmentsImport()
    parsed: list[tuple[int, str, str, str]] = []
    seen: dict[str, int] = {}
    try:
        for raw in read_jsonl(stream, max_bytes=1 << 20):
            if raw.error is not None:
                result.rejected.append(Rejection(error=raw.error, line=raw.line))
                continue
            try:
                external_id, verdict, reasoning = _parse_judgment(raw.value)
            except ValueError as exc:
                result.rejected.append(Rejection(error=str(exc), line=raw.line))
                continue
            if external_id in seen:
                result.rejected.append(
                    Rejection(
                        error=f"id: {external_id!r} already judged on line {seen[external_id]}",
                        line=raw.line,
                        id=external_id,
                    )
                )
                continue
            seen[external_id] = raw.line
            parsed.append((raw.line, external_id, verdict, reasoning))
    except FormatError as exc:
        raise DomainError(str(exc)) from None
    trace_ids = _trace_ids(judge.project, (external_id for _, external_id, _, _ in parsed))
    for line, external_id, _, _ in parsed:
        if external_id not in trace_ids:
            result.rejected.append(
                Rejection(
                    error=f"id: no trace {external_id!r} in project {judge.project.slug!r}", line=line, id=external_id
                )
            )
    if result.rejected:
        result.rejected.sort(key=lambda r: r.line or 0)
        return result
    with transaction.atomic():
        now = timezone.now()
        run = JudgeRun.objects.create(
            version=judge.latest_version(),
            split=JudgeRun.Split.ALL,
            status=JudgeRun.Status.RUNNING,
            total=len(parsed),
            imported_from=source_name[:255] or "import",
            created_by=user,
            started_at=now,
        )
        Judgment.objects.bulk_create(
            [
                Judgment(
                    run=run, trace_id=trace_ids[external_id], verdict=verdict, reasoning=reasoning[:MAX_REASONING_CHARS]
                )
                for _, external_id, verdict, reasoning in parsed
            ],
            batch_size=2000,
        )
        judge_run_maybe_finish(run=run)
        result.run = run
        result.imported = len(parsed)
    return result


def _trace_ids(project: Project, external_ids: Iterable[str]) -> dict[str, int]:
    ids = list(external_ids)
    found: dict[str, int] = {}
    for start in range(0, len(ids), 5000):
        found.update(
            Trace.objects.filter(project=project, external_id__in=ids[start : start + 5000]).values_list(
                "external_id", "id"
            )
        )
    return found


# --- runs started and stopped from the browser or the API ----------------------------------------------------------


def judge_run_enqueue(*, version: JudgeVersion, split: str, user: AbstractBaseUser | None = None) -> JudgeRun:
    """A queued run handed to the worker once the row is committed (the worker must never look for a missing run)."""
    from judges.tasks import judge_run_task  # tasks imports this module

    with transaction.atomic():
        run = judge_run_create(version=version, split=split, user=user)
        transaction.on_commit(lambda: judge_run_task.delay(run.pk))
    return run


def judge_run_cancel(*, run: JudgeRun) -> JudgeRun:
    """Stop a queued or running run. A conditional update, so a run that finished meanwhile is never relabelled;
    a cancelled run is never claimed, and its chunks still queued do nothing."""
    cancelled = run_cancel(run=run)
    run.refresh_from_db()
    if not cancelled:
        raise DomainError(f"run {run.pk} already ended ({run.get_status_display().lower()}); nothing to cancel")
    return run
