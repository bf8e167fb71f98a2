"""Shared set-up for the monitoring tests: a criterion with a promoted assertion judge, production traffic."""

from __future__ import annotations

import io
import json

from django.db.models import QuerySet

from annotation.models import Project
from judges.models import JudgeVersion, Promotion
from judges.monitored import Check
from judges.promotions import judge_version_promote
from judges.services import judge_create, judge_run_create, judge_run_execute
from monitoring.checks import JUDGE, promotion_check
from monitoring.models import MonitorCursor, MonitoredCheck, MonitoredSeries, MonitorJudgment
from monitoring.selectors import sampled_after
from monitoring.services import check_get_or_create, series_for_criterion
from tests.factories import make_criterion, make_label, make_split_labels, make_trace

# Fails an output that apologises; on the labelled set below it agrees with the expert on every trace.
NO_APOLOGY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}


def promoted_judge(project: Project, *, labelled: int = 120, config: dict | None = None) -> Promotion:
    criterion = make_criterion(project=project, name="no_apology")
    for i in range(labelled):
        output = "Sorry, no." if i % 3 == 0 else "Done."
        trace = make_trace(project=project, external_id=f"lab-{i}", output=output)
        make_label(trace=trace, criterion=criterion, verdict="fail" if i % 3 == 0 else "pass")
    # Promotion is decided on test by the 95% lower bounds: enough labels of each class there.
    test = [("Done.", "pass"), ("Sorry, no.", "fail")] * 40
    make_split_labels(criterion=criterion, split="test", outputs=test, prefix="lab-test")
    judge = judge_create(
        project=project, criterion=criterion, name="apology", kind="assertion", config=config or NO_APOLOGY
    )
    version = judge.latest_version()
    for split in ("dev", "test"):
        judge_run_execute(run=judge_run_create(version=version, split=split))
    return judge_version_promote(version=version)


def production(n: int, *, prefix: str = "p", fail_every: int = 4, timestamp: str | None = None) -> list[dict]:
    items = []
    for i in range(n):
        item = {
            "id": f"{prefix}-{i}",
            "input": f"question {i}",
            "output": "Sorry, I cannot." if i % fail_every == 0 else "Here you go.",
            "source": "production",
        }
        if timestamp:
            item["timestamp"] = timestamp
        items.append(item)
    return items


def jsonl(items: list[dict]) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(item) + "\n" for item in items).encode())


def judge_check(promotion: Promotion) -> Check:
    """The monitored check a promotion makes (its judge version)."""
    return promotion_check(promotion, promotion.criterion.project)


def verdicts_of(version: JudgeVersion) -> QuerySet[MonitorJudgment]:
    """The production verdicts of a judge version (its monitored check)."""
    return MonitorJudgment.objects.filter(monitored_check__series__provider=JUDGE, monitored_check__key=version.pk)


def cursor_of(version: JudgeVersion) -> MonitorCursor:
    return MonitorCursor.objects.get(monitored_check__series__provider=JUDGE, monitored_check__key=version.pk)


def check_row(promotion: Promotion) -> MonitoredCheck:
    """The stored row of the promotion's check (made when missing)."""
    return check_get_or_create(project=promotion.criterion.project, check=judge_check(promotion))


def series_of(promotion: Promotion) -> MonitoredSeries:
    return series_for_criterion(criterion=promotion.criterion)


def sampled(project: Project) -> set[int]:
    """The ids of the project's production traces in the sample."""
    return set(sampled_after(project=project, after_id=0, limit=1_000_000)[0])
