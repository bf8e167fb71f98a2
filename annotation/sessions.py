"""Review sessions (the cadence): pick N traces by a strategy, review them in a fixed order, see what they found.

Every strategy is written to stay fast on a project with a million traces:
- random walks the stored shuffle_key index from a seeded start point and wraps around (no ORDER BY random());
- stratified and rare-metadata count the key's values once (one GROUP BY), then take each value's traces either by
  the metadata GIN index (few traces) or by walking the shuffle index until the quota is met (many traces);
- longest orders by the byte length of input + output + messages with a LIMIT (a top-N heapsort, no stored column);
- newest production walks the (project, occurred_at) index backwards;
- negative feedback first reads the partial index of negative feedback rows, then walks the shuffle index.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import BigIntegerField, Count, Max, Min, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from annotation.models import (
    FailureMode,
    FailureModeChange,
    NoteFailureMode,
    Project,
    ReviewSession,
    ReviewSessionTrace,
    Trace,
)
from annotation.queue import QueueParams, filter_traces
from annotation.sampling import allocate_equal, allocate_proportional, circular_distance, seeded_start
from annotation.services import DomainError

Strategy = ReviewSession.Strategy

DEFAULT_SIZE = 100
MIN_SIZE = 1
MAX_SIZE = 1000
SEED_MAX_CHARS = 64
NAME_MAX_CHARS = ReviewSession._meta.get_field("name").max_length
METADATA_KEY_MAX_CHARS = 200
# Strategies that need a metadata key to work on.
KEYED = frozenset({Strategy.STRATIFIED, Strategy.RARE_METADATA})
# A disagreement session is picked from one judge run's disagreements, so it starts from that run's page.
DISAGREEMENTS_FROM_A_RUN = (
    "A session of judge–expert disagreements starts from a judge run: open Judges → a finished run → "
    "“Review these disagreements”. Choose another strategy here."
)
# A recalibration session is picked from one criterion's labels made under an earlier definition.
RECALIBRATION_FROM_A_CRITERION = (
    "A recalibration session starts from a criterion whose definition changed: open the criterion's page → "
    "“Recalibrate”. Choose another strategy here."
)


@dataclass(frozen=True)
class SessionRequest:
    """What to pick. `filters` narrows every strategy (source, metadata key=value, as in the review queue)."""

    strategy: str
    size: int = DEFAULT_SIZE
    name: str = ""
    seed: str = ""
    include_reviewed: bool = False  # random only
    metadata_key: str = ""  # stratified and rare-metadata
    proportional: bool = False  # stratified: shares follow the values' sizes instead of being equal
    filters: QueueParams = QueueParams()


@dataclass(frozen=True)
class SessionCreated:
    session: ReviewSession
    # Set when fewer eligible traces existed than were asked for: the session holds what there was.
    shortfall_message: str = ""


# Picking ----------------------------------------------------------------------------------------------------------


def _eligible(project: Project, request: SessionRequest) -> QuerySet[Trace]:
    base = Trace.objects.filter(project=project)
    if not request.include_reviewed:
        base = base.filter(reviewed_at__isnull=True)
    return filter_traces(base, replace(request.filters, reviewed="", session=None))


def _walk(queryset: QuerySet[Trace], start: int, limit: int) -> list[tuple[int, int]]:
    """Up to `limit` (id, shuffle_key) pairs from `start` onwards in shuffle order, wrapping around to the lowest
    keys: two range scans of the (project, shuffle_key, id) index, whatever the project's size."""
    ordered = queryset.order_by("shuffle_key", "id").values_list("id", "shuffle_key")
    rows = list(ordered.filter(shuffle_key__gte=start)[:limit])
    if len(rows) < limit:
        rows += list(ordered.filter(shuffle_key__lt=start)[: limit - len(rows)])
    return rows


def _in_circular_order(rows: Iterable[tuple[int, int]], start: int) -> list[tuple[int, int]]:
    return sorted(rows, key=lambda row: (circular_distance(row[1], start), row[0]))


def _pick_random(project: Project, request: SessionRequest, start: int) -> list[int]:
    if not request.include_reviewed:
        return [pk for pk, _ in _walk(_eligible(project, request), start, request.size)]
    # The shuffle index only covers unreviewed traces; the reviewed ones are walked on their own (a bitmap over the
    # review log) and both runs merged in circular order, which is the order one walk over all traces would give.
    eligible = _eligible(project, request)
    rows = _walk(eligible.filter(reviewed_at__isnull=True), start, request.size)
    rows += _walk(eligible.filter(reviewed_at__isnull=False), start, request.size)
    return [pk for pk, _ in _in_circular_order(rows, start)[: request.size]]


def _value_token(value: Any) -> str:
    """A hashable, canonical name for a JSON value (values may be lists or objects)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _value_counts(eligible: QuerySet[Trace], key: str) -> dict[str, tuple[Any, int]]:
    """token → (value, eligible traces with it) for one metadata key; absent keys and JSON nulls are left out."""
    rows = (
        eligible.annotate(_value=KeyTransform(key, "metadata"))
        .filter(_value__isnull=False)
        .values("_value")
        .annotate(_n=Count("id"))
        .order_by()
        .values_list("_value", "_n")
    )
    counts: dict[str, tuple[Any, int]] = {}
    for value, number in rows:
        if value is None:
            continue
        token = _value_token(value)
        previous = counts.get(token, (value, 0))[1]
        counts[token] = (value, previous + number)
    return counts


def _require_values(project: Project, key: str, counts: dict[str, tuple[Any, int]]) -> None:
    if counts:
        return
    if not Trace.objects.filter(project=project, metadata__has_key=key).exists():
        raise DomainError(f"No trace in this project has the metadata key “{key}”. Check the key's spelling.")
    raise DomainError(
        f"No eligible trace has a value for the metadata key “{key}”: they are all reviewed or filtered out."
    )


def _pick_for_value(
    eligible: QuerySet[Trace], key: str, value: Any, count: int, quota: int, start: int, population: int
) -> list[tuple[int, int]]:
    """`quota` traces with metadata[key] == value, the first ones in circular shuffle order from `start`.

    Reading all of a value's traces through the GIN index (containment, jsonb_path_ops) costs `count` rows; walking
    the shuffle index until `quota` of them turn up costs about quota × population / count rows. Take the cheaper.
    """
    if quota <= 0:
        return []
    same = eligible.alias(_value=KeyTransform(key, "metadata")).filter(_value=value)
    if count * count <= quota * population:
        if connection.vendor == "postgresql":
            # Containment is what the GIN index answers; the equality above then drops objects that merely contain
            # the value. SQLite has no containment operator and, at embedded scale, needs no index.
            same = same.filter(metadata__contains={key: value})
        return _in_circular_order(same.values_list("id", "shuffle_key"), start)[:quota]
    return _walk(same, start, quota)


def _pick_stratified(project: Project, request: SessionRequest, start: int, seed: str) -> list[int]:
    eligible = _eligible(project, request)
    key = request.metadata_key
    counts = _value_counts(eligible, key)
    _require_values(project, key, counts)
    sizes = {token: number for token, (_, number) in counts.items()}
    # A seeded order of the values decides who gets the leftover traces, and which values win when N is smaller
    # than the number of values.
    order = sorted(sizes, key=lambda token: (seeded_start(seed, token), token))
    allocate = allocate_proportional if request.proportional else allocate_equal
    quotas = allocate(sizes, request.size, order)
    population = sum(sizes.values())
    rows: list[tuple[int, int]] = []
    for token in order:
        value, number = counts[token]
        rows += _pick_for_value(eligible, key, value, number, quotas[token], start, population)
    # Reviewed in shuffle order, so stopping half-way still leaves a mix of values behind.
    return [pk for pk, _ in _in_circular_order(rows, start)]


def _pick_rare(project: Project, request: SessionRequest, start: int) -> list[int]:
    """Traces whose value for the key is among the rarest: values in increasing frequency until N are taken."""
    eligible = _eligible(project, request)
    key = request.metadata_key
    counts = _value_counts(eligible, key)
    _require_values(project, key, counts)
    population = sum(number for _, number in counts.values())
    rows: list[tuple[int, int]] = []
    for token in sorted(counts, key=lambda token: (counts[token][1], token)):
        wanted = request.size - len(rows)
        if wanted <= 0:
            break
        value, number = counts[token]
        rows += _pick_for_value(eligible, key, value, number, min(number, wanted), start, population)
    return [pk for pk, _ in rows]


def _text_bytes() -> RawSQL:
    """Bytes of input + output + messages. On PostgreSQL, octet_length of text reads the stored size without
    detoasting; only messages need a cast."""
    table = connection.ops.quote_name(Trace._meta.db_table)
    if connection.vendor == "postgresql":
        sql = (
            f"octet_length({table}.input) + octet_length({table}.output)"
            f" + COALESCE(octet_length({table}.messages::text), 0)"
        )
    else:
        sql = (
            f"length(CAST({table}.input AS BLOB)) + length(CAST({table}.output AS BLOB))"
            f" + COALESCE(length(CAST({table}.messages AS BLOB)), 0)"
        )
    return RawSQL(sql, [], output_field=BigIntegerField())


def _pick_longest(project: Project, request: SessionRequest) -> list[int]:
    # One pass over the project's traces with a top-N heapsort: no stored length column, hence no migration and
    # nothing more for ingestion to write. About 0.8-0.9 s at a million traces (bench/sessions.py).
    ranked = _eligible(project, request).annotate(_bytes=_text_bytes()).order_by("-_bytes", "id")
    return list(ranked.values_list("id", flat=True)[: request.size])


def _pick_newest_production(project: Project, request: SessionRequest) -> list[int]:
    # A backward walk of the (project, occurred_at, id) queue index, keeping production rows.
    eligible = _eligible(project, request).filter(source="production")
    return list(eligible.order_by("-occurred_at", "-id").values_list("id", flat=True)[: request.size])


def _pick_negative_feedback(project: Project, request: SessionRequest, start: int) -> list[int]:
    """Traces users gave negative feedback (thumbs down, a low rating) first — most negative items, then the latest
    — and the rest of the session filled in random order, so a session is full even when little feedback came in.
    Reads the partial index of negative feedback rows only."""
    eligible = _eligible(project, request)
    negative = (
        eligible.filter(feedback__negative=True)
        .annotate(_negatives=Count("feedback"), _latest=Max("feedback__received_at"))
        .order_by("-_negatives", "-_latest", "id")
        .values_list("id", flat=True)
    )
    picked = list(negative[: request.size])
    if len(picked) < request.size:
        rest = _walk(eligible.exclude(id__in=picked), start, request.size - len(picked))
        picked += [pk for pk, _ in rest]
    return picked


# Creating -------------------------------------------------------------------------------------------------------


def _validate(request: SessionRequest) -> None:
    if request.strategy not in Strategy.values:
        choices = ", ".join(Strategy.values)
        raise DomainError(f"Unknown strategy “{request.strategy}”; choose one of: {choices}.")
    if request.strategy == Strategy.DISAGREEMENTS:
        raise DomainError(DISAGREEMENTS_FROM_A_RUN)
    if request.strategy == Strategy.RECALIBRATION:
        raise DomainError(RECALIBRATION_FROM_A_CRITERION)
    if isinstance(request.size, bool) or not isinstance(request.size, int):
        raise DomainError(f"The session size must be a whole number from {MIN_SIZE} to {MAX_SIZE}.")
    if not MIN_SIZE <= request.size <= MAX_SIZE:
        raise DomainError(f"The session size must be from {MIN_SIZE} to {MAX_SIZE} traces; got {request.size}.")
    if len(request.name) > NAME_MAX_CHARS:
        raise DomainError(f"The session name is limited to {NAME_MAX_CHARS} characters.")
    if len(request.seed) > SEED_MAX_CHARS:
        raise DomainError(f"The seed is limited to {SEED_MAX_CHARS} characters.")
    label = Strategy(request.strategy).label
    if request.strategy in KEYED:
        if not request.metadata_key:
            raise DomainError(f"The strategy “{label}” needs a metadata key, e.g. locale.")
        if len(request.metadata_key) > METADATA_KEY_MAX_CHARS:
            raise DomainError(f"The metadata key is limited to {METADATA_KEY_MAX_CHARS} characters.")
    elif request.metadata_key:
        raise DomainError(f"The strategy “{label}” takes no metadata key; clear it or choose a stratified strategy.")
    if request.include_reviewed and request.strategy != Strategy.RANDOM:
        raise DomainError("Including reviewed traces is an option of the random strategy only.")
    if request.proportional and request.strategy != Strategy.STRATIFIED:
        raise DomainError("Proportional shares are an option of the stratified strategy only.")
    if request.strategy == Strategy.NEWEST_PRODUCTION and request.filters.source not in ("", "production"):
        raise DomainError(
            f"The strategy “{label}” picks source “production”; the source filter “{request.filters.source}” "
            "contradicts it. Clear the source filter."
        )


def _params_record(request: SessionRequest, seed: str) -> dict[str, Any]:
    """What explains the session later; only what the strategy used."""
    record: dict[str, Any] = {"requested": request.size}
    if request.strategy in {Strategy.RANDOM, Strategy.STRATIFIED, Strategy.RARE_METADATA, Strategy.NEGATIVE_FEEDBACK}:
        record["seed"] = seed
    if request.metadata_key:
        record["metadata_key"] = request.metadata_key
    if request.proportional:
        record["proportional"] = True
    if request.include_reviewed:
        record["include_reviewed"] = True
    if request.filters.source:
        record["source"] = request.filters.source
    if request.filters.meta_key:
        record["meta"] = request.filters.meta
    return record


def _pick(project: Project, request: SessionRequest, seed: str) -> list[int]:
    start = seeded_start(project.queue_seed, "session", seed)
    if request.strategy == Strategy.RANDOM:
        return _pick_random(project, request, start)
    if request.strategy == Strategy.STRATIFIED:
        return _pick_stratified(project, request, start, seed)
    if request.strategy == Strategy.RARE_METADATA:
        return _pick_rare(project, request, start)
    if request.strategy == Strategy.LONGEST:
        return _pick_longest(project, request)
    if request.strategy == Strategy.NEGATIVE_FEEDBACK:
        return _pick_negative_feedback(project, request, start)
    return _pick_newest_production(project, request)


@transaction.atomic
def review_session_create(
    *,
    project: Project,
    created_by: AbstractBaseUser,
    strategy: str,
    size: int = DEFAULT_SIZE,
    name: str = "",
    seed: str = "",
    include_reviewed: bool = False,
    metadata_key: str = "",
    proportional: bool = False,
    filters: QueueParams | None = None,
) -> SessionCreated:
    """Pick up to `size` traces by `strategy` and store them as a session in review order.

    The same seed on the same traces picks the same session; without one a seed is drawn and recorded. Fewer
    eligible traces than asked for make a smaller session (with a message saying so); none at all is an error and
    nothing is created.
    """
    request = SessionRequest(
        strategy=strategy,
        size=size,
        name=" ".join(name.split()),
        seed=seed.strip(),
        include_reviewed=include_reviewed,
        metadata_key=metadata_key.strip(),
        proportional=proportional,
        filters=filters or QueueParams(),
    )
    _validate(request)
    seed = request.seed or secrets.token_hex(4)
    # Each strategy picks a trace at most once; dict.fromkeys keeps that a certainty (a duplicate would break the
    # session's unique key) without changing the order.
    trace_ids = list(dict.fromkeys(_pick(project, request, seed)))
    if not trace_ids:
        scope = "traces" if request.include_reviewed else "unreviewed traces"
        filtered = " matching the filters" if request.filters.source or request.filters.meta_key else ""
        raise DomainError(
            f"No {scope}{filtered} fit the strategy “{Strategy(request.strategy).label}”, so no session was created."
        )
    session = review_session_store(
        project=project,
        created_by=created_by,
        strategy=request.strategy,
        name=request.name,
        params=_params_record(request, seed),
        items=[(trace_id, {}) for trace_id in trace_ids],
    )
    shortfall = ""
    if len(trace_ids) < request.size:
        shortfall = (
            f"Only {len(trace_ids)} eligible trace{'s' if len(trace_ids) != 1 else ''} for this strategy, "
            f"so the session holds {len(trace_ids)} instead of {request.size}."
        )
    return SessionCreated(session=session, shortfall_message=shortfall)


@transaction.atomic
def review_session_store(
    *,
    project: Project,
    created_by: AbstractBaseUser,
    strategy: str,
    items: list[tuple[int, dict[str, Any]]],
    name: str = "",
    params: dict[str, Any] | None = None,
) -> ReviewSession:
    """Stores a session of already picked traces, in the given order, each with the reason it was picked. Other
    apps pick some sessions themselves (judges: a run's disagreements) and store them through here."""
    if not items:
        raise DomainError("A review session needs at least one trace.")
    if len(items) > MAX_SIZE:
        raise DomainError(f"A review session holds at most {MAX_SIZE} traces; got {len(items)}.")
    label = Strategy(strategy).label
    session = ReviewSession.objects.create(
        project=project,
        name=" ".join(name.split())[:NAME_MAX_CHARS] or f"{label} · {timezone.localtime():%Y-%m-%d %H:%M}",
        strategy=strategy,
        params=params or {},
        size=len(items),
        created_by=created_by,
    )
    ReviewSessionTrace.objects.bulk_create(
        ReviewSessionTrace(session=session, trace_id=trace_id, position=position, reason=reason)
        for position, (trace_id, reason) in enumerate(items, start=1)
    )
    return session


def session_item_revisit(*, project: Project, session_id: int | None, trace: Trace) -> None:
    """Marks `trace` done in a session that revisits reviewed traces, once the expert acted on it there (a label,
    a note, or "reviewed"). Does nothing outside such a session or when already done, nor in a session that
    re-labels blind, whose items only the decision after the blind label completes (annotation.relabels)."""
    if not session_id:
        return
    ReviewSessionTrace.objects.filter(
        session_id=session_id,
        session__project=project,
        session__strategy__in=ReviewSession.REVISITING - ReviewSession.BLIND,
        trace=trace,
        revisited_at=None,
    ).update(revisited_at=timezone.now())


# Reading --------------------------------------------------------------------------------------------------------


def mode_first_traces(*, project: Project) -> dict[int, int]:
    """Each failure mode's first trace in review order (reviewed_at, then id) among the traces whose notes carry
    it — the trace where taxonomy.saturation_curve counts the mode as new. Two aggregate queries."""
    links = NoteFailureMode.objects.filter(
        failure_mode__project=project, trace__project=project, trace__reviewed_at__isnull=False
    )
    first_stamp: dict[int, datetime] = dict(
        links.values("failure_mode_id")
        .annotate(first=Min("trace__reviewed_at"))
        .values_list("failure_mode_id", "first")
        .order_by()
    )
    if not first_stamp:
        return {}
    first_trace: dict[int, int] = {}
    rows = links.filter(trace__reviewed_at__in=set(first_stamp.values())).values_list(
        "failure_mode_id", "trace__reviewed_at", "trace_id"
    )
    for mode_id, stamp, trace_id in rows:
        if stamp == first_stamp[mode_id]:
            first_trace[mode_id] = min(first_trace.get(mode_id, trace_id), trace_id)
    return first_trace


# The first-trace map costs a join of every coded link with the review log (~0.4 s at 224,000 links and a million
# traces). It is cached under a fingerprint of what it depends on: the review log (size and newest entry), the
# project's links (count and newest id) and the codebook's history (a merge moves links with an UPDATE, which
# leaves count and ids alone, but records a change), so any review, coding, uncoding, merge or split computes it
# afresh. The timeout only bounds how long an entry for a fingerprint nobody asks for stays in the cache.
FIRST_TRACES_CACHE_SECONDS = 600


def _first_traces_fingerprint(project: Project) -> str:
    log = Trace.objects.filter(project=project, reviewed_at__isnull=False)
    head = log.order_by("-reviewed_at", "-id").values_list("reviewed_at", "id").first()
    mode_ids = list(FailureMode.objects.filter(project=project).values_list("id", flat=True))
    links = NoteFailureMode.objects.filter(failure_mode_id__in=mode_ids)
    newest_link = links.aggregate(newest=Max("id"))["newest"]
    newest_change = FailureModeChange.objects.filter(project=project).aggregate(newest=Max("id"))["newest"]
    stamp = f"{head[0].isoformat()}~{head[1]}" if head else "-"
    return f"{log.count()}:{stamp}:{links.count()}:{newest_link}:{newest_change}"


def cached_mode_first_traces(*, project: Project) -> dict[int, int]:
    """mode_first_traces, reused while neither the review log nor the project's note–mode links changed."""
    key = f"{project.cache_key('mode-first-traces')}:{_first_traces_fingerprint(project)}"
    cached = cache.get(key)
    if cached is None:
        cached = mode_first_traces(project=project)
        cache.set(key, cached, FIRST_TRACES_CACHE_SECONDS)
    return cached


@dataclass(frozen=True)
class SessionSummary:
    session: ReviewSession
    reviewed: int
    new_failure_modes: int

    @property
    def percent(self) -> int:
        size = self.session.size
        return min(100, int(100 * self.reviewed / size)) if size else 0


def session_summaries(*, project: Project, sessions: list[ReviewSession]) -> list[SessionSummary]:
    """Reviewed-so-far and new-failure-modes-found for a page of sessions, in a fixed number of queries whatever
    its length."""
    if not sessions:
        return []
    ids = [session.pk for session in sessions]
    done = Q(session__strategy__in=ReviewSession.REVISITING, revisited_at__isnull=False) | (
        ~Q(session__strategy__in=ReviewSession.REVISITING) & Q(trace__reviewed_at__isnull=False)
    )
    reviewed = dict(
        ReviewSessionTrace.objects.filter(done, session_id__in=ids)
        .values("session_id")
        .annotate(n=Count("id"))
        .values_list("session_id", "n")
        .order_by()
    )
    modes_at = Counter(cached_mode_first_traces(project=project).values())
    new_modes: Counter[int] = Counter()
    if modes_at:
        for session_id, trace_id in ReviewSessionTrace.objects.filter(
            session_id__in=ids, trace_id__in=list(modes_at)
        ).values_list("session_id", "trace_id"):
            new_modes[session_id] += modes_at[trace_id]
    return [
        SessionSummary(session=s, reviewed=reviewed.get(s.pk, 0), new_failure_modes=new_modes[s.pk]) for s in sessions
    ]


def session_new_mode_names(*, project: Project, session: ReviewSession) -> list[str]:
    """The names of the failure modes first seen on this session's traces."""
    first = cached_mode_first_traces(project=project)
    if not first:
        return []
    in_session = set(
        ReviewSessionTrace.objects.filter(session=session, trace_id__in=set(first.values())).values_list(
            "trace_id", flat=True
        )
    )
    mode_ids = [mode_id for mode_id, trace_id in first.items() if trace_id in in_session]
    return sorted(
        FailureMode.objects.filter(pk__in=mode_ids).values_list("name", flat=True), key=lambda n: (n.casefold(), n)
    )


def describe_params(session: ReviewSession) -> str:
    """A one-line account of how the session was picked, for the list."""
    params = session.params or {}
    parts = []
    if params.get("metadata_key"):
        parts.append(f"key {params['metadata_key']}")
    if params.get("proportional"):
        parts.append("proportional")
    if params.get("include_reviewed"):
        parts.append("incl. reviewed")
    if params.get("source"):
        parts.append(f"source {params['source']}")
    if params.get("meta"):
        parts.append(f"where {params['meta']}")
    if params.get("seed"):
        parts.append(f"seed {params['seed']}")
    if session.strategy == Strategy.RECALIBRATION and params.get("criterion"):
        parts.append(f"{params['criterion']}, labels before definition v{params.get('version')}")
    requested = params.get("requested")
    if isinstance(requested, int) and requested != session.size:
        parts.append(f"{requested} asked")
    return " · ".join(parts)
