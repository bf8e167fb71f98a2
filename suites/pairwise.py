"""Pairwise release comparison: for each golden case both suite runs answered, an LLM judge version says which
output better meets one criterion, asked in both orders (judges.pairwise, judges.providers.pairwise). A preference
counts only when the two orders agree; the share of pairs whose orders disagree is the position disagreement rate.

A comparison is a worker run (core.runs), started from the suite comparison page or
`POST /api/v1/projects/{slug}/pairwise-comparisons`. `pairwise_comparison_execute` claims it with a conditional update
and judges outside any transaction, a chunk of pairs at a time, writing each chunk's verdicts in one transaction as
soon as it is judged (unique per comparison and trace): a run taken over after its worker died judges only the pairs
that have no verdict yet, and the answers it already paid for come from LLMResponse. The tally is counted from the
stored verdicts and written last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery

from annotation.models import Criterion, Project, Trace
from annotation.services import DomainError
from core.runs import run_claim, run_enqueue, run_fail, run_finish, run_heartbeat, run_working
from judges.kinds.llm import LLMKind
from judges.models import MAX_REASONING_CHARS, JudgeVersion
from judges.pairwise import Pair, PairAnswers, pairs_per_chunk, pairwise_ask, pairwise_cost, pairwise_version_check
from judges.promotions import current_promotions
from judges.providers import TraceInput
from judges.providers.pairwise import combine, tally
from suites.models import PairwiseComparison, PairwiseVerdict, SuiteCase, SuiteRun


class PairwiseInputError(DomainError):
    """A bad request for a pairwise comparison; the message names the field."""


def _run_name(run: SuiteRun) -> str:
    return run.name or f"run {run.pk}"


# --- which judge version ---------------------------------------------------------------------------------------


def llm_versions(*, project: Project) -> list[tuple[JudgeVersion, bool]]:
    """The LLM judge versions to offer: each LLM judge's newest version and the promoted ones, with whether each is
    its criterion's promoted version; by criterion, promoted first, then newest first."""
    promoted = {p.version_id for p in current_promotions(project=project).values()}
    newest = JudgeVersion.objects.filter(judge=OuterRef("judge")).order_by("-number").values("pk")[:1]
    versions = (
        JudgeVersion.objects.filter(judge__project=project, judge__kind=LLMKind.name)
        .filter(Q(pk__in=promoted) | Q(pk=Subquery(newest)))
        .select_related("judge", "judge__criterion")
    )
    ordered = sorted(
        versions,
        key=lambda v: (v.judge.criterion.position, v.judge.criterion_id, v.pk not in promoted, -v.pk),
    )
    return [(v, v.pk in promoted) for v in ordered]


def pairwise_version_for(*, criterion: Criterion, judge: str | None = None, version: int | None = None) -> JudgeVersion:
    """The LLM judge version to compare with: the one named (judge, and version number or its newest), else the
    criterion's promoted version when it is an LLM judge's, else the newest version of its LLM judges. Raises
    PairwiseInputError naming what is missing."""
    versions = JudgeVersion.objects.filter(judge__criterion=criterion).select_related("judge")
    if judge is not None:
        versions = versions.filter(judge__name=judge)
        if version is not None:
            versions = versions.filter(number=version)
        found = versions.order_by("-number").first()
        if found is None:
            what = f"judge {judge!r}" + (f" v{version}" if version is not None else "")
            raise PairwiseInputError(f"judge: no {what} for criterion {criterion.name!r}")
    elif version is not None:
        raise PairwiseInputError("version: name the judge too (judge and version)")
    else:
        promotion = current_promotions(project=criterion.project).get(criterion.pk)
        if promotion is not None and promotion.version.judge.kind == LLMKind.name:
            found = promotion.version
        else:
            found = versions.filter(judge__kind=LLMKind.name).order_by("-created_at", "-pk").first()
        if found is None:
            raise PairwiseInputError(
                f"criterion: {criterion.name!r} has no LLM judge; pairwise comparison asks an LLM judge which "
                "output is better, so create one on the judges page first"
            )
    try:
        pairwise_version_check(found)
    except DomainError as exc:
        raise PairwiseInputError(f"judge: {exc}") from None
    return found


# --- starting one ----------------------------------------------------------------------------------------------


def _shared_cases(baseline: SuiteRun, candidate: SuiteRun) -> QuerySet[SuiteCase]:
    """The candidate's cases whose golden trace the baseline answered too."""
    answered = SuiteCase.objects.filter(run=baseline).values("trace_id")
    return SuiteCase.objects.filter(run=candidate, trace_id__in=answered)


def pairwise_comparison_create(
    *,
    project: Project,
    baseline: SuiteRun,
    candidate: SuiteRun,
    criterion: Criterion,
    version: JudgeVersion,
    user: AbstractBaseUser | None = None,
) -> PairwiseComparison:
    """Check the request and store the queued comparison. Raises PairwiseInputError naming the problem."""
    for field, run in (("baseline_run", baseline), ("candidate_run", candidate)):
        if run.project_id != project.pk:
            raise PairwiseInputError(f"{field}: suite run {run.pk} is not a suite run of {project.slug!r}")
    if baseline.pk == candidate.pk:
        raise PairwiseInputError(f"baseline_run, candidate_run: both name suite run {baseline.pk}; pick two runs")
    if criterion.project_id != project.pk:
        raise PairwiseInputError(f"criterion: {criterion.name!r} is not a criterion of {project.slug!r}")
    if version.judge.criterion_id != criterion.pk:
        raise PairwiseInputError(
            f"judge: {version.judge.name!r} v{version.number} judges {version.judge.criterion.name!r}, "
            f"not {criterion.name!r}"
        )
    try:
        pairwise_version_check(version)
    except DomainError as exc:
        raise PairwiseInputError(f"judge: {exc}") from None
    total = _shared_cases(baseline, candidate).count()
    if total == 0:
        raise PairwiseInputError(
            f"baseline_run, candidate_run: no golden case was answered by both {_run_name(baseline)} and "
            f"{_run_name(candidate)}; there is nothing to compare"
        )
    return PairwiseComparison.objects.create(
        project=project,
        baseline=baseline,
        candidate=candidate,
        criterion=criterion,
        judge_version=version,
        pairs_total=total,
        status=PairwiseComparison.Status.QUEUED,
        created_by=user,
    )


def pairwise_comparison_enqueue(**spec: Any) -> PairwiseComparison:
    """`pairwise_comparison_create(**spec)`, handed to the worker once committed (two LLM calls per golden case can
    take longer than a web request may)."""
    with transaction.atomic():
        comparison = pairwise_comparison_create(**spec)
        run_enqueue(run=comparison)
    return comparison


# --- judging ---------------------------------------------------------------------------------------------------


def _task(trace: Trace) -> TraceInput:
    return TraceInput(external_id=trace.external_id, input=trace.input, context=trace.context)


def _response(trace: Trace, case: SuiteCase) -> TraceInput:
    return TraceInput(external_id=trace.external_id, output=case.output, messages=case.messages)


def pairwise_comparison_execute(*, comparison: PairwiseComparison) -> bool:
    """Claim a stored comparison, judge its pairs not judged yet and write the tally; False when another attempt
    has it. A pair's verdict is unique per comparison: one delivered twice is judged once."""
    if not run_claim(run=comparison):
        return False
    comparison = PairwiseComparison.objects.select_related(
        "project", "baseline", "candidate", "criterion", "judge_version__judge"
    ).get(pk=comparison.pk)
    try:
        with run_working(run=comparison):
            _judge_pending(comparison)
            summary = pairwise_summary(comparison=comparison)
        run_finish(run=comparison, summary=summary, pairs_done=summary["pairs"])
    except Exception as exc:
        run_fail(run=comparison, error=exc)
        raise
    return True


def _judge_pending(comparison: PairwiseComparison) -> None:
    done = set(PairwiseVerdict.objects.filter(comparison=comparison).values_list("trace_id", flat=True))
    baseline_cases = {
        case.trace_id: case
        for case in SuiteCase.objects.filter(run=comparison.baseline).only("id", "trace_id", "output", "messages")
    }
    pending = [
        case
        for case in _shared_cases(comparison.baseline, comparison.candidate)
        .select_related("trace")
        .order_by("id")
        .only("id", "trace_id", "output", "messages", "trace__external_id", "trace__input", "trace__context")
        if case.trace_id not in done
    ]
    size = pairs_per_chunk()
    judged = len(done)
    for start in range(0, len(pending), size):
        chunk = pending[start : start + size]
        pairs = [
            Pair(
                task=_task(case.trace),
                baseline=_response(case.trace, baseline_cases[case.trace_id]),
                candidate=_response(case.trace, case),
            )
            for case in chunk
        ]
        answers = pairwise_ask(version=comparison.judge_version, pairs=pairs)
        _verdicts_write(comparison, [(case.trace_id, a) for case, a in zip(chunk, answers, strict=True)])
        judged += len(chunk)
        run_heartbeat(run=comparison, pairs_done=judged)


def _verdicts_write(comparison: PairwiseComparison, rows: list[tuple[int, PairAnswers]]) -> None:
    with transaction.atomic():
        PairwiseVerdict.objects.bulk_create(
            [
                PairwiseVerdict(
                    comparison=comparison,
                    trace_id=trace_id,
                    outcome=combine(a.baseline_first.preference or None, a.candidate_first.preference or None),
                    baseline_first=a.baseline_first.preference,
                    baseline_first_reasoning=a.baseline_first.reasoning[:MAX_REASONING_CHARS],
                    candidate_first=a.candidate_first.preference,
                    candidate_first_reasoning=a.candidate_first.reasoning[:MAX_REASONING_CHARS],
                    error="; ".join(
                        f"{order} first: {answer.error}"
                        for order, answer in (("baseline", a.baseline_first), ("candidate", a.candidate_first))
                        if answer.error
                    ),
                    prompt_tokens=a.baseline_first.prompt_tokens + a.candidate_first.prompt_tokens,
                    completion_tokens=a.baseline_first.completion_tokens + a.candidate_first.completion_tokens,
                )
                for trace_id, a in rows
            ],
            ignore_conflicts=True,  # a pair a concurrent attempt wrote first
        )


def pairwise_summary(*, comparison: PairwiseComparison) -> dict[str, Any]:
    """The tally of the stored verdicts, with the judge, the runs and what the answers cost (tokens of answers
    read from the store are not counted: they cost nothing this time)."""
    rows = list(
        PairwiseVerdict.objects.filter(comparison=comparison).values_list(
            "baseline_first", "candidate_first", "prompt_tokens", "completion_tokens"
        )
    )
    counted = tally((first or None, second or None) for first, second, _, _ in rows)
    prompt_tokens = sum(r[2] for r in rows)
    completion_tokens = sum(r[3] for r in rows)
    version = comparison.judge_version
    return {
        **counted.as_dict(),
        "criterion": comparison.criterion.name,
        "judge": version.judge.name,
        "version": version.number,
        "model": version.config.get("model"),
        "baseline_run": comparison.baseline_id,
        "candidate_run": comparison.candidate_id,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost_usd": pairwise_cost(version, prompt_tokens, completion_tokens),
    }


# --- reads for the pages and the API ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PairwiseView:
    comparison: PairwiseComparison
    disagreed: list[PairwiseVerdict]  # inconsistent pairs first, then errors, each in golden-case order
    disagreed_capped: bool


def pairwise_comparisons(*, baseline: SuiteRun, candidate: SuiteRun, shown: int) -> list[PairwiseView]:
    """The comparisons of these two runs (this way round), newest first, with up to `shown` pairs whose orders
    disagreed (or failed) each."""
    comparisons = PairwiseComparison.objects.filter(baseline=baseline, candidate=candidate).select_related(
        "criterion", "judge_version__judge", "created_by", "baseline", "candidate"
    )
    views = []
    for comparison in comparisons.order_by("-created_at", "-id"):
        rows = list(pairwise_disagreements(comparison=comparison)[: shown + 1])
        views.append(PairwiseView(comparison=comparison, disagreed=rows[:shown], disagreed_capped=len(rows) > shown))
    return views


def pairwise_disagreements(*, comparison: PairwiseComparison) -> QuerySet[PairwiseVerdict]:
    """The pairs whose two orders disagreed, then those with an error, with their traces."""
    return (
        PairwiseVerdict.objects.filter(comparison=comparison)
        .filter(Q(outcome=PairwiseVerdict.Outcome.INCONSISTENT) | Q(outcome=PairwiseVerdict.Outcome.ERROR))
        .select_related("trace")
        .order_by("-outcome", "id")  # "inconsistent" sorts after "error": descending puts it first
    )
