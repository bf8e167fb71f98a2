"""Writes for judges: creating judges and versions, running them, importing verdicts made elsewhere."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.ingest_batches import Rejection
from annotation.models import Criterion, Project, Trace
from annotation.services import DomainError
from annotation.trace_format import FormatError, read_jsonl
from core.json_input import JsonTooDeep, json_depth_check
from core.runs import (
    database_away,
    run_cancel,
    run_claim,
    run_enqueue,
    run_fail,
    run_finish,
    run_heartbeat,
    run_working,
)
from judges import kinds
from judges.kinds import TRACE_INPUT_FIELDS, Scorer, trace_input
from judges.models import MAX_REASONING_CHARS, Judge, JudgeRun, JudgeVersion, Judgment
from judges.providers import ConfigError, Outcome
from judges.selectors import run_tally
from judges.stats import alignment_report

NAME_MAX_CHARS = Judge._meta.get_field("name").max_length


def _validate_config(kind: str, config: object) -> dict[str, Any]:
    try:
        json_depth_check(config, where="config")
    except JsonTooDeep as exc:
        raise DomainError(str(exc)) from None
    try:
        return kinds.get(kind).validate_config(config)
    except ConfigError as exc:
        raise DomainError(f"config: {exc}") from None


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
    built = kinds.get(kind).build(criterion=criterion, config=cleaned)
    judge = Judge.objects.create(project=project, criterion=criterion, name=name, kind=kind, created_by=user)
    JudgeVersion.objects.create(
        judge=judge,
        number=1,
        config=built.config,
        artifact=built.artifact,
        training=built.training,
        snapshot=built.snapshot,
        comment="first version",
        created_by=user,
        criterion_version=criterion.version,
    )
    return judge


@transaction.atomic
def judge_version_create(
    *, judge: Judge, config: object, comment: str = "", user: AbstractBaseUser | None = None
) -> JudgeVersion:
    """The next version of a judge. Versions are immutable, so this is the only way to change a judge: a version
    built now freezes the criterion's definition and labels as they are now (JudgeKind.build)."""
    cleaned = _validate_config(judge.kind, config)
    Judge.objects.select_for_update().get(pk=judge.pk)  # serialises version numbering
    latest = judge.latest_version()
    built = kinds.get(judge.kind).build(criterion=judge.criterion, config=cleaned)
    # The same config retrained on other train labels, or frozen from another definition or other critiques, is a
    # new version; otherwise it is the same judge.
    # A version made under an earlier definition is stale (judges.staleness) even when nothing it froze changed:
    # a version under the current definition is then new, to be measured again on labels made under it.
    definition = Criterion.objects.filter(pk=judge.criterion_id).values_list("version", flat=True).get()
    if (
        latest is not None
        and latest.config == built.config
        and latest.training.get("train_fingerprint") == built.training.get("train_fingerprint")
        and latest.snapshot == built.snapshot
        and latest.criterion_version == definition
    ):
        raise DomainError(f"nothing changed: the config is the same as version {latest.number}")
    number = (latest.number if latest else 0) + 1
    return JudgeVersion.objects.create(
        judge=judge,
        number=number,
        config=built.config,
        artifact=built.artifact,
        training=built.training,
        snapshot=built.snapshot,
        comment=comment,
        created_by=user,
        criterion_version=definition,
    )


def judge_version_from_current_labels(*, version: JudgeVersion, user: AbstractBaseUser | None = None) -> JudgeVersion:
    """The judge's next version with `version`'s config (the same model, instructions and few-shot traces), built
    on the criterion's definition and labels as they are now; its comment says what changed. Raises DomainError
    when nothing did, or when the current labels cannot make it (an example whose critique was removed)."""
    drift = kinds.versions_drift([version.pk]).get(version.pk)
    if drift is None:
        raise DomainError(
            f"nothing changed: v{version.number} is built on the current definition and labels of "
            f"{version.judge.criterion.name!r}"
        )
    comment = f"v{version.number} on current labels ({'; '.join(drift.changes)})"
    return judge_version_create(judge=version.judge, config=version.config, comment=comment, user=user)


def judge_run_create(*, version: JudgeVersion, split: str, user: AbstractBaseUser | None = None) -> JudgeRun:
    """A queued run of the version over the traces of `split` its kind covers (the labelled ones; for an external
    judge, those with imported verdicts); the caller executes or enqueues it."""
    if split not in JudgeRun.Split.values:
        raise DomainError(f"split: expected one of {', '.join(JudgeRun.Split.values)}, got {split!r}")
    if reason := kinds.get(version.judge.kind).unavailable_reason():
        raise DomainError(reason)
    now = timezone.now()
    total = len(kinds.get(version.judge.kind).run_trace_ids(version=version, split=split, as_of=now))
    return JudgeRun.objects.create(version=version, split=split, total=total, created_by=user, created_at=now)


def judge_run_plan(*, run: JudgeRun) -> list[list[int]]:
    """Claim the run and split what is left to judge into chunks (trace ids); [] when there is nothing to do here.

    Claiming is a conditional update (queued, or running with a stale heartbeat), so of two deliveries of the same
    run only one plans it. What the run covers is the kind's to say (an external judge: the imported verdicts).
    """
    if not run_claim(run=run):
        return []
    return judge_run_chunks_left(run=run)


def judge_run_chunks_left(*, run: JudgeRun) -> list[list[int]]:
    """What the claimed run has left to judge, in chunks (trace ids): a takeover after a worker died keeps every
    judgment already written and judges only the rest."""
    try:
        kind = kinds.get(run.version.judge.kind)
        wanted = kind.run_trace_ids(version=run.version, split=run.split, as_of=run.created_at)
        done = set(Judgment.objects.filter(run=run).values_list("trace_id", flat=True))
    except Exception as exc:
        run_fail(run=run, error=exc)
        raise
    todo = [trace_id for trace_id in wanted if trace_id not in done]
    if not todo:
        judge_run_maybe_finish(run=run)
        return []
    size = kind.chunk_size(run.version)
    return [todo[start : start + size] for start in range(0, len(todo), size)]


def judge_run_chunk(*, run: JudgeRun, trace_ids: list[int], score: Scorer | None = None) -> int:
    """Judge the traces of one chunk that have no judgment yet; returns how many were written.

    Does nothing once the run is cancelled, finished, or taken over by another attempt (which planned its own
    chunks). Safe to repeat: the unique (run, trace) constraint keeps exactly one judgment per trace, whoever writes
    it first. The run's heartbeat is kept while the chunk is judged, however long its LLM calls take.
    """
    # A beat, not a mere check, before anything else: a chunk that waited in the queue while its worker died starts
    # on a run whose heartbeat is stale, and a delivery of judge_run_task arriving meanwhile (a new worker resumes its
    # runs) would take the run over and plan these same traces again, paying for their LLM calls twice. The beat
    # makes the run fresh, or finds it no longer this attempt's: one conditional UPDATE, so one of the two wins.
    if not run_heartbeat(run=run):
        return 0
    done = set(Judgment.objects.filter(run=run, trace_id__in=trace_ids).values_list("trace_id", flat=True))
    todo = [trace_id for trace_id in trace_ids if trace_id not in done]
    if not todo:
        return 0
    try:
        with run_working(run=run):
            traces = list(Trace.objects.filter(pk__in=todo).only(*TRACE_INPUT_FIELDS))
            outcomes = (score or _run_scorer(run))([trace_input(trace) for trace in traces])
    except Exception as exc:
        # The database going away says nothing about the run: the chunk's task retries it once it is back (the
        # answers already received are stored, so nothing is asked twice).
        if not database_away(exc):
            run_fail(run=run, error=exc)
        raise
    judgments = [_judgment(run, trace.pk, outcome) for trace, outcome in zip(traces, outcomes, strict=True)]
    Judgment.objects.bulk_create(judgments, ignore_conflicts=True)
    return len(judgments)


def judge_run_maybe_finish(*, run: JudgeRun) -> bool:
    """Write the report once every planned trace has its judgment; True when this call finished the run."""
    if Judgment.objects.filter(run=run).count() < run.total:
        return False
    tally = run_tally(run)
    report = alignment_report(tally.confusion, errors=tally.errors, skipped=tally.skipped, split=run.split)
    report.update(run_warnings(run))
    finished = run_finish(run=run, report=report)
    run.refresh_from_db()
    return finished


def run_warnings(run: JudgeRun) -> dict[str, Any]:
    """`warnings` (how many judgments carry one) and `warning` (one of them, as an example) when any does; {}
    otherwise, so reports without warnings keep their keys."""
    warned = Judgment.objects.filter(run=run).exclude(warning="")
    example = warned.values_list("warning", flat=True).first()
    return {"warnings": warned.count(), "warning": example} if example else {}


def judge_run_execute(*, run: JudgeRun) -> JudgeRun:
    """The whole run in this process (`run_judge --inline`, tests): plan, every chunk in turn, the report."""
    chunks = judge_run_plan(run=run)
    if chunks:
        score = _run_scorer(run)
        for chunk in chunks:
            judge_run_chunk(run=run, trace_ids=chunk, score=score)
        judge_run_maybe_finish(run=run)
    run.refresh_from_db()
    return run


def _run_scorer(run: JudgeRun) -> Scorer:
    # What a kind reads that others write (imported verdicts) is read as of the run's creation, in every chunk.
    return kinds.version_scorer(run.version, as_of=run.created_at)


def _judgment(run: JudgeRun, trace_id: int, outcome: Outcome) -> Judgment:
    return Judgment(
        run=run,
        trace_id=trace_id,
        verdict=outcome.verdict,
        reasoning=outcome.reasoning[:MAX_REASONING_CHARS],
        raw_output=outcome.raw_output,
        error=outcome.error,
        skipped=outcome.skipped[:200],
        latency_ms=outcome.latency_ms,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        cost_usd=outcome.cost_usd,
        warning=outcome.warning,
    )


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
    with transaction.atomic():
        run = judge_run_create(version=version, split=split, user=user)
        run_enqueue(run=run)
    return run


def judge_run_cancel(*, run: JudgeRun) -> JudgeRun:
    """Stop a queued or running run. A conditional update, so a run that finished meanwhile is never relabelled;
    a cancelled run is never claimed, and its chunks still queued do nothing."""
    cancelled = run_cancel(run=run)
    run.refresh_from_db()
    if not cancelled:
        raise DomainError(f"run {run.pk} already ended ({run.get_status_display().lower()}); nothing to cancel")
    return run
