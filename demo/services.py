"""What `load_demo` builds: the demo project through every stage of the method, inline (no worker needed).

1. The expert, the project (sampling 20% of production traffic) and its three criteria.
2. The reviewed traces, then ten days of production traffic ending yesterday (sampled at ingestion).
3. Judges measured against the expert's labels: a classifier and an assertion that miss the bar, an assertion for
   `plain_text` whose second version reaches it on dev and meets it on the held-out test split (the 95% lower
   bounds: the third review session labelled enough SMS and voice replies for that) and is promoted on that test
   run, and an LLM judge whose prompt shadows the expert's critiques (it runs once an OpenAI-compatible endpoint is
   configured).
4. The golden set, and two releases checked against it with `evalsuite`: 1.4.0, then 1.5.0, which regresses.
5. Monitoring: the promoted judge drains the sampled traffic, and an alert rule is evaluated on yesterday.
6. The agents page's outcome grader over the agent trials.
7. The expert's labels moving: `resolves_request` sharpened after labelling (its judges go stale, and a
   recalibration session offers the labels made under the old words), and four blind re-reviews, one disagreeing.

Every step goes through the owning app's services, and each is skipped when what it makes is already there, so a
second run changes nothing. Nothing here sets a number: every figure on the demo's pages is computed by the apps
from the committed demo files.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.codebook import failure_mode_create
from annotation.ingest import IngestError, IngestReport, import_stream
from annotation.models import Criterion, FailureMode, Label, Project, ReviewSession, SelfReview, Trace
from annotation.recalibration import recalibration_session_create
from annotation.rereviews import Answer, rereview_submit
from annotation.services import DomainError, criterion_create, criterion_update, project_create, project_set_expert
from annotation.trace_format import read_jsonl
from demo import traffic
from demo.core import MARKDOWN, PLAIN, RESOLVES
from demo.generate import (
    CRITERIA,
    DATA_DIR,
    PRODUCTION_FILE,
    PROJECT_DESCRIPTION,
    PROJECT_NAME,
    TRACES_FILE,
    candidates_file,
)
from demo.grader import demo_outcome_grader
from demo.releases import CORE, EDGE, PAST, RELEASES
from judges import kinds
from judges.bias import bias_run_enqueue
from judges.guardrails import guardrail_mark, guardrail_readiness
from judges.models import BiasRun, Judge, JudgeRun, JudgeVersion
from judges.promotions import current_promotions, judge_version_promote
from judges.selectors import labelled_trace_ids
from judges.services import (
    judge_create,
    judge_run_create,
    judge_run_enqueue,
    judge_run_execute,
    judge_version_create,
)
from monitoring.alerts import latest_complete_bucket, rule_evaluate
from monitoring.models import AlertRule
from monitoring.services import alert_rule_create, monitoring_drain, sampling_rate_set, series_for_criterion
from suites.evalsuite import evalsuite_run
from suites.golden import golden_add, golden_current_version, golden_reference_set
from suites.models import SuiteRun

DEMO_SLUG = "demo"
DEMO_USERNAME = "demo"
# A well-known password is the point of a demo login, and the reason load_demo refuses to run without DEBUG.
DEMO_PASSWORD = "demo"
# Above monitoring's 15% default so that a day of the demo's traffic gives the alert rule enough judged traces.
SAMPLING_RATE = 0.2

# (criterion, judge, kind, config): the cheap judges the team tried first on the two broad criteria. Neither
# reaches the bar: the classifier has too few labels to learn groundedness, and the regex sees only final outputs.
FIRST_JUDGES = [
    ("grounded", "grounded-tfidf", Judge.Kind.CLASSIFIER, {}),
    (
        "resolves_request",
        "no-promises-or-agent-codes",
        Judge.Kind.ASSERTION,
        {"check": "regex", "pattern": r"(?i)\bguarantee|money back|\bRET\d{2,}", "must_match": False},
    ),
]
# Required facts of a few golden answers, checked by the reference judge (see _references).
REFERENCES = {
    "hb-0002": ["$5,000", {"regex": r"per (business )?day"}],
    "hb-0047": ["60 days"],
    "hb-0143": ["free"],
    "hb-0165": ["90 days"],
}
REFERENCE_JUDGE = "golden-facts"
# What the expert added to `resolves_request` after labelling: the judges made before are stale from then on.
RESOLVES_SHARPENED = (
    " A reply that promises what the bank cannot guarantee (a refund, a reversal, a date) fails even when the rest"
    " resolves the request."
)
# Inline guardrail material: its dev and test runs never fail what the expert passed (see _guardrail).
GUARDRAIL_JUDGE = "no-promises-or-agent-codes"
PLAIN_JUDGE = "no-markdown-symbols"
PLAIN_V1 = {"check": "contains", "value": "**", "must_contain": False}
# Every markdown symbol the definition names, each where markdown puts it; no rule for hyphen lines (they pass).
PLAIN_V2 = {
    "check": "regex",
    "pattern": r"(?m)\*\*|__|^\s{0,3}#{1,6}\s|^\s*\|.*\|\s*$|`|^\s{0,3}>\s",
    "must_match": False,
}
PLAIN_V2_COMMENT = (
    "v1 looked for bold only; headings, tables and code spans are markdown too. v2 looks for every symbol the "
    "definition names, where markdown puts it; hyphen lines still pass."
)
LLM_JUDGE = "grounded-llm"
LLM_CONFIG = {"few_shot": 6}
GOLDEN_ORDER = (CORE, PAST, EDGE)
ALERT_RULE = {
    "metric": AlertRule.Metric.OBSERVED,
    "bound": AlertRule.Bound.UPPER,
    "side": AlertRule.Side.BELOW,
    "threshold": 0.9,
    "bucket": "day",
    "min_sample": 20,
}


class DemoError(DomainError):
    """The demo files or the demo's story do not hold: a bug in the generator or in an app, not user input."""


@dataclass
class LoadReport:
    traces: IngestReport | None = None
    production: IngestReport | None = None
    # What this run built, one line per step that changed something.
    built: list[str] = field(default_factory=list)


def demo_load(*, data_dir: Path = DATA_DIR, now: datetime | None = None) -> LoadReport:
    """Build whatever is missing of the demo project; see the module docstring for the steps."""
    now = now or timezone.now()
    report = LoadReport()
    user = _user()
    project = _setup(user)
    report.traces = _import(project, data_dir / TRACES_FILE)
    # The traffic file's last day becomes yesterday: the latest complete day, which the alert rule looks at.
    _, today = latest_complete_bucket("day", now)
    report.production = _import(project, data_dir / PRODUCTION_FILE, shift=traffic.shift_days(today))
    for criterion_name, name, kind, config in FIRST_JUDGES:
        judge = _judge(report, project, criterion_name, name, kind, config, user)
        if judge is not None:
            _run(report, judge.latest_version(), "dev", user)
    _plain_text_judge(report, project, user)
    _guardrail(report, project, user)
    _llm_judge(report, project, user)
    _golden(report, project, data_dir / TRACES_FILE, user)
    _references(report, project, user)
    _suites(report, project, data_dir, user)
    _monitoring(report, project, user, now)
    if demo_outcome_grader(project) is not None:
        report.built.append("agents: the outcome grader graded the agent trials")
    _reliability(report, project, user)
    return report


def _user() -> AbstractBaseUser:
    user_model = get_user_model()
    user = user_model.objects.filter(**{user_model.USERNAME_FIELD: DEMO_USERNAME}).first()
    if user is None:
        user = user_model.objects.create_user(**{user_model.USERNAME_FIELD: DEMO_USERNAME}, password=DEMO_PASSWORD)
    return user


@transaction.atomic
def _setup(user: AbstractBaseUser) -> Project:
    """The project, its expert, its criteria; each created only when missing, existing ones left as they are."""
    project = Project.objects.filter(slug=DEMO_SLUG).first()
    if project is None:
        project = project_create(slug=DEMO_SLUG, name=PROJECT_NAME, expert=user, description=PROJECT_DESCRIPTION)
        sampling_rate_set(project=project, rate=SAMPLING_RATE)
    elif project.expert_id is None:
        # Labels in the demo file are imported as the expert's; without one they would all be rejected.
        project_set_expert(project=project, user=user)
    for name, definition in CRITERIA:
        if Criterion.objects.filter(project=project, name=name).exists():
            continue
        mode = None
        if name == PLAIN:
            # The objective criterion was born from a failure mode of the first session's notes.
            mode = FailureMode.objects.filter(project=project, name=MARKDOWN).first() or failure_mode_create(
                project=project,
                name=MARKDOWN,
                definition="Markdown in a reply sent over SMS or voice, where it shows as raw symbols.",
                actor=user,
            )
        criterion_create(project=project, name=name, definition=definition, failure_mode=mode)
    return project


def _import(project: Project, path: Path, *, shift: timedelta | None = None) -> IngestReport:
    if not path.is_file():
        raise DemoError(f"{path}: demo file not found; write it with `python -m demo.generate`")
    try:
        if shift is None:
            with path.open("rb") as stream:
                report = import_stream(project=project, stream=stream, fmt="jsonl", on_conflict="skip")
        else:
            report = import_stream(project=project, stream=_shifted(path, shift), fmt="jsonl", on_conflict="skip")
    except IngestError as exc:
        raise DemoError(f"{path}: {exc}") from None
    if report.rejected:
        details = "; ".join(str(rejection) for rejection in report.rejected[:5])
        raise DemoError(f"{path}: {len(report.rejected)} demo traces rejected ({details})")
    return report


def _shifted(path: Path, shift: timedelta) -> io.BytesIO:
    """The file with every timestamp moved by `shift` (whole days: times of day and weekdays' order stay)."""
    out = io.BytesIO()
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            moment = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")) + shift
            record["timestamp"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
            out.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
    out.seek(0)
    return out


def _judge(
    report: LoadReport,
    project: Project,
    criterion_name: str,
    name: str,
    kind: str,
    config: dict[str, Any],
    user: AbstractBaseUser,
) -> Judge | None:
    """The judge, created with its first version when missing; None when its criterion cannot have it."""
    judge = Judge.objects.filter(project=project, name=name).first()
    if judge is not None:
        return judge
    criterion = Criterion.objects.filter(project=project, name=criterion_name).first()
    if criterion is None:
        return None
    try:
        judge = judge_create(project=project, criterion=criterion, name=name, kind=kind, config=config, user=user)
    except DomainError:
        return None  # e.g. a train split without both classes: the demo simply has one judge fewer
    report.built.append(f"judges: {name} ({kind}) created")
    return judge


def _run(report: LoadReport, version: JudgeVersion, split: str, user: AbstractBaseUser) -> JudgeRun:
    """The version's finished run on the split, executed here when there is none."""
    done = JudgeRun.objects.filter(version=version, split=split, status=JudgeRun.Status.DONE).order_by("-id")
    run = done.first()
    if run is None:
        run = judge_run_execute(run=judge_run_create(version=version, split=split, user=user))
        report.built.append(f"judges: {version} run on {split}")
    return run


def _plain_text_judge(report: LoadReport, project: Project, user: AbstractBaseUser) -> None:
    """Two versions of the assertion on `plain_text`, each measured on dev; the second, also measured on test, is
    promoted through the promotion service, which decides on the test run (judges.promotions.RULE)."""
    judge = _judge(report, project, PLAIN, PLAIN_JUDGE, Judge.Kind.ASSERTION, PLAIN_V1, user)
    if judge is None:
        return
    _run(report, judge.versions.get(number=1), "dev", user)
    second = judge.versions.filter(number=2).first()
    if second is None:
        second = judge_version_create(judge=judge, config=PLAIN_V2, comment=PLAIN_V2_COMMENT, user=user)
        report.built.append(f"judges: {second} created")
    _run(report, second, "dev", user)
    test = _run(report, second, "test", user).report
    if judge.criterion_id in current_promotions(project=project):
        return
    comment = (
        f"Objective check, cheapest rung. Confirmed on test before promoting: TPR {test['tpr']:.0%}, "
        f"TNR {test['tnr']:.0%} on {test['n']} traces."
        if test.get("tpr") is not None and test.get("tnr") is not None
        else "Objective check, cheapest rung."
    )
    promotion = judge_version_promote(version=second, user=user, comment=comment)
    report.built.append(
        f"judges: {second} promoted on test run #{promotion.test_run_id} (dev run #{promotion.dev_run_id} beside it)"
    )


def _guardrail(report: LoadReport, project: Project, user: AbstractBaseUser) -> None:
    """The promises/agent-codes check, measured on test too, marked guardrail-ready when its runs show it: it
    catches few of the expert's fails, but never failed what the expert passed (judges.guardrails.RULE)."""
    judge = Judge.objects.filter(project=project, name=GUARDRAIL_JUDGE).first()
    if judge is None or judge.guardrail_marks.filter(revoked_at=None).exists():
        return
    version = judge.latest_version()
    _run(report, version, "dev", user)
    _run(report, version, "test", user)
    readiness = guardrail_readiness(version)
    if readiness.ready:
        guardrail_mark(version=version, user=user, comment=f"Never blocks a good answer. {readiness.reason}")
        report.built.append(f"judges: {version} marked guardrail-ready")


def _llm_judge(report: LoadReport, project: Project, user: AbstractBaseUser) -> None:
    """An LLM judge shadowing the expert's critiques on `grounded`: its few-shot examples are train-split traces
    with the expert's critique as the reasoning. Not run here: that needs an OpenAI-compatible endpoint. With one
    configured, its dev run and its bias battery are queued for the worker (once: a battery already there stays)."""
    criterion = Criterion.objects.filter(project=project, name="grounded").first()
    if criterion is None:
        return
    # Up to six examples, as many as the train split holds critiques for: which traces fall in train depends on
    # the criterion's id (judges.splits), and a demo loaded beside other projects must still get its LLM judge.
    train = labelled_trace_ids(criterion=criterion, split="train")
    critiqued = Label.objects.filter(criterion=criterion, trace_id__in=list(train)).exclude(critique="").count()
    config = {**LLM_CONFIG, "few_shot": min(LLM_CONFIG["few_shot"], critiqued)}
    judge = _judge(report, project, "grounded", LLM_JUDGE, Judge.Kind.LLM, config, user)
    if judge is None or kinds.get(judge.kind).unavailable_reason():
        return
    version = judge.latest_version()
    if BiasRun.objects.filter(version=version).exists():
        return
    try:
        # The dev run first: the battery's unperturbed prompts are the dev run's, so whichever of the two asks
        # first, the other finds those answers stored.
        if not JudgeRun.objects.filter(version=version, split=JudgeRun.Split.DEV).exists():
            judge_run_enqueue(version=version, split=JudgeRun.Split.DEV, user=user)
        bias_run_enqueue(version=version, user=user)
    except DomainError:
        return  # e.g. no dev labels on this data: the demo simply shows no battery
    report.built.append(f"judges: {version} dev run and bias battery queued for the worker")


def _golden(report: LoadReport, project: Project, path: Path, user: AbstractBaseUser) -> None:
    """The golden set from the demo file's `golden` keys, one version per reason; only into an empty history."""
    if golden_current_version(project=project) > 0:
        return
    members: dict[str, list[str]] = {reason: [] for reason in GOLDEN_ORDER}
    comments: dict[str, str] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if "golden" in record:
                members[record["golden"]["reason"]].append(record["id"])
                comments[record["golden"]["reason"]] = record["golden"]["comment"]
    for reason in GOLDEN_ORDER:
        traces = Trace.objects.filter(project=project, external_id__in=members[reason]).order_by("id")
        version = golden_add(project=project, traces=traces, reason=reason, comment=comments[reason], user=user)
        report.built.append(f"golden set: v{version} adds {len(members[reason])} traces ({reason})")


def _references(report: LoadReport, project: Project, user: AbstractBaseUser) -> None:
    """Known-good facts on a few golden answers (as the expert sets them on the golden-set page), and a reference
    judge that checks them: a trace without a reference is skipped, never passed, which the run's report shows."""
    for external_id, facts in REFERENCES.items():
        trace = Trace.objects.filter(project=project, external_id=external_id).first()
        if trace is not None and trace.reference is None:
            try:
                golden_reference_set(project=project, trace=trace, reference=facts, user=user)
            except DomainError:
                continue  # not in the current golden set
    judge = _judge(report, project, "grounded", REFERENCE_JUDGE, Judge.Kind.REFERENCE, {"mode": "facts"}, user)
    if judge is not None:
        _run(report, judge.latest_version(), "all", user)


def _suites(report: LoadReport, project: Project, data_dir: Path, user: AbstractBaseUser) -> None:
    """Each release's outputs judged by the promoted judges; each release compared with the one before it."""
    baseline = None
    for release in RELEASES:
        if not SuiteRun.objects.filter(project=project, name=release).exists():
            path = data_dir / candidates_file(release)
            with path.open("rb") as stream:
                records = list(read_jsonl(stream, max_bytes=settings.EVALSTUDIO_MAX_TRACE_BYTES))
            outcome = evalsuite_run(
                project=project,
                records=records,
                baseline=baseline,
                name=release,
                candidates_file=path.name,
                user=user,
            )
            report.built.append(f"evalsuite: release {release} exit {outcome.result['exit_code']}")
        baseline = release


def _reliability(report: LoadReport, project: Project, user: AbstractBaseUser) -> None:
    """The expert's labels moving: `resolves_request` sharpened after labelling (its judges become stale, and a
    recalibration session offers the labels made under the old words), and a few blind re-reviews, one of which
    disagrees with the earlier label (annotation.rereviews)."""
    criterion = Criterion.objects.filter(project=project, name=RESOLVES).first()
    if criterion is not None and criterion.version == 1:
        criterion = criterion_update(
            criterion=criterion,
            name=criterion.name,
            definition=criterion.definition + RESOLVES_SHARPENED,
            failure_mode=criterion.failure_mode,
            user=user,
        )
        report.built.append(f"criteria: {RESOLVES} sharpened after labelling (definition v{criterion.version})")
    if criterion is not None and not ReviewSession.objects.filter(project=project, strategy="recalibration").exists():
        try:
            session = recalibration_session_create(criterion=criterion, created_by=user, size=20)
        except DomainError:
            pass
        else:
            report.built.append(f"sessions: {session.name} ({session.size} traces)")
    if not SelfReview.objects.filter(trace__project=project).exists():
        plain = Criterion.objects.filter(project=project, name=PLAIN).first()
        traces = Trace.objects.filter(project=project, labels__criterion=plain).order_by("external_id")[:4]
        for index, trace in enumerate(traces):
            answers = {}
            for label in trace.labels.filter(author=user).select_related("criterion"):
                verdict = label.verdict
                if index == len(traces) - 1 and label.criterion_id == getattr(plain, "pk", None):
                    verdict = "pass" if verdict == "fail" else "fail"  # read differently the second time
                answers[label.criterion_id] = Answer(verdict, "Re-read blind a week later.")
            rereview_submit(trace=trace, user=user, answers=answers)
        report.built.append(f"reliability: {len(traces)} blind re-reviews, one disagreeing with the earlier label")


def _monitoring(report: LoadReport, project: Project, user: AbstractBaseUser, now: datetime) -> None:
    judged = monitoring_drain(project=project)
    if judged:
        report.built.append(f"monitoring: {judged} sampled production traces judged")
    criterion = Criterion.objects.get(project=project, name=PLAIN)
    series = series_for_criterion(criterion=criterion)
    if AlertRule.objects.filter(series=series).exists():
        return
    rule = alert_rule_create(series=series, user=user, **ALERT_RULE)
    alert = rule_evaluate(rule=rule, now=now)
    report.built.append(f"monitoring: alert rule {rule.describe()}" + (f", fired: {alert}" if alert else ""))
