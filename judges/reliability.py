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

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Value, Window
from django.db.models.functions import Least, RowNumber, TruncMonth, TruncWeek

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
    """Each label's first history entry (written as such, LabelChange.is_first), by the project's expert: read
    from the partial indexes on (criterion, …) without touching the labels, so the aggregates below are index-only
    scans of the project's first verdicts."""
    return LabelChange.objects.filter(criterion__project=project, is_first=True, author_id=project.expert_id)


def _bucket(position: str) -> Least:
    """The first position of the bucket holding the (non-null) field `position`: _bucket_start in SQL."""
    return Least((F(position) - 1) / BUCKET * BUCKET + 1, Value(LAST_BUCKET_START))


def _bucket_start(position: int) -> int:
    """The first position of the bucket holding `position`: 1, 21, 41, …, LAST_BUCKET_START."""
    return min(((position - 1) // BUCKET) * BUCKET + 1, LAST_BUCKET_START)


def _bucket_label(start: int) -> str:
    return f"{start}+" if start >= LAST_BUCKET_START else f"{start}–{start + BUCKET - 1}"


def _weighted_median(counts: list[tuple[float, int]]) -> float | None:
    """The median of values given as (value, how many times), as statistics.median of the expanded list."""
    total = sum(n for _, n in counts)
    if not total:
        return None
    middle: list[float] = []
    seen = 0
    for value, n in sorted(counts):
        # The 0-based positions (total − 1) // 2 and total // 2 of the sorted values: one value when total is odd.
        for position in sorted({(total - 1) // 2, total // 2}):
            if seen <= position < seen + n:
                middle.append(value)
        seen += n
    return median(middle)


def fatigue(*, project: Project) -> list[RateRow]:
    """The expert's fail rate on first reading by position in the sitting (1–20, 21–40, …, 101+), with the median
    time spent on a trace; positions without labels are left out. Labels made outside the review page (imports,
    the API) have no position and are not counted. Two aggregate queries whatever the number of labels: the
    database counts per bucket and time on the trace (medians are exact from those counts), and the blind
    re-reviews by their label's bucket."""
    rows = (
        _first_verdicts(project)
        .filter(sitting_position__isnull=False)
        .annotate(bucket=_bucket("sitting_position"))
        .values("bucket", "seconds_on_trace")
        .annotate(n=Count("verdict"), fails=Count("verdict", filter=Q(verdict=Verdict.FAIL)))
        .values_list("bucket", "seconds_on_trace", "n", "fails")  # tuples: thousands of rows, one per time value
        .order_by()
    )
    by_bucket: dict[int, list[int]] = {}  # bucket → [first verdicts, fails]
    seconds: dict[int, list[tuple[float, int]]] = {}
    for bucket, spent, n, fails in rows:
        counts = by_bucket.setdefault(bucket, [0, 0])
        counts[0] += n
        counts[1] += fails
        if spent is not None:
            seconds.setdefault(bucket, []).append((spent, n))
    # Each re-review counts in the bucket of its label's first verdict (the label is unique per trace and criterion).
    first_position = LabelChange.objects.filter(
        is_first=True,
        author_id=project.expert_id,
        criterion_id=OuterRef("criterion_id"),
        label__trace_id=OuterRef("trace_id"),
        sitting_position__isnull=False,
    ).order_by()
    # Grouped by position, bucketed here: filtering out re-reviews of labels without a position would run the
    # lookup a second time, and SQL's LEAST skips a NULL (it would put them in the last bucket).
    reviews = (
        SelfReview.objects.filter(trace__project=project)
        .annotate(position=Subquery(first_position.values("sitting_position")[:1]))
        .values("position")
        .annotate(n=Count("id"), agreed=Count("id", filter=Q(verdict=F("then_verdict"))))
        .order_by()
    )
    agreement: dict[int, list[int]] = {}
    for row in reviews:
        if row["position"] is not None:
            counts = agreement.setdefault(_bucket_start(row["position"]), [0, 0])
            counts[0] += row["n"]
            counts[1] += row["agreed"]
    result = []
    for start in sorted(by_bucket):
        n, fails = by_bucket[start]
        middle = _weighted_median(seconds.get(start, []))
        rereviewed, agreed = agreement.get(start, [0, 0])
        result.append(
            RateRow(
                label=_bucket_label(start),
                n=n,
                fails=fails,
                interval=wilson_interval(fails, n),
                median_seconds=round(middle, 1) if middle is not None else None,
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
    for a reason, and would move the rate by themselves) — and how many labels changed verdict later. Four
    queries whatever the number of labels, each reading an index of the first verdicts or of the few later
    entries."""
    criteria = list(Criterion.objects.filter(project=project).order_by("position", "id"))
    weekly: dict[int, list[tuple[datetime, RateRow]]] = {criterion.pk: [] for criterion in criteria}
    rows = (
        _first_verdicts(project)
        .filter(via="random")
        .annotate(week=TruncWeek("changed_at"))
        .values("criterion_id", "week")
        .annotate(n=Count("verdict"), fails=Count("verdict", filter=Q(verdict=Verdict.FAIL)))
        .order_by("criterion_id", "week")
    )
    for row in rows:
        n, fails = row["n"], row["fails"]
        rate = RateRow(label=f"{row['week']:%Y-%m-%d}", n=n, fails=fails, interval=wilson_interval(fails, n))
        weekly.setdefault(row["criterion_id"], []).append((row["week"], rate))
    # Every label with a history has one first entry: the labels per criterion, any author.
    project_history = LabelChange.objects.filter(criterion__project=project)
    label_counts = dict(
        project_history.filter(is_first=True)
        .values("criterion_id")
        .annotate(n=Count("criterion_id"))
        .values_list("criterion_id", "n")
        .order_by()
    )
    # A label "changed later" when its history holds both verdicts: a later entry differs from its first.
    first = LabelChange.objects.filter(label_id=OuterRef("label_id"), is_first=True)
    differs = first.exclude(verdict=OuterRef("verdict"))
    changed_counts = dict(
        project_history.filter(is_first=False)
        .filter(Exists(differs))
        .values("criterion_id")
        .annotate(n=Count("label_id", distinct=True))
        .values_list("criterion_id", "n")
        .order_by()
    )
    result = []
    for criterion in criteria:
        labels, changed = label_counts.get(criterion.pk, 0), changed_counts.get(criterion.pk, 0)
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
    undecided: list[SelfReview]  # the oldest differing pairs still to decide, at most UNDECIDED_SHOWN
    decided: int
    undecided_count: int = 0  # all differing pairs still to decide

    @property
    def undecided_hidden(self) -> int:
        return self.undecided_count - len(self.undecided)


def _matrix(counts: dict[tuple[str, str], int]) -> ConfusionMatrix:
    """The confusion matrix of (reference verdict, other verdict) → how many pairs."""
    return ConfusionMatrix.from_pairs(pair for pair, n in counts.items() for _ in range(n))


# Differing pairs to decide shown per criterion, oldest first: each is a card with a form, and a project that let
# hundreds pile up must not get a page of hundreds of forms; the next appear as these are decided.
UNDECIDED_SHOWN = 10
# What the page shows of a differing pair still to decide; the trace only for its link.
_UNDECIDED_FIELDS = (
    "id", "trace", "trace__external_id", "criterion_id", "then_verdict", "then_critique", "then_at", "then_version",
    "verdict", "critique", "criterion_version", "created_at", "decided_at",
)  # fmt: skip


def self_agreement(*, project: Project, criterion: Criterion | None = None) -> list[SelfAgreement]:
    """Per criterion with re-reviews (in criterion order), or for one criterion: the expert against themself.
    The pairs are counted in the database (by criterion, verdicts and month); only the differing pairs still to
    decide are loaded, with their trace's id."""
    reviews = SelfReview.objects.filter(trace__project=project)
    if criterion is not None:
        reviews = reviews.filter(criterion=criterion)
    cells: dict[int, dict[tuple[str, str], int]] = {}
    months: dict[int, list[tuple[str, int, int]]] = {}
    decided: dict[int, int] = {}
    still_open: dict[int, int] = {}
    counted = (
        reviews.annotate(month=TruncMonth("created_at"))
        .values("criterion_id", "month", "then_verdict", "verdict")
        .annotate(n=Count("id"), decided=Count("decided_at"))
        .order_by("criterion_id", "month")
    )
    for row in counted:
        pk, pair, n = row["criterion_id"], (row["then_verdict"], row["verdict"]), row["n"]
        cells.setdefault(pk, {})[pair] = cells.get(pk, {}).get(pair, 0) + n
        decided[pk] = decided.get(pk, 0) + row["decided"]
        if pair[0] != pair[1]:
            still_open[pk] = still_open.get(pk, 0) + n - row["decided"]
        month = f"{row['month']:%Y-%m}"
        by_month = months.setdefault(pk, [])
        if not by_month or by_month[-1][0] != month:
            by_month.append((month, 0, 0))
        name, total, agreed = by_month[-1]
        by_month[-1] = (name, total + n, agreed + n * (pair[0] == pair[1]))
    undecided: dict[int, list[SelfReview]] = {}
    oldest_first = [F("created_at").asc(), F("id").asc()]
    pending = (
        reviews.filter(decided_at=None)
        .exclude(verdict=F("then_verdict"))
        .annotate(place=Window(RowNumber(), partition_by=F("criterion_id"), order_by=oldest_first))
        .filter(place__lte=UNDECIDED_SHOWN)
        .select_related("trace")
        .only(*_UNDECIDED_FIELDS)
        .order_by(*oldest_first)
    )
    for review in pending:
        undecided.setdefault(review.criterion_id, []).append(review)
    criteria = Criterion.objects.filter(pk__in=list(cells)).order_by("position", "id")
    result = []
    for item in criteria:
        cm = _matrix(cells[item.pk])
        point = metrics(cm)
        intervals = confidence_intervals(cm)
        result.append(
            SelfAgreement(
                criterion=item,
                n=cm.n,
                agreement=point["accuracy"],
                agreement_interval=intervals["accuracy"],
                kappa=point["kappa"],
                kappa_interval=intervals["kappa"],
                months=[(month, n, agreed, wilson_interval(agreed, n)) for month, n, agreed in months[item.pk]],
                undecided=undecided.get(item.pk, []),
                decided=decided.get(item.pk, 0),
                undecided_count=still_open.get(item.pk, 0),
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
    """Per calibration rater and criterion, κ and raw agreement with the expert's current labels, 95% intervals.
    Each rater label is matched to the expert's label in the database (one index lookup each), and the pairs are
    counted there."""
    expert_verdict = Label.objects.filter(
        trace_id=OuterRef("trace_id"), criterion_id=OuterRef("criterion_id"), author_id=project.expert_id
    ).values("verdict")[:1]
    counted = (
        RaterLabel.objects.filter(rater__project=project)
        .annotate(expert=Subquery(expert_verdict))
        .filter(expert__isnull=False)
        .values("rater_id", "criterion_id", "expert", "verdict")
        .annotate(n=Count("id"))
        .order_by()
    )
    pairs: dict[tuple[int, int], dict[tuple[str, str], int]] = {}
    for row in counted:
        pairs.setdefault((row["rater_id"], row["criterion_id"]), {})[(row["expert"], row["verdict"])] = row["n"]
    raters = {r.pk: r for r in CalibrationRater.objects.filter(project=project).select_related("user")}
    criteria = {c.pk: c for c in Criterion.objects.filter(project=project)}
    result = []
    for (rater_id, criterion_id), counts in sorted(
        pairs.items(), key=lambda item: (item[0][0], criteria[item[0][1]].position, item[0][1])
    ):
        cm = _matrix(counts)
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
