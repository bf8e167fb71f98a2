"""Reads for judges: the expert's labels by split, and the pairs an alignment report is computed from."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, FilteredRelation, Max, Prefetch, Q, QuerySet, Window
from django.db.models.fields.json import KT, KeyTransform
from django.db.models.functions import RowNumber
from django.utils import timezone

from annotation.models import Criterion, Label, Project, Trace
from annotation.services import DomainError
from judges.models import Judge, JudgeRun, JudgeVersion, Judgment
from judges.splits import DEFAULT_SHARES, SPLITS, split_of
from judges.stats import ConfusionMatrix


def split_key(criterion: Criterion) -> str:
    """What a criterion's split hash is seeded with: stable for the criterion's life in this installation (a
    rename must not move traces between train and test)."""
    return f"{criterion.project.queue_seed}:{criterion.pk}"


def labelled_trace_ids(*, criterion: Criterion, split: str) -> dict[int, str]:
    """trace id → the expert's verdict, for the criterion's labelled traces in `split` ("all" for every split)."""
    if split != "all" and split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join((*SPLITS, 'all'))}, got {split!r}")
    key = split_key(criterion)
    labels = Label.objects.filter(criterion=criterion).values_list("trace_id", "trace__external_id", "verdict")
    return {
        trace_id: verdict
        for trace_id, external_id, verdict in labels.iterator(chunk_size=5000)
        if split == "all" or split_of(key, external_id, DEFAULT_SHARES) == split
    }


def split_counts(*, criterion: Criterion) -> dict[str, Counter[str]]:
    """Per split, how many labelled traces pass and fail — shown next to every judge of the criterion."""
    key = split_key(criterion)
    counts: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
    labels = Label.objects.filter(criterion=criterion).values_list("trace__external_id", "verdict")
    for external_id, verdict in labels.iterator(chunk_size=5000):
        counts[split_of(key, external_id, DEFAULT_SHARES)][verdict] += 1
    return counts


@dataclass(frozen=True)
class RunTally:
    """A run's judgments against the expert's labels: the confusion matrix of the verdicts, the errors, and the
    skips by reason (reason → count)."""

    confusion: ConfusionMatrix
    errors: int
    skipped: dict[str, int]


def run_tally(run: JudgeRun) -> RunTally:
    """The run's judgments against the expert's labels on the run's split: the matrix, the errors, the skips.

    Only traces the expert labelled count; an error (no verdict) and a skip (no verdict, a reason such as "no
    reference") are counted apart, never as a pass or a fail, so neither enters TPR or TNR.
    """
    criterion = run.version.judge.criterion
    expert = labelled_trace_ids(criterion=criterion, split=run.split)
    pairs = []
    errors = 0
    skipped: Counter[str] = Counter()
    judgments = Judgment.objects.filter(run=run).values_list("trace_id", "verdict", "skipped")
    for trace_id, verdict, skip in judgments.iterator(chunk_size=5000):
        if trace_id not in expert:
            continue
        if skip:
            skipped[skip] += 1
        elif not verdict:
            errors += 1
        else:
            pairs.append((expert[trace_id], verdict))
    return RunTally(ConfusionMatrix.from_pairs(pairs), errors, dict(skipped.most_common()))


def run_confusion(run: JudgeRun) -> tuple[ConfusionMatrix, int]:
    """The run's judgments against the expert's labels on the run's split, and how many judgments were errors
    (skips are in neither: see run_tally)."""
    tally = run_tally(run)
    return tally.confusion, tally.errors


# --- the judges page and the run page --------------------------------------------------------------------------

# Stamped keys never go stale, so this only bounds how long counts nobody looks at stay in the cache.
SPLIT_COUNTS_CACHE_SECONDS = 7 * 24 * 3600
# Trace ids per cached bucket of split counts: a changed label costs re-hashing at most this many labels (~50 ms).
SPLIT_BUCKET = 10_000


def project_split_counts(*, project: Project) -> dict[int, dict[str, Counter[str]]]:
    """split_counts for every criterion of the project: criterion id → split → verdict → count.

    A split is a hash of each trace's id, which SQL cannot compute portably, and hashing 200,000 labels takes
    seconds. So labels are grouped in buckets of trace ids; each bucket's counts are cached under a stamp of its
    labels (count, newest id, latest change) that any added, changed or deleted label moves. One aggregate query
    finds the stamps; only the buckets whose labels changed are read and hashed again (one label → one bucket).
    """
    criteria = {c.pk: c for c in Criterion.objects.filter(project=project).select_related("project")}
    stamps = (
        Label.objects.filter(criterion__project=project)
        .values("criterion_id", bucket=F("trace_id") / SPLIT_BUCKET)
        .annotate(count=Count("id"), last_id=Max("id"), changed=Max("updated_at"))
        .order_by()
    )
    keys: dict[tuple[int, int], str] = {
        (row["criterion_id"], row["bucket"]): (
            f"judges:split-counts:{split_key(criteria[row['criterion_id']])}:{row['bucket']}:"
            f"{row['count']}:{row['last_id']}:{row['changed'].isoformat()}"
        )
        for row in stamps
    }
    cached = cache.get_many(list(keys.values()))
    stale = [bucket for bucket, key in keys.items() if key not in cached]
    fresh: dict[tuple[int, int], dict[str, Counter[str]]] = {}
    if stale:
        ranges = Q()
        for criterion_id, bucket in stale:
            start = bucket * SPLIT_BUCKET
            ranges |= Q(criterion_id=criterion_id, trace_id__gte=start, trace_id__lt=start + SPLIT_BUCKET)
        fresh = {bucket: {name: Counter() for name in SPLITS} for bucket in stale}
        seeds = {pk: split_key(criterion) for pk, criterion in criteria.items()}
        labels = Label.objects.filter(ranges).values_list("criterion_id", "trace_id", "trace__external_id", "verdict")
        for criterion_id, trace_id, external_id, verdict in labels.iterator(chunk_size=5000):
            split = split_of(seeds[criterion_id], external_id, DEFAULT_SHARES)
            fresh[(criterion_id, trace_id // SPLIT_BUCKET)][split][verdict] += 1
        cache.set_many(
            {keys[bucket]: {name: dict(c) for name, c in counts.items()} for bucket, counts in fresh.items()},
            timeout=SPLIT_COUNTS_CACHE_SECONDS,
        )
    totals: dict[int, dict[str, Counter[str]]] = {pk: {name: Counter() for name in SPLITS} for pk in criteria}
    for bucket, key in keys.items():
        counts = fresh.get(bucket) or {name: Counter(value) for name, value in cached[key].items()}
        for name in SPLITS:
            totals[bucket[0]][name].update(counts[name])
    return totals


def judges_with_versions(*, project: Project) -> QuerySet[Judge]:
    """The project's judges with their latest version number and their versions (newest first), in two queries."""
    versions = JudgeVersion.objects.only("id", "judge_id", "number").order_by("-number")
    return (
        Judge.objects.filter(project=project)
        .annotate(latest_number=Max("versions__number"))
        .prefetch_related(Prefetch("versions", queryset=versions))
        .order_by("criterion__position", "criterion_id", "name")
    )


def latest_finished_runs(*, project: Project) -> dict[tuple[int, str], JudgeRun]:
    """(judge id, split) → the judge's latest finished (done) run on that split, over all versions, in one query."""
    ranked = (
        JudgeRun.objects.filter(version__judge__project=project, status=JudgeRun.Status.DONE)
        .annotate(
            judge_id=F("version__judge_id"),
            rank=Window(
                RowNumber(),
                partition_by=[F("version__judge_id"), F("split")],
                order_by=[F("finished_at").desc(), F("id").desc()],
            ),
        )
        .filter(rank=1)
        .select_related("version")
    )
    return {(run.judge_id, run.split): run for run in ranked}


def recent_runs(*, project: Project, limit: int = 10) -> list[JudgeRun]:
    """The project's latest runs whatever their state, so a running one can be found again."""
    return list(
        JudgeRun.objects.filter(version__judge__project=project)
        .select_related("version__judge")
        .defer("report")
        .order_by("-created_at", "-id")[:limit]
    )


def run_judged_count(run: JudgeRun) -> int:
    """Judgments written so far: the run's progress. A finished run's report already holds it (an external
    judge's copy may cover fewer traces than its split); otherwise an index-only count on the (run, trace)
    constraint."""
    if run.is_finished and run.report:
        return run.report["n"] + run.report["errors"] + run.report.get("skipped", 0)
    return Judgment.objects.filter(run=run).count()


DISAGREEMENT_KINDS = {"false_pass": ("fail", "pass"), "false_fail": ("pass", "fail")}


def run_disagreements(
    *, run: JudgeRun, kind: str | None = None, after_trace_id: int | None = None, limit: int = 25
) -> QuerySet[Judgment]:
    """Judgments whose verdict differs from the expert's label, in trace order from `after_trace_id` (keyset).

    Each carries `expert_verdict` and `expert_critique`. `kind` is "false_pass" (expert fail, judge pass) or
    "false_fail" (expert pass, judge fail); errors (no verdict) are not disagreements, they are counted apart.
    """
    criterion_id = run.version.judge.criterion_id
    # Comparing annotations (not the relation) keeps this one join per table; a disagreement is one of two pairs,
    # which also leaves out errors (empty verdict) and traces the expert has not labelled.
    kinds = [kind] if kind is not None else list(DISAGREEMENT_KINDS)
    pairs = Q()
    for name in kinds:
        expert_verdict, judge_verdict = DISAGREEMENT_KINDS[name]
        pairs |= Q(expert_verdict=expert_verdict, verdict=judge_verdict)
    queryset = (
        Judgment.objects.filter(run=run)
        .annotate(
            expert=FilteredRelation("trace__labels", condition=Q(trace__labels__criterion_id=criterion_id)),
            expert_verdict=F("expert__verdict"),
            expert_critique=F("expert__critique"),
        )
        .filter(pairs)
        .select_related("trace")
        .only(
            "id",
            "run_id",
            "verdict",
            "reasoning",
            "error",
            "trace__id",
            "trace__external_id",
            "trace__input",
            "trace__output",
            "trace__messages",
        )
        .order_by("trace_id")
    )
    if after_trace_id is not None:
        queryset = queryset.filter(trace_id__gt=after_trace_id)
    return queryset[:limit]


# --- one judge's page: its versions and their iteration history ---------------------------------------------------


def judge_versions_page(*, judge: Judge, limit: int) -> list[JudgeVersion]:
    """The judge's newest `limit` versions, newest first, without the (possibly large) trained artifact and frozen
    example traces: of the snapshot, only what the page shows (`frozen_criterion`, `frozen_definition` and
    `frozen_examples`, each None for a version that froze none)."""
    return list(
        JudgeVersion.objects.filter(judge=judge)
        .defer("artifact", "snapshot")
        .annotate(
            frozen_criterion=KT("snapshot__criterion"),
            frozen_definition=KT("snapshot__definition"),
            frozen_examples=KeyTransform("examples", "snapshot"),
        )
        .select_related("created_by")
        .order_by("-number")[:limit]
    )


def latest_dev_runs_by_version(*, judge: Judge, numbers: list[int]) -> dict[int, JudgeRun]:
    """version number → that version's latest finished (done) run on the dev split, in one query."""
    ranked = (
        JudgeRun.objects.filter(
            version__judge=judge, version__number__in=numbers, split=JudgeRun.Split.DEV, status=JudgeRun.Status.DONE
        )
        .annotate(
            version_number=F("version__number"),
            rank=Window(
                RowNumber(),
                partition_by=[F("version_id")],
                order_by=[F("finished_at").desc(), F("id").desc()],
            ),
        )
        .filter(rank=1)
    )
    return {run.version_number: run for run in ranked}


def judge_version_numbers(*, judge: Judge) -> set[int]:
    """Every version number of the judge, however many the page shows."""
    return set(JudgeVersion.objects.filter(judge=judge).values_list("number", flat=True))


def judge_version_pair(*, judge: Judge, old: int, new: int) -> tuple[JudgeVersion, JudgeVersion]:
    """Two of the judge's versions, with only their numbers, configs and what they froze but the example traces (for
    a diff); both must exist."""
    pair = {
        v.number: v
        for v in JudgeVersion.objects.filter(judge=judge, number__in=(old, new))
        .only("number", "config")
        .annotate(
            frozen_criterion=KT("snapshot__criterion"),
            frozen_definition=KT("snapshot__definition"),
            frozen_examples=KeyTransform("examples", "snapshot"),
        )
    }
    return pair[old], pair[new]


# --- one run: its progress and its disagreements with the expert ---------------------------------------------------


@dataclass(frozen=True)
class RunProgress:
    done: int
    total: int
    eta: timedelta | None
    finished: bool = False

    @property
    def percent(self) -> int:
        # A finished run is complete even when an external judge's copy covered fewer traces than the split.
        return 100 if self.finished or not self.total else min(100, self.done * 100 // self.total)

    @property
    def eta_seconds(self) -> int | None:
        return None if self.eta is None else max(1, round(self.eta.total_seconds()))


def run_progress(*, run: JudgeRun, now: datetime | None = None) -> RunProgress:
    """How far the run is, and, while it runs, how long the rest should take at the pace so far."""
    done = run_judged_count(run)
    if run.is_finished:
        return RunProgress(done=done, total=run.total, eta=None, finished=True)
    eta = None
    if run.started_at and 0 < done < run.total:
        elapsed = (now or timezone.now()) - run.started_at
        eta = elapsed * ((run.total - done) / done)
    return RunProgress(done=done, total=run.total, eta=eta)


@dataclass(frozen=True)
class DisagreementsPage:
    judgments: list[Judgment]  # as run_disagreements gives them
    has_more: bool  # another page follows the last judgment's trace


def run_disagreements_page(
    *, run: JudgeRun, kind: str | None, after_trace_id: int | None, limit: int
) -> DisagreementsPage:
    """One page of a finished run's disagreements of `kind` (None: both kinds) after the keyset cursor."""
    report = run.report or {}
    counted = {"false_pass": report.get("fp", 0), "false_fail": report.get("fn", 0)}.get(
        kind or "", report.get("fp", 0) + report.get("fn", 0)
    )
    # None of this kind in the report: skip a query that would scan every judgment of the run to find none.
    if not counted:
        return DisagreementsPage(judgments=[], has_more=False)
    page = list(run_disagreements(run=run, kind=kind, after_trace_id=after_trace_id, limit=limit + 1))
    return DisagreementsPage(judgments=page[:limit], has_more=len(page) > limit)


# --- two runs of one criterion side by side ------------------------------------------------------------------------

# Stamped keys never go stale; this only bounds how long a comparison nobody reopens stays in the cache.
COMPARE_COUNTS_CACHE_SECONDS = 24 * 3600
NOT_JUDGED = "-"  # in the joined counts: the run has no judgment for the trace (an error has verdict "")
SKIPPED = "~"  # in the joined counts: the run skipped the trace (a reason such as "no reference", no verdict)


class RunPairError(DomainError):
    """Two runs that cannot be compared; the message names the request parameter at fault (`name`)."""


def comparable_run(*, project: Project, run_id: int, name: str) -> JudgeRun:
    """A finished run of the project, with its judge and criterion; RunPairError naming `name` otherwise."""
    run = (
        JudgeRun.objects.filter(pk=run_id, version__judge__project=project)
        .select_related("version__judge__criterion", "version__judge__project")
        .first()
    )
    if run is None:
        raise RunPairError(f"{name}: run {run_id} is not a run of this project")
    if run.status != JudgeRun.Status.DONE:
        raise RunPairError(f"{name}: run {run_id} is {run.status}, not done; compare finished runs")
    return run


def latest_comparable_run(*, project: Project, judge_id: int, number: int, split: str, name: str) -> JudgeRun:
    """Version `number` of the project's judge `judge_id`: its latest finished run on `split`."""
    judge = Judge.objects.filter(pk=judge_id, project=project).first()
    if judge is None:
        raise RunPairError(f"judge: {judge_id} is not a judge of this project")
    version = judge.versions.filter(number=number).first()
    if version is None:
        raise RunPairError(f"{name}: {judge.name} has no version {number}")
    run = (
        JudgeRun.objects.filter(version=version, split=split, status=JudgeRun.Status.DONE)
        .order_by("-finished_at", "-id")
        .first()
    )
    if run is None:
        raise RunPairError(f"{name}: {version} has no finished run on {split}; run it there first")
    return comparable_run(project=project, run_id=run.pk, name=name)


def run_pair_check(*, run_a: JudgeRun, run_b: JudgeRun) -> None:
    """Two different runs of judges of the same criterion, or RunPairError."""
    if run_a.version.judge.criterion_id != run_b.version.judge.criterion_id:
        raise RunPairError(
            f"b: run {run_b.pk} judges {run_b.version.judge.criterion.name!r}, run {run_a.pk} judges "
            f"{run_a.version.judge.criterion.name!r}; compare judges of the same criterion"
        )
    if run_a.pk == run_b.pk:
        raise RunPairError(f"a, b: both name run {run_a.pk}; pick two different runs")


def judge_choices(*, project: Project) -> list[Judge]:
    """The comparison picker's judges, in criterion order, each with its criterion and `latest_number`."""
    return list(
        Judge.objects.filter(project=project)
        .select_related("criterion")
        .annotate(latest_number=Max("versions__number"))
        .order_by("criterion__position", "criterion_id", "name")
    )


def compare_counts(*, run_a: JudgeRun, run_b: JudgeRun) -> dict[tuple[str, str, str], int]:
    """(expert verdict, A's verdict, B's verdict) → count over the expert-labelled traces either run judged;
    NOT_JUDGED where a run has no judgment for the trace, SKIPPED where it skipped the trace, "" where its judgment
    was an error.

    Reading two runs of 200,000 judgments takes about a second, and every page of differing traces needs the counts
    again, so they are cached under a stamp of the criterion's labels (count, newest id, latest change): a label
    added, changed or deleted moves it. Finished runs' judgments do not change, so the run ids complete the key."""
    criterion_id = run_a.version.judge.criterion_id
    stamp = Label.objects.filter(criterion_id=criterion_id).aggregate(
        n=Count("id"), last=Max("id"), at=Max("updated_at")
    )
    at = stamp["at"].isoformat() if stamp["at"] else ""
    project = run_a.version.judge.project
    # "judge-compare-2": counts cached before skips had their own marker hold them as errors ("").
    key = f"{project.cache_key('judge-compare-2')}:{run_a.pk}:{run_b.pk}:{stamp['n']}:{stamp['last']}:{at}"
    cached = cache.get(key)
    if cached is not None:
        return {tuple(k): n for k, n in cached}
    counts = _compare_counts_uncached(run_a, run_b)
    cache.set(key, [[list(k), n] for k, n in counts.items()], timeout=COMPARE_COUNTS_CACHE_SECONDS)
    return counts


def _compare_counts_uncached(run_a: JudgeRun, run_b: JudgeRun) -> dict[tuple[str, str, str], int]:
    judgment, label = Judgment._meta.db_table, Label._meta.db_table
    # A skip has an empty verdict like an error; its reason tells them apart.
    judged = f"SELECT trace_id, CASE WHEN skipped <> '' THEN %s ELSE verdict END AS verdict FROM {judgment}"
    sql = f"""
        SELECT l.verdict, COALESCE(ja.verdict, %s), COALESCE(jb.verdict, %s), COUNT(*)
        FROM ({judged} WHERE run_id = %s) ja
        FULL OUTER JOIN ({judged} WHERE run_id = %s) jb ON jb.trace_id = ja.trace_id
        JOIN {label} l ON l.trace_id = COALESCE(ja.trace_id, jb.trace_id) AND l.criterion_id = %s
        GROUP BY 1, 2, 3
    """  # noqa: S608 — table names come from the models, every value is a parameter
    with connection.cursor() as cursor:
        params = [NOT_JUDGED, NOT_JUDGED, SKIPPED, run_a.pk, SKIPPED, run_b.pk, run_a.version.judge.criterion_id]
        cursor.execute(sql, params)
        return {(e, a, b): n for e, a, b, n in cursor.fetchall()}


def comparison_exclusions(counts: dict[tuple[str, str, str], int]) -> dict[str, int]:
    """Labelled traces left out of the comparison, each under one reason, the first that applies: judged only by A,
    only by B, skipped by either (not judged, as run reports count skips: neither an error nor a verdict), an error
    on either."""
    out = {"only_a": 0, "only_b": 0, "skipped": 0, "errors": 0}
    for (_e, a, b), n in counts.items():
        if b == NOT_JUDGED:
            out["only_a"] += n
        elif a == NOT_JUDGED:
            out["only_b"] += n
        elif SKIPPED in (a, b):
            out["skipped"] += n
        elif not a or not b:
            out["errors"] += n
    return out


def differing_traces(
    *, run_a: JudgeRun, run_b: JudgeRun, after_trace_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """Labelled traces on which the two versions gave different verdicts, in trace order after the keyset cursor,
    with the expert's verdict and both judges' reasoning."""
    judgment, label, trace = Judgment._meta.db_table, Label._meta.db_table, Trace._meta.db_table
    sql = f"""
        SELECT t.id, t.external_id, l.verdict, ja.verdict, ja.reasoning, jb.verdict, jb.reasoning
        FROM {judgment} ja
        JOIN {judgment} jb ON jb.run_id = %s AND jb.trace_id = ja.trace_id
        JOIN {label} l ON l.trace_id = ja.trace_id AND l.criterion_id = %s
        JOIN {trace} t ON t.id = ja.trace_id
        WHERE ja.run_id = %s AND ja.verdict <> '' AND jb.verdict <> '' AND ja.verdict <> jb.verdict
          AND ja.trace_id > %s AND jb.trace_id > %s AND l.trace_id > %s AND t.id > %s
        ORDER BY ja.trace_id
        LIMIT %s
    """  # noqa: S608 — table names come from the models, every value is a parameter
    # The cursor is repeated on every joined table: PostgreSQL does not carry an inequality across a join, and
    # without it a merge join would walk the other indexes from the first trace to reach a deep page.
    after = after_trace_id or 0
    params = [run_b.pk, run_a.version.judge.criterion_id, run_a.pk, after, after, after, after, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        {
            "trace_id": trace_id,
            "external_id": external_id,
            "expert": expert,
            "a": a,
            "a_reasoning": a_reasoning,
            "b": b,
            "b_reasoning": b_reasoning,
            "right": "a" if a == expert else "b",
        }
        for trace_id, external_id, expert, a, a_reasoning, b, b_reasoning in rows
    ]
