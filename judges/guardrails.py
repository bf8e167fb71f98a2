"""Guardrails from aligned checks (docs/guardrails.md): the expert marks an assertion judge version guardrail-ready
when its runs show it almost never fails what the expert passed; the project's guardrail-ready checks then run
inline on an application's answers (`POST /api/v1/projects/{slug}/guardrails/check`) or are exported as a
self-contained module (`manage.py export_guardrails`).

Guardrails are not evaluators: they block an answer, so a false positive is a production bug. Hence the rule (RULE):
only assertion checks (deterministic, milliseconds), and only when the latest finished dev run and the latest
finished test run each have a TPR (the expert's passes the check passes) at or above the project's guardrail bar
(99% by default, GuardrailBar), with no errors; the 95% interval is shown beside each.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import Project
from annotation.services import DomainError
from core import user_regex
from judges.evidence import RateCheck, bound_percent
from judges.models import (
    DEFAULT_GUARDRAIL_MIN_TPR,
    GuardrailBar,
    GuardrailMark,
    Judge,
    JudgeRun,
    JudgeVersion,
)
from judges.providers import checks
from judges.stats import proportion_interval

RULE = (
    "An assertion check is guardrail-ready when its latest finished dev run and its latest finished test run each "
    "pass at least the guardrail bar's share of what the expert passed (TPR), with no errors: a guardrail blocks "
    "answers inline, so failing a good answer is a production bug. The expert marks it; the mark can be revoked."
)
# The bar is a TPR near 1; below a coin it would mean nothing, and 100% is shown by no finite run.
BAR_MIN_EXCLUSIVE, BAR_MAX_EXCLUSIVE = 0.5, 1.0
BAR_RANGE_ERROR = "must be above 0.5 and below 1 (such as 0.99)"


class GuardrailRefused(DomainError):
    """The version may not be marked guardrail-ready; the message says why and what would change that."""


# --- the bar ---------------------------------------------------------------------------------------------------------


def guardrail_bar(*, project: Project | int) -> float:
    """The TPR a check's dev and test runs must reach: the expert's setting, else the default (99%). `project` may
    be its id (a page that has a judge need not load its project)."""
    project_id = project if isinstance(project, int) else project.pk
    stored = GuardrailBar.objects.filter(project_id=project_id).values_list("min_tpr", flat=True).first()
    return DEFAULT_GUARDRAIL_MIN_TPR if stored is None else stored


@transaction.atomic
def guardrail_bar_set(*, project: Project, min_tpr: float, user: AbstractBaseUser | None = None) -> float:
    """Sets the project's guardrail bar (the expert; the view checks). Current marks keep the bar they were made
    under (it is on their record)."""
    # Written so that NaN fails too: every comparison with it is false.
    if not BAR_MIN_EXCLUSIVE < min_tpr < BAR_MAX_EXCLUSIVE:
        raise DomainError(f"guardrail min_tpr: {BAR_RANGE_ERROR}, got {min_tpr} for project {project.slug!r}")
    GuardrailBar.objects.update_or_create(project=project, defaults={"min_tpr": min_tpr})
    return min_tpr


def bar_percent(min_tpr: float) -> str:
    """ "99%", "99.5%", "98.9%": near 1 a whole percent would round 99.5% up to 100%, 98.9% up to 99%."""
    return f"{min_tpr * 100:.1f}".removesuffix(".0") + "%"


# --- readiness -------------------------------------------------------------------------------------------------------


def tpr_check(report: dict[str, Any] | None, min_tpr: float) -> RateCheck | None:
    """The run's TPR against the bar; None when the run saw no expert pass (nothing to measure it on)."""
    report = report or {}
    tp, fn = report.get("tp"), report.get("fn")
    if not isinstance(tp, int) or not isinstance(fn, int) or tp < 0 or fn < 0 or tp + fn == 0:
        return None
    return RateCheck("TPR", "pass", tp, tp + fn, min_tpr)


def interval_text(rate: RateCheck) -> str:
    """ "TPR 98.9% (89/90), 95% interval 93.9%–100.0%": to the decimal, since the bar is near 100% (a whole percent
    would print 89/90 as the 99% it is under)."""
    low, high = proportion_interval(rate.successes, rate.n) or (0.0, 1.0)
    upper = "100%" if high >= 1 else f"{high:.1%}"
    return f"TPR {bar_percent(rate.value)} ({rate.successes}/{rate.n}), 95% interval {bound_percent(low)}–{upper}"


@dataclass(frozen=True)
class Readiness:
    """Whether a version may be marked guardrail-ready, with the runs that show it (or why not)."""

    ready: bool
    reason: str
    min_tpr: float
    dev_run: JudgeRun | None = None
    test_run: JudgeRun | None = None
    dev_tpr: RateCheck | None = None
    test_tpr: RateCheck | None = None

    @property
    def evidence(self) -> list[tuple[str, JudgeRun | None, RateCheck | None]]:
        return [("dev", self.dev_run, self.dev_tpr), ("test", self.test_run, self.test_tpr)]


def latest_runs(version_ids: Iterable[int]) -> dict[tuple[int, str], JudgeRun]:
    """(version id, "dev" or "test") → that version's latest finished run on the split: one query for any number of
    versions (the pages show many)."""
    runs = JudgeRun.objects.filter(
        version_id__in=list(version_ids),
        split__in=[JudgeRun.Split.DEV, JudgeRun.Split.TEST],
        status=JudgeRun.Status.DONE,
    ).order_by("version_id", "split", "-finished_at", "-id")
    latest: dict[tuple[int, str], JudgeRun] = {}
    for run in runs:
        latest.setdefault((run.version_id, run.split), run)
    return latest


def guardrail_readiness(
    version: JudgeVersion,
    *,
    judge: Judge | None = None,
    min_tpr: float | None = None,
    runs: dict[tuple[int, str], JudgeRun] | None = None,
) -> Readiness:
    """The version's latest finished dev and test runs against the guardrail bar (RULE). The pages pass the judge,
    the bar and the runs (`latest_runs`) they read once for all versions."""
    judge = judge or version.judge
    if min_tpr is None:
        min_tpr = guardrail_bar(project=judge.project_id)
    if judge.kind != Judge.Kind.ASSERTION:
        return Readiness(
            False,
            f"{judge.name} is a {judge.kind} judge: only assertion checks can be guardrails (they run inline in "
            "milliseconds, with no model to call).",
            min_tpr,
        )
    if runs is None:
        runs = latest_runs([version.pk])
    name = f"{judge.name} v{version.number}"
    found: dict[str, tuple[JudgeRun | None, RateCheck | None]] = {}
    for split in (JudgeRun.Split.DEV, JudgeRun.Split.TEST):
        run = runs.get((version.pk, split))
        found[split] = (run, None if run is None else tpr_check(run.report, min_tpr))
    (dev_run, dev_rate), (test_run, test_rate) = found["dev"], found["test"]

    def refuse(reason: str) -> Readiness:
        return Readiness(False, reason, min_tpr, dev_run, test_run, dev_rate, test_rate)

    for split in (JudgeRun.Split.DEV, JudgeRun.Split.TEST):
        run, rate = found[split]
        if run is None:
            return refuse(f"{name} has no finished run on the {split} split: run it on {split} first.")
        errors = (run.report or {}).get("errors") or 0
        if errors:
            return refuse(
                f"The {split} run of {name} has {errors} error{'s' if errors != 1 else ''}: a guardrail must "
                "answer every trace (see the run's judgments)."
            )
        if rate is None:
            return refuse(
                f"The {split} run of {name} saw no trace the expert passed, so it cannot show that the check "
                "does not fail good answers: label passes on that split."
            )
        if not rate.reaches:
            misses = rate.n - rate.successes
            return refuse(
                f"On {split}, {name} has {interval_text(rate)}: it fails {misses} of the {rate.n} traces the "
                f"expert passed; the guardrail bar is TPR ≥ {bar_percent(min_tpr)}."
            )
    assert dev_rate is not None and test_rate is not None  # each split passed the checks above
    return Readiness(
        True,
        f"On dev {interval_text(dev_rate)}; on test {interval_text(test_rate)}: at or above the guardrail bar "
        f"(TPR ≥ {bar_percent(min_tpr)}).",
        min_tpr,
        dev_run,
        test_run,
        dev_rate,
        test_rate,
    )


# --- marking ---------------------------------------------------------------------------------------------------------


@transaction.atomic
def guardrail_mark(*, version: JudgeVersion, user: AbstractBaseUser | None = None, comment: str = "") -> GuardrailMark:
    """Marks the version guardrail-ready on the evidence of its runs (RULE), by `user` (the expert; the view
    checks). Ends the judge's previous mark, if any: one version per judge runs as a guardrail."""
    judge = Judge.objects.select_for_update().select_related("project").get(pk=version.judge_id)
    current = GuardrailMark.objects.filter(judge=judge, revoked_at=None).first()
    if current is not None and current.version_id == version.pk:
        raise GuardrailRefused(f"{version} is already guardrail-ready (marked {current.marked_at:%Y-%m-%d %H:%M} UTC).")
    readiness = guardrail_readiness(version)
    if not readiness.ready:
        raise GuardrailRefused(readiness.reason)
    now = timezone.now()
    if current is not None:
        GuardrailMark.objects.filter(pk=current.pk).update(revoked_at=now, revoked_by=user)
    return GuardrailMark.objects.create(
        project=judge.project,
        judge=judge,
        version=version,
        dev_run=readiness.dev_run,
        dev_report=readiness.dev_run.report if readiness.dev_run else {},
        test_run=readiness.test_run,
        test_report=readiness.test_run.report if readiness.test_run else {},
        min_tpr=readiness.min_tpr,
        comment=comment,
        marked_by=user,
        marked_at=now,
    )


@transaction.atomic
def guardrail_revoke(*, version: JudgeVersion, user: AbstractBaseUser | None = None) -> GuardrailMark | None:
    """Ends the version's guardrail mark; the mark stays on record. None when it had none."""
    mark = GuardrailMark.objects.select_for_update().filter(version=version, revoked_at=None).first()
    if mark is None:
        return None
    mark.revoked_at = timezone.now()
    mark.revoked_by = user
    mark.save(update_fields=["revoked_at", "revoked_by"])
    return mark


# --- reads for the pages ---------------------------------------------------------------------------------------------


def current_guardrail_marks(*, project: Project) -> list[GuardrailMark]:
    """The project's guardrail-ready versions, by criterion and judge."""
    return list(
        GuardrailMark.objects.filter(project=project, revoked_at=None)
        .select_related("version__judge__criterion", "marked_by")
        .order_by("judge__criterion__position", "judge__name")
    )


HISTORY_SHOWN = 50


def guardrail_history(*, project: Project, limit: int = HISTORY_SHOWN) -> list[GuardrailMark]:
    """The project's marks, current and revoked, newest first: who marked what, when, on which runs, and who
    revoked it."""
    return list(
        GuardrailMark.objects.filter(project=project)
        .select_related("version__judge__criterion", "marked_by", "revoked_by")
        .order_by("-marked_at", "-id")[:limit]
    )


@dataclass
class VersionGuardrail:
    """One version's guardrail state on the judge page: its current mark, or whether it could be marked and why."""

    readiness: Readiness
    mark: GuardrailMark | None = None

    @property
    def is_current(self) -> bool:
        return self.mark is not None


def judge_guardrail_states(*, judge: Judge, versions: Iterable[JudgeVersion]) -> dict[int, VersionGuardrail]:
    """Each shown version's guardrail state, by number (assertion judges only: {} for other kinds)."""
    if judge.kind != Judge.Kind.ASSERTION:
        return {}
    versions = list(versions)
    min_tpr = guardrail_bar(project=judge.project_id)
    marks = {
        mark.version_id: mark
        for mark in GuardrailMark.objects.filter(judge=judge, revoked_at=None).select_related("marked_by")
    }
    runs = latest_runs(version.pk for version in versions)
    return {
        version.number: VersionGuardrail(
            guardrail_readiness(version, judge=judge, min_tpr=min_tpr, runs=runs), marks.get(version.pk)
        )
        for version in versions
    }


# --- running the checks inline ---------------------------------------------------------------------------------------


@dataclass
class _Entry:
    version_ids: tuple[int, ...]
    # (criterion, check, version) and the prepared check, for checks.guardrail_answer.
    prepared: list[tuple[dict[str, Any], checks.Check]] = field(default_factory=list)
    # Stored configs that cannot be prepared (never expected: configs are validated when a version is made).
    broken: list[dict[str, Any]] = field(default_factory=list)


# In-process, per project: the prepared checks of the set of guardrail-ready version ids they were built from. A
# version is immutable, so the set of ids is the whole key: a mark or a revocation changes it, and the next request
# builds again. Per process (each gunicorn worker builds its own on its first request).
_compiled: dict[int, _Entry] = {}
_compiled_lock = threading.Lock()


def _compile(version_ids: tuple[int, ...]) -> _Entry:
    entry = _Entry(version_ids)
    versions = JudgeVersion.objects.filter(pk__in=version_ids).select_related("judge__criterion")
    for version in sorted(versions, key=lambda v: (v.judge.criterion.position, v.judge.name)):
        row = {"criterion": version.judge.criterion.name, "check": version.judge.name, "version": version.number}
        try:
            entry.prepared.append((row, checks.Check(version.config)))
        except Exception as exc:  # noqa: BLE001 - a broken stored config is reported on each request, never raised
            entry.broken.append({**row, "detail": f"the stored config cannot be used ({type(exc).__name__}: {exc})"})
    return entry


def project_guardrails(*, project_id: int) -> _Entry:
    """The project's guardrail-ready checks, prepared: one query for the current version ids, and the build only
    when that set changed."""
    ids = tuple(
        sorted(
            GuardrailMark.objects.filter(project_id=project_id, revoked_at=None).values_list("version_id", flat=True)
        )
    )
    entry = _compiled.get(project_id)
    if entry is not None and entry.version_ids == ids:
        return entry
    entry = _compile(ids) if ids else _Entry(ids)
    with _compiled_lock:
        _compiled[project_id] = entry
    return entry


def guardrails_check(
    *, project_id: int, output: str, input: str = "", messages: list[Any] | None = None
) -> dict[str, Any]:
    """Runs every guardrail-ready check of the project on one answer (checks.guardrail_answer, the code the exported
    module runs too): `allowed` is false when any check fails it. A check that cannot decide is an error that does
    not block."""
    entry = project_guardrails(project_id=project_id)
    answer = checks.guardrail_answer(
        entry.prepared, output=output, input=input, messages=messages, regex_seconds=user_regex.timeout_seconds()
    )
    if entry.broken:
        answer["errors"].extend(entry.broken)
        answer["checks"] += len(entry.broken)
    return answer


@dataclass(frozen=True)
class JudgeGuardrailRow:
    """One assertion judge on the judges page: its current guardrail mark, or why its latest version is not one."""

    judge: Judge
    mark: GuardrailMark | None
    version: JudgeVersion | None
    readiness: Readiness | None


def guardrails_overview(*, project: Project) -> list[JudgeGuardrailRow]:
    """Every assertion judge of the project: the marked version, or the latest version and why it is not ready."""
    min_tpr = guardrail_bar(project=project)
    marks = {mark.judge_id: mark for mark in current_guardrail_marks(project=project)}
    judges = list(Judge.objects.filter(project=project, kind=Judge.Kind.ASSERTION).select_related("criterion"))
    # Each unmarked judge's latest version, and those versions' latest runs: a query each, whatever the count.
    latest: dict[int, JudgeVersion] = {}
    unmarked = [judge.pk for judge in judges if judge.pk not in marks]
    for version in JudgeVersion.objects.filter(judge_id__in=unmarked).order_by("judge_id", "-number"):
        latest.setdefault(version.judge_id, version)
    runs = latest_runs(version.pk for version in latest.values()) if latest else {}
    rows = []
    for judge in judges:
        mark = marks.get(judge.pk)
        if mark is not None:
            rows.append(JudgeGuardrailRow(judge, mark, mark.version, None))
            continue
        version = latest.get(judge.pk)
        readiness = None if version is None else guardrail_readiness(version, judge=judge, min_tpr=min_tpr, runs=runs)
        rows.append(JudgeGuardrailRow(judge, None, version, readiness))
    return rows
