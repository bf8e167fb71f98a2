"""Reads for the suites pages: the golden set's members and history a page at a time, a suite run's failing cases
per criterion, and two suite runs side by side. No writes here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q, QuerySet

from annotation.models import Criterion, Project, Trace
from judges.comparison import RateWithInterval, RunComparison, compare_runs
from suites.golden import golden_entries, golden_versions
from suites.models import GoldenEntry, GoldenSetVersion, SuiteCase, SuiteRun, SuiteVerdict

# Keys name finished runs, whose verdicts never change; this only bounds how long an unopened comparison stays cached.
COMPARE_CACHE_SECONDS = 24 * 3600


# --- the golden-set page -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoldenMembersPage:
    members: list[GoldenEntry]  # newest entry first, with trace and who added it
    next_after: int | None  # the entry id the next page starts below, None on the last page


def golden_members_page(
    *, project: Project, version: int, reason: str = "", after: int | None = None, size: int
) -> GoldenMembersPage:
    """A page of the members of a version (of one reason, when given), keyset on the entry id, newest first."""
    entries = golden_entries(project=project, version=version)
    if reason:
        entries = entries.filter(reason=reason)
    if after:
        entries = entries.filter(id__lt=after)
    # The page's entry ids first, from the entries table alone; then their traces. In one query the planner may
    # join every member's (wide) trace row before sorting: 300 ms instead of 4 at 5,000 members.
    ids = list(entries.order_by("-id").values_list("id", flat=True)[: size + 1])
    members = list(GoldenEntry.objects.filter(id__in=ids[:size]).select_related("trace", "added_by").order_by("-id"))
    return GoldenMembersPage(members=members, next_after=ids[size - 1] if len(ids) > size else None)


@dataclass(frozen=True)
class GoldenHistoryPage:
    versions: list[GoldenSetVersion]  # newest first
    older_than: int | None  # the version number the next page starts below, None on the last page
    shown: GoldenSetVersion | None  # the record of the version whose members the page shows


def golden_history_page(*, project: Project, shown: int, before: int | None = None, size: int) -> GoldenHistoryPage:
    """A page of the version history, newest first (below `before`), and the record of version `shown`."""
    history = golden_versions(project=project)
    if before:
        history = history.filter(number__lt=before)
    page = list(history[: size + 1])
    older_than = page[size - 1].number if len(page) > size else None
    page = page[:size]
    record = next((v for v in page if v.number == shown), None)
    if record is None and shown:
        record = golden_versions(project=project).filter(number=shown).first()
    return GoldenHistoryPage(versions=page, older_than=older_than, shown=record)


# --- suite runs ------------------------------------------------------------------------------------------------


def suite_runs(*, project: Project) -> QuerySet[SuiteRun]:
    """The project's suite runs, newest first, with their baseline and who ran them."""
    return (
        SuiteRun.objects.filter(project=project).select_related("baseline", "created_by").order_by("-created_at", "-id")
    )


# --- one suite run ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailingCase:
    external_id: str
    input: str
    output: str
    baseline_output: str | None
    verdict: str
    baseline_verdict: str
    reasoning: str
    error: str

    @property
    def regressed(self) -> bool:
        return self.verdict == "fail" and self.baseline_verdict == "pass"


def suite_run_failing_cases(*, run: SuiteRun, criterion: Criterion, limit: int) -> tuple[list[FailingCase], int]:
    """The first `limit` failing (or errored) cases of a criterion, regressions first, and how many failed in all."""
    verdicts = SuiteVerdict.objects.filter(case__run=run, criterion=criterion, verdict__in=["fail", ""])
    total = verdicts.count()
    rows = list(
        verdicts.select_related("case__trace")
        .only(
            "verdict",
            "baseline_verdict",
            "reasoning",
            "error",
            "case__output",
            "case__trace__external_id",
            "case__trace__input",
            "case__trace__output",
        )
        .order_by("-baseline_verdict", "case_id")[:limit]
    )
    # -baseline_verdict sorts "pass" before "fail", "error" and "": the regressions come first.
    baseline_outputs: dict[int, str] = {}
    if run.baseline_id is not None:
        baseline_outputs = dict(
            SuiteCase.objects.filter(run_id=run.baseline_id, trace_id__in=[v.case.trace_id for v in rows]).values_list(
                "trace_id", "output"
            )
        )
    cases = [
        FailingCase(
            external_id=v.case.trace.external_id,
            input=v.case.trace.input,
            output=v.case.output,
            baseline_output=baseline_outputs.get(v.case.trace_id) if run.baseline_id else v.case.trace.output,
            verdict=v.verdict or "error",
            baseline_verdict=v.baseline_verdict,
            reasoning=v.reasoning,
            error=v.error,
        )
        for v in rows
    ]
    return cases, total


@dataclass(frozen=True)
class CriterionFailures:
    row: dict[str, Any]  # the criterion's numbers in the run's summary
    cases: list[FailingCase]
    failing_count: int


def suite_run_failures(*, run: SuiteRun, limit: int) -> list[CriterionFailures]:
    """Per criterion of the run's summary, in its order, the first `limit` failing cases and how many failed. A
    criterion is found by id, so one renamed since the run still shows its cases; one deleted since shows none."""
    criteria = {c.pk: c for c in Criterion.objects.filter(project_id=run.project_id)}
    failures = []
    for row in (run.summary or {}).get("criteria", []):
        criterion = criteria.get(row.get("criterion_id"))
        cases, count = suite_run_failing_cases(run=run, criterion=criterion, limit=limit) if criterion else ([], 0)
        failures.append(CriterionFailures(row=row, cases=cases, failing_count=count))
    return failures


# --- two suite runs side by side ------------------------------------------------------------------------------


def suite_run_of(*, project: Project, run_id: int) -> SuiteRun | None:
    return SuiteRun.objects.filter(pk=run_id, project=project).first()


def suite_pass_counts(*, run: SuiteRun) -> dict[int, tuple[int, int]]:
    """criterion id → (passes, cases with a verdict) in the run; errors (empty verdict) are neither."""
    rows = (
        SuiteVerdict.objects.filter(case__run=run)
        .exclude(verdict="")
        .values("criterion_id")
        .annotate(passes=Count("id", filter=Q(verdict="pass")), n=Count("id"))
        .order_by()
    )
    return {row["criterion_id"]: (row["passes"], row["n"]) for row in rows}


def suite_paired_counts(*, run_a: SuiteRun, run_b: SuiteRun) -> dict[int, dict[tuple[str, str], int]]:
    """criterion id → (A's verdict, B's verdict) → count, over the cases of both runs with the same golden trace
    and a verdict (not an error) on the criterion in both."""
    case, verdict = SuiteCase._meta.db_table, SuiteVerdict._meta.db_table
    sql = f"""
        SELECT va.criterion_id, va.verdict, vb.verdict, COUNT(*)
        FROM {case} ca
        JOIN {case} cb ON cb.run_id = %s AND cb.trace_id = ca.trace_id
        JOIN {verdict} va ON va.case_id = ca.id
        JOIN {verdict} vb ON vb.case_id = cb.id AND vb.criterion_id = va.criterion_id
        WHERE ca.run_id = %s AND va.verdict <> '' AND vb.verdict <> ''
        GROUP BY 1, 2, 3
    """  # noqa: S608 — table names come from the models, every value is a parameter
    out: dict[int, dict[tuple[str, str], int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [run_b.pk, run_a.pk])
        for criterion_id, a, b, n in cursor.fetchall():
            out.setdefault(criterion_id, {})[(a, b)] = n
    return out


def suite_flipped_cases(*, run_a: SuiteRun, run_b: SuiteRun, limit: int) -> list[dict[str, Any]]:
    """Cases whose verdict changed between the runs, pass→fail first, then by criterion and trace."""
    case, verdict, trace = SuiteCase._meta.db_table, SuiteVerdict._meta.db_table, Trace._meta.db_table
    sql = f"""
        SELECT va.criterion_id, t.external_id, va.verdict, vb.verdict, vb.reasoning
        FROM {case} ca
        JOIN {case} cb ON cb.run_id = %s AND cb.trace_id = ca.trace_id
        JOIN {verdict} va ON va.case_id = ca.id
        JOIN {verdict} vb ON vb.case_id = cb.id AND vb.criterion_id = va.criterion_id
        JOIN {trace} t ON t.id = ca.trace_id
        WHERE ca.run_id = %s AND va.verdict <> '' AND vb.verdict <> '' AND va.verdict <> vb.verdict
        ORDER BY CASE WHEN va.verdict = 'pass' THEN 0 ELSE 1 END, va.criterion_id, ca.trace_id
        LIMIT %s
    """  # noqa: S608 — table names come from the models, every value is a parameter
    with connection.cursor() as cursor:
        cursor.execute(sql, [run_b.pk, run_a.pk, limit])
        rows = cursor.fetchall()
    return [
        {"criterion_id": c, "external_id": external_id, "a": a, "b": b, "reasoning": reasoning}
        for c, external_id, a, b, reasoning in rows
    ]


def _compare_counts(
    project: Project, run_a: SuiteRun, run_b: SuiteRun, flips_limit: int
) -> tuple[Any, Any, Any, list[dict[str, Any]]]:
    """Pass counts of each run, paired counts and the first flips. A finished run's verdicts never change, so for two
    finished runs these are cached: a golden set of 20,000 cases × 3 criteria takes about a second to count."""

    def compute() -> tuple[Any, Any, Any, list[dict[str, Any]]]:
        return (
            suite_pass_counts(run=run_a),
            suite_pass_counts(run=run_b),
            suite_paired_counts(run_a=run_a, run_b=run_b),
            suite_flipped_cases(run_a=run_a, run_b=run_b, limit=flips_limit),
        )

    finished = {SuiteRun.Status.DONE, SuiteRun.Status.FAILED}
    if run_a.status not in finished or run_b.status not in finished:
        return compute()
    # ISO times: str() of a datetime has a space, which cache backends warn about (memcached refuses such keys).
    stamps = ":".join(run.finished_at.isoformat() if run.finished_at else "" for run in (run_a, run_b))
    key = f"{project.cache_key('suite-compare')}:{run_a.pk}:{run_b.pk}:{stamps}:{flips_limit}"
    return cache.get_or_set(key, compute, timeout=COMPARE_CACHE_SECONDS)


@dataclass(frozen=True)
class SuiteCriterionComparison:
    criterion: Criterion
    c: RunComparison


@dataclass(frozen=True)
class SuiteRunComparison:
    name_a: str
    name_b: str
    rows: list[SuiteCriterionComparison]  # criteria in their order
    flips: list[dict[str, Any]]  # each with its "criterion" (None when deleted since)
    flips_capped: bool  # more flips than `flips`
    total_flips: int
    regressions: int  # criteria on which B is significantly worse


def _run_name(run: SuiteRun) -> str:
    return run.name or f"run #{run.pk}"


def suite_run_comparison(*, project: Project, run_a: SuiteRun, run_b: SuiteRun, flips_shown: int) -> SuiteRunComparison:
    """Per criterion either run has verdicts on: each run's pass rate, McNemar on the paired cases and the verdict
    (A the baseline, B the candidate); and the first `flips_shown` flipped cases."""
    counts_a, counts_b, pairs, flips = _compare_counts(project, run_a, run_b, flips_shown + 1)
    criteria = {c.pk: c for c in Criterion.objects.filter(pk__in=set(counts_a) | set(counts_b), project=project)}
    name_a, name_b = _run_name(run_a), _run_name(run_b)
    if name_a == name_b:
        name_a, name_b = f"{name_a} (#{run_a.pk})", f"{name_b} (#{run_b.pk})"
    rows = [
        SuiteCriterionComparison(
            criterion=criterion,
            c=compare_runs(
                RateWithInterval(*counts_a.get(criterion.pk, (0, 0))),
                RateWithInterval(*counts_b.get(criterion.pk, (0, 0))),
                pairs.get(criterion.pk, {}),
                name_a=name_a,
                name_b=name_b,
            ),
        )
        for criterion in sorted(criteria.values(), key=lambda c: (c.position, c.pk))
    ]
    # Copies: the cached list is never changed in place.
    shown = [{**flip, "criterion": criteria.get(flip["criterion_id"])} for flip in flips[:flips_shown]]
    return SuiteRunComparison(
        name_a=name_a,
        name_b=name_b,
        rows=rows,
        flips=shown,
        flips_capped=len(flips) > flips_shown,
        total_flips=sum(row.c.pass_to_fail + row.c.fail_to_pass for row in rows),
        regressions=sum(row.c.outcome == "worse" for row in rows),
    )
