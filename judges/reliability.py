"""How far the expert's own labels can be trusted, read from what each label recorded (annotation.sittings,
annotation.models.LabelChange) and from blind re-reviews (annotation.rereviews): self-agreement per criterion (κ
and raw agreement between a label and its blind re-review), fatigue (the fail rate and self-agreement by position
in a sitting) and drift (a criterion's fail rate week by week on comparable traces, and how often labels were
changed later).

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

from annotation.models import CalibrationRater, Criterion, Label, LabelChange, Project, RaterLabel, SelfReview, Verdict
from judges.stats import ConfusionMatrix, confidence_intervals, metrics, wilson_interval

# Positions in a sitting, in buckets of this many traces (1–20, 21–40, …); the last bucket is open-ended.
BUCKET = 20
LAST_BUCKET_START = 101
Interval = tuple[float, float]


@dataclass(frozen=True)
class RateRow:
    """A fail rate over `n` first verdicts, with its 95% Wilson interval (None when n is 0); in a fatigue row also
    the self-agreement of those first verdicts that were re-reviewed blind."""

    label: str
    n: int
    fails: int
    interval: Interval | None
    median_seconds: float | None = None
    rereviewed: int = 0
    agreed: int = 0
    agreement_interval: Interval | None = None

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.rereviewed if self.rereviewed else None

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
    bucket_of: dict[tuple[int, int], int] = {}  # (trace, criterion) → the bucket of its label's first verdict
    values = rows.values_list(
        "sitting_position", "verdict", "seconds_on_trace", "label__trace_id", "label__criterion_id"
    )
    for position, verdict, seconds, trace_id, criterion_id in values.iterator():
        start = min(((position - 1) // BUCKET) * BUCKET + 1, LAST_BUCKET_START)
        by_bucket.setdefault(start, []).append((verdict, seconds))
        bucket_of[(trace_id, criterion_id)] = start
    agreement: dict[int, list[int]] = {}
    reviews = SelfReview.objects.filter(trace__project=project).values_list(
        "trace_id", "criterion_id", "verdict", "then_verdict"
    )
    for trace_id, criterion_id, now, then in reviews.iterator():
        start = bucket_of.get((trace_id, criterion_id))
        if start is not None:
            counts = agreement.setdefault(start, [0, 0])
            counts[0] += 1
            counts[1] += now == then
    result = []
    for start in sorted(by_bucket):
        entries = by_bucket[start]
        fails = sum(1 for verdict, _ in entries if verdict == Verdict.FAIL)
        seconds = [s for _, s in entries if s is not None]
        rereviewed, agreed = agreement.get(start, [0, 0])
        result.append(
            RateRow(
                label=_bucket_label(start),
                n=len(entries),
                fails=fails,
                interval=wilson_interval(fails, len(entries)),
                median_seconds=round(median(seconds), 1) if seconds else None,
                rereviewed=rereviewed,
                agreed=agreed,
                agreement_interval=wilson_interval(agreed, rereviewed),
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


@dataclass(frozen=True)
class SelfAgreement:
    """A criterion's self-agreement: each label against its blind re-review (then as the reference, now as the
    rater), κ and raw agreement with 95% intervals, by month, and the differing pairs still to decide."""

    criterion: Criterion
    n: int
    agreement: float | None
    agreement_interval: Interval | None
    kappa: float | None
    kappa_interval: Interval | None
    months: list[tuple[str, int, int, Interval | None]]  # (YYYY-MM, re-reviews, agreeing, interval)
    undecided: list[SelfReview]
    decided: int


def self_agreement(*, project: Project, criterion: Criterion | None = None) -> list[SelfAgreement]:
    """Per criterion with re-reviews (in criterion order), or for one criterion: the expert against themself."""
    reviews = SelfReview.objects.filter(trace__project=project).select_related("trace", "criterion")
    if criterion is not None:
        reviews = reviews.filter(criterion=criterion)
    by_criterion: dict[int, list[SelfReview]] = {}
    for review in reviews.order_by("created_at", "id"):
        by_criterion.setdefault(review.criterion_id, []).append(review)
    criteria = Criterion.objects.filter(pk__in=list(by_criterion)).order_by("position", "id")
    result = []
    for item in criteria:
        rows = by_criterion[item.pk]
        cm = ConfusionMatrix.from_pairs((row.then_verdict, row.verdict) for row in rows)
        point = metrics(cm)
        intervals = confidence_intervals(cm)
        months: dict[str, list[int]] = {}
        for row in rows:
            counts = months.setdefault(f"{row.created_at:%Y-%m}", [0, 0])
            counts[0] += 1
            counts[1] += row.agrees
        result.append(
            SelfAgreement(
                criterion=item,
                n=cm.n,
                agreement=point["accuracy"],
                agreement_interval=intervals["accuracy"],
                kappa=point["kappa"],
                kappa_interval=intervals["kappa"],
                months=[
                    (month, n, agreed, wilson_interval(agreed, n)) for month, (n, agreed) in sorted(months.items())
                ],
                undecided=[row for row in rows if not row.agrees and row.decided_at is None],
                decided=sum(1 for row in rows if row.decided_at is not None),
            )
        )
    return result


@dataclass(frozen=True)
class RaterAgreement:
    """Agreement between the expert's labels and a calibration rater's blind ones on one criterion (the rater as
    the second rater; the expert's label is the reference, as for judges)."""

    rater: CalibrationRater
    criterion: Criterion
    n: int
    agreement: float | None
    agreement_interval: Interval | None
    kappa: float | None
    kappa_interval: Interval | None


def rater_agreement(*, project: Project) -> list[RaterAgreement]:
    """Per calibration rater and criterion, κ and raw agreement with the expert's current labels, 95% intervals."""
    labels = {
        (trace_id, criterion_id): verdict
        for trace_id, criterion_id, verdict in Label.objects.filter(
            criterion__project=project, author_id=project.expert_id
        ).values_list("trace_id", "criterion_id", "verdict")
    }
    pairs: dict[tuple[int, int], list[tuple[str, str]]] = {}
    for rater_id, trace_id, criterion_id, verdict in RaterLabel.objects.filter(rater__project=project).values_list(
        "rater_id", "trace_id", "criterion_id", "verdict"
    ):
        expert = labels.get((trace_id, criterion_id))
        if expert is not None:
            pairs.setdefault((rater_id, criterion_id), []).append((expert, verdict))
    raters = {r.pk: r for r in CalibrationRater.objects.filter(project=project).select_related("user")}
    criteria = {c.pk: c for c in Criterion.objects.filter(project=project)}
    result = []
    for (rater_id, criterion_id), rows in sorted(
        pairs.items(), key=lambda item: (item[0][0], criteria[item[0][1]].position, item[0][1])
    ):
        cm = ConfusionMatrix.from_pairs(rows)
        point, intervals = metrics(cm), confidence_intervals(cm)
        result.append(
            RaterAgreement(
                rater=raters[rater_id],
                criterion=criteria[criterion_id],
                n=cm.n,
                agreement=point["accuracy"],
                agreement_interval=intervals["accuracy"],
                kappa=point["kappa"],
                kappa_interval=intervals["kappa"],
            )
        )
    return result
