"""The regression suite: candidate outputs for the golden inputs, judged by each criterion's promoted judge and
compared, case by case, with a baseline. Used by `manage.py evalsuite` and `POST /api/v1/projects/{slug}/evalsuite`.

The input is checked in full first (every golden id exactly once, well-formed lines, known criteria, a promoted
judge to run, a known baseline); any problem raises SuiteInputError listing each one (`line N: reason`) and
nothing is stored. Then the run and its cases (the candidates) are stored, queued, in one transaction
(`suite_run_create`), and the run is judged — here (`evalsuite_run`: the command, the REST call that waits) or by
the worker (`suite_run_enqueue`). A suite run is a worker run (core.runs): `suite_run_execute` claims it with a
conditional update and judges outside any transaction (an LLM judge may take minutes), writing each criterion's
verdicts in one transaction with bulk inserts as soon as they are judged, so a run taken over after its worker died
keeps the criteria already judged and judges only the rest; the result is written last.

The baseline is, by default, the golden traces' own stored outputs, judged in the same run by the same versions,
so there is always a paired comparison. `baseline=` names an earlier run (its name, or its id); when a criterion's
promoted version has changed since, the baseline's outputs are judged again with the current version, so the
comparison is of outputs only, never of judges (`rejudged` lists those criteria).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import Criterion, Project, Trace
from annotation.services import DomainError
from annotation.trace_format import RawRecord
from core.runs import run_claim, run_enqueue, run_fail, run_finish, run_working
from judges import kinds
from judges.kinds import version_scorer
from judges.models import MAX_REASONING_CHARS, JudgeVersion, Promotion
from judges.promotions import current_promotions
from judges.providers import Outcome, TraceInput
from suites.floors import suite_floors
from suites.golden import golden_entries, golden_set_for
from suites.junit import CaseVerdict
from suites.models import SuiteCase, SuiteRun, SuiteVerdict
from suites.suite_stats import SKIP, criterion_numbers, suite_warnings

DEFAULT_ALPHA = 0.05
CANDIDATE_KEYS = ("id", "output", "messages", "metadata")
# Errors listed in full; beyond this a count stands for the rest, so a wrong file does not print 100,000 lines.
MAX_ERRORS = 50
BATCH = 2_000


class SuiteInputError(DomainError):
    """Bad input for a suite run; `errors` holds one message per problem (`line N: reason` for candidate lines)."""

    def __init__(self, errors: list[str]) -> None:
        shown = errors[:MAX_ERRORS]
        if len(errors) > MAX_ERRORS:
            shown.append(f"… and {len(errors) - MAX_ERRORS} more problems")
        self.errors = shown
        super().__init__("\n".join(shown))


@dataclass(frozen=True)
class Candidate:
    line: int
    external_id: str
    output: str
    messages: list[Any] | None
    metadata: dict[str, Any] | None


@dataclass
class SuiteResult:
    run: SuiteRun
    result: dict[str, Any]
    cases: list[CaseVerdict] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return self.result["exit_code"]


# --- parsing ---------------------------------------------------------------------------------------------------


def _parse_candidate(raw: RawRecord) -> Candidate:
    """One candidate line; raises ValueError with the reason."""
    if raw.error is not None:
        raise ValueError(raw.error)
    value = raw.value
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object with id and output, got {type(value).__name__}")
    unknown = sorted(set(value) - set(CANDIDATE_KEYS))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} (fields: {', '.join(CANDIDATE_KEYS)})")
    external_id = value.get("id")
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)
    if not isinstance(external_id, str) or not external_id:
        raise ValueError("id: the golden trace id is required")
    output, messages, metadata = value.get("output"), value.get("messages"), value.get("metadata")
    if output is None and messages is None:
        raise ValueError("needs an output or messages (the candidate's answer)")
    if output is not None and not isinstance(output, str):
        raise ValueError(f"output: expected a string, got {type(output).__name__}")
    if messages is not None and not (isinstance(messages, list) and all(isinstance(m, dict) for m in messages)):
        raise ValueError("messages: expected a list of message objects")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"metadata: expected an object, got {type(metadata).__name__}")
    return Candidate(raw.line, external_id, output or "", messages, metadata)


def parse_candidates(records: Iterable[RawRecord], golden_ids: set[str]) -> list[Candidate]:
    """Every candidate, checked against the golden set: each golden id exactly once and nothing else.
    Raises SuiteInputError listing every problem."""
    errors: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    candidates: list[Candidate] = []
    for raw in records:
        try:
            candidate = _parse_candidate(raw)
        except ValueError as exc:
            errors.append((raw.line, f"line {raw.line}: {exc}"))
            named = raw.value.get("id") if isinstance(raw.value, dict) else None
            if isinstance(named, str) and named:
                seen.setdefault(named, raw.line)  # reported once, for this line; not again as missing
            continue
        if candidate.external_id in seen:
            errors.append(
                (
                    raw.line,
                    f"line {raw.line}: id {candidate.external_id!r} is already on line {seen[candidate.external_id]}",
                )
            )
            continue
        seen[candidate.external_id] = raw.line
        if candidate.external_id not in golden_ids:
            errors.append((raw.line, f"line {raw.line}: id {candidate.external_id!r} is not in the golden set"))
            continue
        candidates.append(candidate)
    messages = [message for _, message in sorted(errors, key=lambda e: e[0])]
    missing = sorted(golden_ids - set(seen))
    if missing:
        listed = ", ".join(repr(i) for i in missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        messages.append(
            f"missing: no candidate for {len(missing)} golden id{'s' if len(missing) != 1 else ''}: {listed}"
        )
    if not seen and not errors:
        messages.append("the candidates are empty: expected one line per golden id")
    if messages:
        raise SuiteInputError(messages)
    return candidates


def records_from_list(items: list[object]) -> list[RawRecord]:
    """Candidates given as a list (the REST body): item i is "line" i + 1 in the messages."""
    return [RawRecord(line=i + 1, value=item) for i, item in enumerate(items)]


# --- selecting judges and the baseline -------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    criterion: Criterion
    version: JudgeVersion
    promotion: Promotion


def judge_evidence(promotion: Promotion) -> dict[str, Any] | None:
    """How far the gate can be trusted: the promoted judge's TPR and TNR with their 95% intervals on the split it was
    promoted on (test: held out, never tuned on), from the promotion's evidence."""
    report = promotion.report or {}
    if report.get("tpr") is None or report.get("tnr") is None:
        return None
    ci = report.get("ci") or {}
    return {
        "split": promotion.evidence_split,
        "n": report.get("n"),
        "tpr": report["tpr"],
        "tnr": report["tnr"],
        "ci": {"tpr": ci.get("tpr"), "tnr": ci.get("tnr")},
        # A version made under an earlier definition of its criterion: its evidence answered other words.
        "stale": kinds.stale_definition(promotion.version, criterion_version=promotion.criterion.version) or None,
    }


def _plan(
    project: Project, *, criteria: list[str] | None, include_llm: bool
) -> tuple[list[Planned], list[dict[str, str]]]:
    all_criteria = list(Criterion.objects.filter(project=project).order_by("position", "id"))
    if criteria is not None:
        by_name = {c.name: c for c in all_criteria}
        unknown = [name for name in criteria if name not in by_name]
        if unknown:
            known = ", ".join(sorted(by_name)) or "none"
            raise SuiteInputError(
                [f"criteria: no criterion {name!r} in project {project.slug!r} (criteria: {known})" for name in unknown]
            )
        wanted = {c.name for c in all_criteria} & set(criteria)
        all_criteria = [c for c in all_criteria if c.name in wanted]
    promotions = current_promotions(project=project)
    planned: list[Planned] = []
    not_covered: list[dict[str, str]] = []
    for criterion in all_criteria:
        promotion = promotions.get(criterion.pk)
        if promotion is None:
            not_covered.append({"criterion": criterion.name, "reason": "no promoted judge"})
            continue
        kind = kinds.get(promotion.version.judge.kind)
        if not kind.judges_new_outputs:
            not_covered.append({"criterion": criterion.name, "reason": f"its promoted judge is {kind.label}"})
            continue
        # A judge that pays for calls to a model blocks no commit by default: the nightly sweep opts in.
        if not kind.local and not include_llm:
            not_covered.append(
                {
                    "criterion": criterion.name,
                    "reason": f"its promoted judge is an {kind.label} judge; run with --include-llm",
                }
            )
            continue
        planned.append(Planned(criterion, promotion.version, promotion))
    if not planned:
        runnable = [k.label for k in kinds.all_kinds() if k.judges_new_outputs and (k.local or include_llm)]
        raise SuiteInputError(
            [
                f"no promoted {_one_of(runnable)} judge to run in project {project.slug!r}"
                + (" among the chosen criteria" if criteria is not None else "")
                + ": promote a judge on the judges page first"
            ]
        )
    return planned, not_covered


def _one_of(words: list[str]) -> str:
    """["a", "b", "c"] → "a, b or c"."""
    return " or ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)


def find_baseline(project: Project, reference: str) -> SuiteRun:
    """An earlier finished run of the project, by its name (the latest of that name) or by its id."""
    runs = SuiteRun.objects.filter(project=project, status=SuiteRun.Status.DONE)
    run = runs.filter(name=reference).order_by("-created_at", "-id").first()
    if run is None and reference.isdigit():
        run = runs.filter(pk=int(reference)).first()
    if run is None:
        raise SuiteInputError(
            [f"baseline: no finished suite run named {reference!r} (or with that id) in {project.slug!r}"]
        )
    return run


# --- judging ---------------------------------------------------------------------------------------------------


def _candidate_input(
    trace: Trace, *, output: str, messages: list[Any] | None, metadata: dict[str, Any] | None
) -> TraceInput:
    return TraceInput(
        external_id=trace.external_id,
        input=trace.input,
        output=output,
        messages=messages,
        context=trace.context,
        metadata=metadata if metadata is not None else trace.metadata,
        # The golden trace's known-good answer: a new release's output is compared with it (reference judges).
        reference=trace.reference,
    )


def _judge_all(version: JudgeVersion, inputs: list[TraceInput], scorers: dict[int, Any]) -> list[Outcome]:
    """The version's outcome for every input. A chunk whose scorer raises becomes error outcomes for that chunk:
    the run reports them (and fails) rather than stopping half way. `scorers` keeps each version's scorer (a
    loaded classifier) for the baseline's turn."""
    if version.pk not in scorers:
        try:
            scorers[version.pk] = version_scorer(version)
        except Exception as exc:  # noqa: BLE001 — e.g. an LLM judge whose few-shot example lost its label
            scorers[version.pk] = exc
    score = scorers[version.pk]
    if isinstance(score, Exception):
        return [Outcome(error=f"{type(score).__name__}: {score}") for _ in inputs]
    outcomes: list[Outcome] = []
    size = kinds.chunk_size(version)  # a classifier is vectorised per chunk, LLM calls run in parallel per chunk
    for start in range(0, len(inputs), size):
        chunk = inputs[start : start + size]
        try:
            outcomes.extend(score(chunk))
        except Exception as exc:  # noqa: BLE001 — any failure of a judge is reported per judgment
            outcomes.extend(Outcome(error=f"{type(exc).__name__}: {exc}") for _ in chunk)
    return outcomes


def _baseline_description(baseline: SuiteRun | None) -> str:
    if baseline is None:
        return "the golden traces' own outputs"
    label = f"{baseline.name!r} (run {baseline.pk})" if baseline.name else f"run {baseline.pk}"
    return f"suite run {label} of {baseline.created_at:%Y-%m-%d %H:%M}"


@dataclass
class _Checked:
    golden_version: int
    order: list[str]
    traces: dict[str, Trace]
    candidates: dict[str, Candidate]
    baseline_run: SuiteRun | None


def _check(
    *,
    project: Project,
    records: Iterable[RawRecord],
    baseline: str | None,
    name: str,
    include_llm: bool,
    criteria: list[str] | None,
    alpha: float,
) -> _Checked:
    """Every check on the input, before anything is stored. Raises SuiteInputError listing every problem."""
    if not 0 < alpha < 1:
        raise SuiteInputError([f"alpha: expected a number between 0 and 1, got {alpha}"])
    if len(name) > SuiteRun._meta.get_field("name").max_length:
        raise SuiteInputError(["name: at most 200 characters"])
    golden = golden_set_for(project)
    if golden.current_version == 0:
        raise SuiteInputError([f"the golden set of {project.slug!r} is empty: add golden traces first"])
    entries = list(golden_entries(project=project, version=golden.current_version))
    if not entries:
        raise SuiteInputError([f"the golden set of {project.slug!r} (v{golden.current_version}) has no traces"])
    traces = {e.trace.external_id: e.trace for e in entries}
    # Every problem at once: a CI log that shows one error per attempt wastes a round trip per problem.
    errors: list[str] = []
    baseline_run, candidates = None, []
    try:
        _plan(project, criteria=criteria, include_llm=include_llm)
    except SuiteInputError as exc:
        errors.extend(exc.errors)
    try:
        baseline_run = find_baseline(project, baseline) if baseline else None
    except SuiteInputError as exc:
        errors.extend(exc.errors)
    try:
        candidates = parse_candidates(records, set(traces))
    except SuiteInputError as exc:
        errors.extend(exc.errors)
    if errors:
        raise SuiteInputError(errors)
    return _Checked(
        golden_version=golden.current_version,
        order=[e.trace.external_id for e in entries],
        traces=traces,
        candidates={c.external_id: c for c in candidates},
        baseline_run=baseline_run,
    )


def suite_run_create(
    *,
    project: Project,
    records: Iterable[RawRecord],
    baseline: str | None = None,
    name: str = "",
    include_llm: bool = False,
    criteria: list[str] | None = None,
    alpha: float = DEFAULT_ALPHA,
    candidates_file: str = "",
    user: AbstractBaseUser | None = None,
) -> SuiteRun:
    """Check the input and store the queued run with its cases (the candidates), in golden order; the verdicts come
    when it is judged. Raises SuiteInputError on bad input (nothing stored)."""
    name = name.strip()
    checked = _check(
        project=project,
        records=records,
        baseline=baseline,
        name=name,
        include_llm=include_llm,
        criteria=criteria,
        alpha=alpha,
    )
    with transaction.atomic():
        run = SuiteRun.objects.create(
            project=project,
            name=name,
            golden_version=checked.golden_version,
            candidates_file=candidates_file[:500],
            baseline=checked.baseline_run,
            include_llm=include_llm,
            status=SuiteRun.Status.QUEUED,
            # What the run was asked for, until the result replaces it.
            summary={"request": {"criteria": criteria, "alpha": alpha}},
            created_by=user,
        )
        SuiteCase.objects.bulk_create(
            [
                SuiteCase(
                    run=run,
                    trace=checked.traces[i],
                    output=checked.candidates[i].output,
                    messages=checked.candidates[i].messages,
                    metadata=checked.candidates[i].metadata or {},
                )
                for i in checked.order
            ],
            batch_size=BATCH,
        )
    return run


def evalsuite_run(**spec: Any) -> SuiteResult:
    """`suite_run_create(**spec)`, judged here and now (the `evalsuite` command, the REST call that waits).
    Raises SuiteInputError on bad input (nothing stored)."""
    run = suite_run_create(**spec)
    outcome = suite_run_execute(run=run)
    if outcome is None:  # a worker starting at that instant took it over; the run is judged there
        raise DomainError(f"suite run {run.pk} was taken over by a worker; see /api/v1/suite-runs/{run.pk}")
    return outcome


def suite_run_enqueue(**spec: Any) -> SuiteRun:
    """`suite_run_create(**spec)`, stored for the worker (LLM judges can take longer than an HTTP request may) and
    handed to it once the row is committed. Raises SuiteInputError on bad input (nothing stored)."""
    with transaction.atomic():
        run = suite_run_create(**spec)
        run_enqueue(run=run)
    return run


def suite_run_execute(*, run: SuiteRun) -> SuiteResult | None:
    """Claim a stored run, judge it and write its verdicts and result; None when another attempt has it.

    The claim is a conditional update, and verdicts are unique per (case, criterion): a run delivered twice is judged
    once, and one resumed after its worker died judges only the criteria that have no verdicts yet."""
    if not run_claim(run=run):
        return None
    run = SuiteRun.objects.select_related("project", "baseline").get(pk=run.pk)
    try:
        with run_working(run=run):
            result, verdict_rows = _judge(run)
        run_finish(run=run, summary=result, exit_code=result["exit_code"])
    except Exception as exc:
        run_fail(run=run, error="; ".join(exc.errors) if isinstance(exc, SuiteInputError) else exc)
        raise
    run.refresh_from_db()
    return SuiteResult(
        run=run,
        result=result,
        cases=[
            CaseVerdict(
                external_id,
                plan.criterion.name,
                outcome.verdict,
                b,
                outcome.reasoning or outcome.skipped,
                outcome.error,
            )
            for external_id, plan, outcome, b in verdict_rows
        ],
    )


def _judge(run: SuiteRun) -> tuple[dict[str, Any], list[tuple[str, Planned, Outcome, str | None]]]:
    """Judge the run criterion by criterion, writing each one's verdicts as soon as they are judged (a criterion
    whose verdicts a lost attempt already wrote is read back, not judged again); the result and the verdict rows."""
    request = (run.summary or {}).get("request", {})
    alpha = request.get("alpha", DEFAULT_ALPHA)
    project = run.project
    planned, not_covered = _plan(project, criteria=request.get("criteria"), include_llm=run.include_llm)
    cases = {
        case.trace.external_id: case
        for case in SuiteCase.objects.filter(run=run).select_related("trace").order_by("id")
    }
    order = list(cases)
    traces = {i: case.trace for i, case in cases.items()}
    candidate_inputs = [
        _candidate_input(
            traces[i], output=cases[i].output, messages=cases[i].messages, metadata=cases[i].metadata or None
        )
        for i in order
    ]
    baseline_run = run.baseline
    baseline_inputs, baseline_verdicts = _baseline_inputs(baseline_run, order, traces)

    criteria_out: list[dict[str, Any]] = []
    verdict_rows: list[tuple[str, Planned, Outcome, str | None]] = []
    rejudged: list[str] = []
    scorers: dict[int, Any] = {}
    floors = suite_floors(project=run.project)
    for plan in planned:
        stored = _verdicts_stored(run, plan, order, cases)
        if stored is None:
            outcomes = _judge_all(plan.version, candidate_inputs, scorers)
            base = _baseline_for(plan, order, baseline_inputs, baseline_verdicts, rejudged, scorers)
            _verdicts_write(run, plan, [(cases[i], o, b) for i, o, b in zip(order, outcomes, base, strict=True)])
        else:
            outcomes, base = [o for o, _ in stored], [b for _, b in stored]
            present = [i for i in order if i in baseline_inputs]
            if baseline_verdicts is not None and not _stored_baseline_matches(plan, present, baseline_verdicts):
                rejudged.append(plan.criterion.name)
        numbers = criterion_numbers(
            [o.verdict or (SKIP if o.skipped else "") for o in outcomes],
            base,
            threshold=floors.get(plan.criterion.pk),
            alpha=alpha,
        )
        judge = plan.version.judge
        criteria_out.append(
            {
                "criterion": plan.criterion.name,
                "criterion_id": plan.criterion.pk,
                "judge": judge.name,
                "kind": judge.kind,
                "version": plan.version.number,
                "judge_evidence": judge_evidence(plan.promotion),
                **numbers,
            }
        )
        verdict_rows.extend(
            (external_id, plan, outcome, b) for external_id, outcome, b in zip(order, outcomes, base, strict=True)
        )
    warnings = suite_warnings(criteria_out, cases=len(order))
    if baseline_run is not None and baseline_run.golden_version != run.golden_version:
        warnings.append(
            f"the baseline ran on golden set v{baseline_run.golden_version}, this run on v{run.golden_version}: "
            "only the cases in both are compared"
        )
    if rejudged:
        warnings.append(
            "the baseline's verdicts for "
            + ", ".join(rejudged)
            + " were not made by the current promoted version: its outputs were judged again with that version, "
            "so the comparison is of outputs only"
        )
    exit_code = 0 if all(c["verdict"] == "pass" for c in criteria_out) else 1
    result: dict[str, Any] = {
        "run_id": run.pk,
        "name": run.name,
        "project": project.slug,
        "golden_version": run.golden_version,
        "cases": len(order),
        "alpha": alpha,
        "include_llm": run.include_llm,
        "baseline": {
            "kind": "run" if baseline_run else "golden_outputs",
            "run_id": baseline_run.pk if baseline_run else None,
            "name": baseline_run.name if baseline_run else None,
            "description": _baseline_description(baseline_run),
            "rejudged": rejudged,
        },
        "criteria": criteria_out,
        "not_covered": not_covered,
        "warnings": warnings,
        "passed": exit_code == 0,
        "exit_code": exit_code,
    }
    return result, verdict_rows


def _verdicts_write(run: SuiteRun, plan: Planned, rows: list[tuple[SuiteCase, Outcome, str | None]]) -> None:
    """One criterion's verdicts (case, outcome, baseline verdict), in one transaction."""
    with transaction.atomic():
        # A takeover after the criterion's promoted version changed: verdicts of the version before make way.
        SuiteVerdict.objects.filter(case__run=run, criterion=plan.criterion).exclude(
            judge_version=plan.version
        ).delete()
        SuiteVerdict.objects.bulk_create(
            [
                SuiteVerdict(
                    case=case,
                    criterion=plan.criterion,
                    judge_version=plan.version,
                    verdict=outcome.verdict,
                    # A skip is stored as no verdict and no error, its reason as the reasoning (_verdicts_stored).
                    reasoning=(outcome.reasoning or outcome.skipped)[:MAX_REASONING_CHARS],
                    error=outcome.error,
                    baseline_verdict="" if baseline is None else baseline or "error",
                )
                for case, outcome, baseline in rows
            ],
            batch_size=BATCH,
            ignore_conflicts=True,
        )


def _verdicts_stored(
    run: SuiteRun, plan: Planned, order: list[str], cases: dict[str, SuiteCase]
) -> list[tuple[Outcome, str | None]] | None:
    """The outcome and baseline verdict per case that an earlier attempt wrote for this plan, in golden order; None
    unless every case has one (a criterion's verdicts are written in one transaction: all or none)."""
    stored = {
        case_id: (verdict, reasoning, error, baseline)
        for case_id, verdict, reasoning, error, baseline in SuiteVerdict.objects.filter(
            case__run=run, criterion=plan.criterion, judge_version=plan.version
        ).values_list("case_id", "verdict", "reasoning", "error", "baseline_verdict")
    }
    if any(cases[i].pk not in stored for i in order):
        return None
    found = []
    for i in order:
        verdict, reasoning, error, baseline = stored[cases[i].pk]
        # As _verdicts_write stores it: "" for a case the baseline lacks, "error" for one it could not judge.
        base = None if baseline == "" else "" if baseline == "error" else baseline
        skipped = reasoning if not verdict and not error else ""
        found.append((Outcome(verdict=verdict, reasoning=reasoning, error=error, skipped=skipped), base))
    return found


def _baseline_inputs(
    baseline_run: SuiteRun | None, order: list[str], traces: dict[str, Trace]
) -> tuple[dict[str, TraceInput], dict[tuple[str, int], tuple[int, str]] | None]:
    """The baseline's input per golden id (absent: not in the baseline), and the baseline run's stored verdicts
    by (golden id, criterion id) → (judge version id, verdict)."""
    if baseline_run is None:
        return {
            i: _candidate_input(traces[i], output=traces[i].output, messages=traces[i].messages, metadata=None)
            for i in order
        }, None
    ids = {t.pk: i for i, t in traces.items()}
    inputs: dict[str, TraceInput] = {}
    case_ids: dict[int, str] = {}
    for case in SuiteCase.objects.filter(run=baseline_run, trace_id__in=list(ids)).only(
        "id", "trace_id", "output", "messages", "metadata"
    ):
        external_id = ids[case.trace_id]
        case_ids[case.pk] = external_id
        inputs[external_id] = _candidate_input(
            traces[external_id], output=case.output, messages=case.messages, metadata=case.metadata or None
        )
    verdicts = {
        (case_ids[case_id], criterion_id): (version_id, verdict)
        for case_id, criterion_id, version_id, verdict in SuiteVerdict.objects.filter(
            case__run=baseline_run, case_id__in=list(case_ids)
        ).values_list("case_id", "criterion_id", "judge_version_id", "verdict")
    }
    return inputs, verdicts


def _baseline_for(
    plan: Planned,
    order: list[str],
    inputs: dict[str, TraceInput],
    stored: dict[tuple[str, int], tuple[int, str]] | None,
    rejudged: list[str],
    scorers: dict[int, Any],
) -> list[str | None]:
    """The baseline verdict per case, by the plan's version: the stored one when the baseline run used the same
    version, else judged now. None for a case the baseline does not have."""
    present = [i for i in order if i in inputs]
    by_id: dict[str, str] = {}
    if _stored_baseline_matches(plan, present, stored):
        by_id = {i: stored[(i, plan.criterion.pk)][1] for i in present}
    else:
        if stored is not None:
            rejudged.append(plan.criterion.name)
        outcomes = _judge_all(plan.version, [inputs[i] for i in present], scorers)
        by_id = {i: o.verdict for i, o in zip(present, outcomes, strict=True)}
    return [by_id.get(i) for i in order]


def _stored_baseline_matches(
    plan: Planned, present: list[str], stored: dict[tuple[str, int], tuple[int, str]] | None
) -> bool:
    """The baseline run's stored verdicts were made by the plan's version for every case it has: reuse them."""
    return (
        stored is not None
        and bool(present)
        and all(stored.get((i, plan.criterion.pk), (None,))[0] == plan.version.pk for i in present)
    )
