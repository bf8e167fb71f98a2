"""The bias battery of an LLM judge version, run on the worker: its verdicts on the dev split with the prompt
perturbed (few-shot order, verbosity, a bandwagon line; judges.providers.bias) against its verdicts on the prompt
as a dev run sends it.

The unperturbed prompts are exactly a dev run's, built from the version's frozen prompt (judges.kinds.llm) and
asked through the same answer cache (LLMResponse): after a dev run of the version they cost nothing, and a battery
run again, or taken over after its worker died, pays only for the answers it does not have yet.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import Trace
from annotation.services import DomainError
from core.llm_client import llm_client
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
from judges.kinds import TRACE_INPUT_FIELDS, trace_input
from judges.kinds.llm import CALLS_PER_SLOT, _ask_all, _priced, frozen_prompt
from judges.models import BiasRun, JudgeVersion
from judges.providers import Outcome
from judges.providers import bias as battery
from judges.selectors import labelled_trace_ids

SPLIT = "dev"


def bias_run_create(*, version: JudgeVersion, user: AbstractBaseUser | None = None) -> BiasRun:
    """A queued battery of the version; the caller executes or enqueues it. Raises DomainError when the version's
    kind has no battery, cannot run on this server, or the dev split has nothing to measure."""
    judge = version.judge
    kind = kinds.get(judge.kind)
    if not kind.bias_battery:
        raise DomainError(
            f"{judge.name} is not an LLM judge (its kind: {kind.label}): the bias battery measures LLM judges, "
            "whose verdicts a prompt's wording can sway"
        )
    if reason := kind.unavailable_reason():
        raise DomainError(reason)
    frozen_prompt(version)  # a version that cannot run says so now, not on the worker
    if not labelled_trace_ids(criterion=judge.criterion, split=SPLIT):
        raise DomainError(
            f"{judge.criterion.name!r} has no labelled traces in the dev split: the battery measures the judge on "
            "dev; label more traces first"
        )
    return BiasRun.objects.create(version=version, created_by=user)


def bias_run_enqueue(*, version: JudgeVersion, user: AbstractBaseUser | None = None) -> BiasRun:
    """A queued battery handed to the worker once the row is committed."""
    with transaction.atomic():
        run = bias_run_create(version=version, user=user)
        run_enqueue(run=run)
    return run


def bias_run_execute(*, run: BiasRun) -> BiasRun:
    """The whole battery in this process (tests, `bias_run --inline`): claim it, work, and read it back."""
    if run_claim(run=run):
        bias_run_work(run=run)
    run.refresh_from_db()
    return run


def bias_run_cancel(*, run: BiasRun) -> BiasRun:
    if not run_cancel(run=run):
        raise DomainError(f"bias run {run.pk} already ended ({run.get_status_display().lower()}); nothing to cancel")
    run.refresh_from_db()
    return run


def bias_run_work(*, run: BiasRun) -> bool:
    """Ask every prompt of the battery (unperturbed first), keeping the run's progress, and write the report. The
    run must be claimed by this attempt. True when this call finished it; False when it was cancelled or taken
    over meanwhile."""
    try:
        with run_working(run=run):
            report = _measure(run)
    except Exception as exc:
        # The database going away says nothing about the battery: the task is retried, and the answers already
        # received are stored, so nothing is asked twice.
        if not database_away(exc):
            run_fail(run=run, error=exc)
        raise
    if report is None:
        return False
    return run_finish(run=run, report=report)


def _measure(run: BiasRun) -> dict[str, Any] | None:
    version = run.version
    config = version.config
    frozen = frozen_prompt(version)
    expert = labelled_trace_ids(criterion=version.judge.criterion, split=SPLIT)
    traces = list(Trace.objects.filter(pk__in=list(expert)).only(*TRACE_INPUT_FIELDS).order_by("external_id"))
    items = [(trace_input(trace), expert[trace.pk]) for trace in traces]

    def prompt(examples: Any, trace: Any) -> list[dict[str, str]]:
        return replace(frozen, examples=list(examples)).messages(trace)

    # Seeded by the version: the battery run again asks the same orders, and finds their answers in the cache.
    seed = f"version-{version.pk}"
    total = battery.prompt_count(items, examples=len(frozen.examples), seed=seed)
    if not run_heartbeat(run=run, total=total, done=0):
        return None
    client = llm_client()
    # Traces per batch of calls: about CALLS_PER_SLOT calls per concurrency slot, as a judge run's chunk. The prompts
    # are built a batch at a time: each repeats the few-shot examples, and all of a large dev split's at once would
    # not fit in a worker's memory.
    per_trace = max(1, total // max(1, len(items)))
    step = max(1, CALLS_PER_SLOT * settings.EVALSTUDIO_JUDGE_CONCURRENCY // per_trace)
    baseline: dict[str, str] = {}
    answers: list[battery.Answer] = []
    outcomes: list[Outcome] = []
    skipped: dict[str, str] = {}
    for start in range(0, len(items), step):
        batch = items[start : start + step]
        probes, skipped = battery.plan(prompt=prompt, examples=frozen.examples, items=batch, seed=seed)
        prompts = [frozen.messages(trace) for trace, _ in batch] + [probe.messages for probe in probes]
        asked = [_priced(config, o) for o in _ask_all(client, config, prompts)]
        outcomes += asked
        baseline.update((trace.external_id, o.verdict) for (trace, _), o in zip(batch, asked, strict=False))
        answers += [
            battery.Answer(probe.bias, probe.variant, probe.trace, o.verdict)
            for probe, o in zip(probes, asked[len(batch) :], strict=True)
        ]
        if not run_heartbeat(run=run, done=len(outcomes)):
            return None  # cancelled, or taken over by another attempt that measures it again
    if not items:
        _, skipped = battery.plan(prompt=prompt, examples=frozen.examples, items=[], seed=seed)
    report = battery.flip_report(baseline=baseline, answers=answers, skipped=skipped)
    costs = [o.cost_usd for o in outcomes if o.cost_usd is not None]
    report.update(
        split=SPLIT,
        examples=len(frozen.examples),
        prompts=len(outcomes),
        # Tokens of the calls made now: an answer found in the cache costs none.
        prompt_tokens=sum(o.prompt_tokens or 0 for o in outcomes),
        completion_tokens=sum(o.completion_tokens or 0 for o in outcomes),
        cost_usd=sum(costs) if costs else None,
    )
    return report


# --- reads -----------------------------------------------------------------------------------------------------------


def latest_bias_run(version: JudgeVersion) -> BiasRun | None:
    """The version's latest finished battery."""
    return BiasRun.objects.filter(version=version, status=BiasRun.Status.DONE).order_by("-finished_at", "-id").first()


def latest_bias_runs(*, version_ids: list[int]) -> dict[int, BiasRun]:
    """version id → its latest battery, finished or not (the judge page shows a running one's progress)."""
    latest: dict[int, BiasRun] = {}
    for run in BiasRun.objects.filter(version_id__in=version_ids).order_by("version_id", "-created_at", "-id"):
        latest.setdefault(run.version_id, run)
    return latest


def latest_finished_bias_runs_by_judge(*, project_id: int) -> dict[int, BiasRun]:
    """judge id → its latest finished battery (any version), for the project's judges that have one."""
    latest: dict[int, BiasRun] = {}
    runs = (
        BiasRun.objects.filter(version__judge__project_id=project_id, status=BiasRun.Status.DONE)
        .select_related("version")
        .order_by("-finished_at", "-id")
    )
    for run in runs:
        latest.setdefault(run.version.judge_id, run)
    return latest
