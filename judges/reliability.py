"""How far the expert's own labels can be trusted, read from what each label recorded (annotation.sittings,
annotation.models.LabelChange): fatigue (the fail rate by position in a sitting) and drift (a criterion's fail rate
week by week on comparable traces, and how often labels were changed later).

It lives with the judges because it is measured like them — rates with 95% intervals (judges.stats) — and
because a judge cannot be expected to agree with the expert more than the expert agrees with themself.

Only a label's first verdict counts (its first history entry): that is the verdict given on first reading, which is
what fatigue would lower; later changes are what drift's "changed later" counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from statistics import median

from django.db.models import Count, Min, Q, QuerySet
from django.db.models.functions import TruncWeek

from annotation.models import Criterion, LabelChange, Project, Verdict
from judges.stats import wilson_interval

# Positions in a sitting, in buckets of this many traces (1–20, 21–40, …); the last bucket is open-ended.
BUCKET = 20
LAST_BUCKET_START = 101
Interval = tuple[float, float]


@dataclass(frozen=True)
class RateRow:
    """A fail rate over `n` first verdicts, with its 95% Wilson interval (None when n is 0)."""

    label: str
    n: int
    fails: int
    interval: Interval | None
    median_seconds: float | None = None

    @property
    def rate(self) -> float | None:
        return self.fails / self.n if self.n else None


def _first_verdicts(project: Project) -> QuerySet[LabelChange]:
    """Each label's first history entry, by the project's expert."""
    firsts = (
        LabelChange.objects.filter(label__criterion__project=project)
        .values("label_id")
        .annotate(first=Min("id"))
        .values("first")
    )
    return LabelChange.objects.filter(id__in=firsts, author_id=project.expert_id)


def _bucket_label(start: int) -> str:
    return f"{start}+" if start >= LAST_BUCKET_START else f"{start}–{start + BUCKET - 1}"


def fatigue(*, project: Project) -> list[RateRow]:
    """The expert's fail rate on first reading by position in the sitting (1–20, 21–40, …, 101+), with the median
    time spent on a trace; positions without labels are left out. Labels made outside the review page (imports,
    the API) have no position and are not counted."""
    rows = _first_verdicts(project).filter(sitting_position__isnull=False)
    by_bucket: dict[int, list[tuple[str, float | None]]] = {}
    for position, verdict, seconds in rows.values_list("sitting_position", "verdict", "seconds_on_trace").iterator():
        start = min(((position - 1) // BUCKET) * BUCKET + 1, LAST_BUCKET_START)
        by_bucket.setdefault(start, []).append((verdict, seconds))
    result = []
    for start in sorted(by_bucket):
        entries = by_bucket[start]
        fails = sum(1 for verdict, _ in entries if verdict == Verdict.FAIL)
        seconds = [s for _, s in entries if s is not None]
        result.append(
            RateRow(
                label=_bucket_label(start),
                n=len(entries),
                fails=fails,
                interval=wilson_interval(fails, len(entries)),
                median_seconds=round(median(seconds), 1) if seconds else None,
            )
        )
    return result


@dataclass(frozen=True)
class Drift:
    """A criterion's drift signals: its fail rate by week on random-queue first verdicts, and the share of its
    labels whose verdict was changed later (with intervals)."""

    criterion: Criterion
    weeks: list[tuple[datetime, RateRow]]
    labels: int
    changed_later: int
    changed_interval: Interval | None

    @property
    def changed_share(self) -> float | None:
        return self.changed_later / self.labels if self.labels else None


def drift(*, project: Project) -> list[Drift]:
    """Per criterion (in criterion order): weekly fail rates on comparable traces — only first verdicts given in
    the random queue, whose traces are a random draw each week (sessions and the newest/oldest orders pick traces
    for a reason, and would move the rate by themselves) — and how many labels changed verdict later. Three
    queries whatever the number of labels."""
    criteria = list(Criterion.objects.filter(project=project).order_by("position", "id"))
    weekly: dict[int, list[tuple[datetime, RateRow]]] = {criterion.pk: [] for criterion in criteria}
    rows = (
        _first_verdicts(project)
        .filter(via="random")
        .annotate(week=TruncWeek("changed_at"))
        .values("label__criterion_id", "week")
        .annotate(n=Count("id"), fails=Count("id", filter=Q(verdict=Verdict.FAIL)))
        .order_by("label__criterion_id", "week")
    )
    for row in rows:
        n, fails = row["n"], row["fails"]
        rate = RateRow(label=f"{row['week']:%Y-%m-%d}", n=n, fails=fails, interval=wilson_interval(fails, n))
        weekly.setdefault(row["label__criterion_id"], []).append((row["week"], rate))
    # A label "changed later" when its history holds both verdicts.
    histories = (
        LabelChange.objects.filter(label__criterion__project=project)
        .values("label_id", "label__criterion_id")
        .annotate(verdicts=Count("verdict", distinct=True))
    )
    totals: dict[int, list[int]] = {}
    for row in histories.iterator():
        counts = totals.setdefault(row["label__criterion_id"], [0, 0])
        counts[0] += 1
        counts[1] += row["verdicts"] > 1
    result = []
    for criterion in criteria:
        labels, changed = totals.get(criterion.pk, [0, 0])
        result.append(
            Drift(
                criterion=criterion,
                weeks=weekly[criterion.pk],
                labels=labels,
                changed_later=changed,
                changed_interval=wilson_interval(changed, labels),
            )
        )
    return result
