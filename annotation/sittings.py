"""The expert's sitting: a stretch of reviewing, kept in the browser session per project, and what each label
records of it (how long the trace was open, its position in the sitting, which queue served it).

Reviewers miss defects when tired; the fatigue chart (judges.reliability) reads these records to show whether the
expert finds fewer failures late in a long sitting, and the review page suggests a break after
EVALSTUDIO_SITTING_BREAK_MINUTES or EVALSTUDIO_SITTING_BREAK_TRACES (it never blocks). A sitting ends by itself
after EVALSTUDIO_SITTING_GAP_MINUTES without a label or a "reviewed", or when the expert starts a new one.

How long a trace was open comes from a signed timestamp the trace page carries (`opened_token`), sent back with each
label save: no write when a page is shown, and a page prefetched but never read records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from django.utils import timezone

from annotation.models import Project, ReviewSession, Trace
from annotation.queue import QueueParams, reviewed_since
from annotation.services import LabelContext

DEFAULT_TARGET = 100
_SALT = "annotation.sittings.opened"
# A page open longer than this was left open, not read: its time is not recorded.
MAX_SECONDS_ON_TRACE = 3 * 3600


@dataclass(frozen=True)
class Sitting:
    started: datetime
    target: int
    done: int
    minutes: float

    @property
    def percent(self) -> int:
        return min(100, int(100 * self.done / self.target)) if self.target else 0

    @property
    def break_due(self) -> bool:
        """Long enough that a break would help (a suggestion on the page, never a block)."""
        return (
            self.minutes >= settings.EVALSTUDIO_SITTING_BREAK_MINUTES
            or self.done >= settings.EVALSTUDIO_SITTING_BREAK_TRACES
        )


def _key(project: Project) -> str:
    return f"review_sitting:{project.pk}"


def _parse(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def sitting_state(request: HttpRequest, project: Project) -> dict[str, Any]:
    """The sitting's state (`started`, `target`, `last`), begun afresh when there is none or the last action is
    older than the gap."""
    now = timezone.now()
    state = request.session.get(_key(project))
    gap = timedelta(minutes=settings.EVALSTUDIO_SITTING_GAP_MINUTES)
    if not isinstance(state, dict) or _parse(state.get("started")) is None:
        state = {"started": now.isoformat(), "target": DEFAULT_TARGET}
        request.session[_key(project)] = state
    else:
        last = _parse(state.get("last"))
        if last is not None and now - last > gap:
            state = {**state, "started": now.isoformat(), "last": None}
            request.session[_key(project)] = state
    return state


def sitting_save(request: HttpRequest, project: Project, state: dict[str, Any]) -> None:
    request.session[_key(project)] = state


def _revisited(state: dict[str, Any], started: datetime) -> dict[str, datetime]:
    """Trace id → when this sitting first reached it, for the traces first reviewed before the sitting began.

    `reviewed_at` is a trace's first review ever, so the review log counts only the traces the sitting reviewed
    first; these others are counted from here. Entries older than `started` belong to an earlier sitting."""
    raw = state.get("revisited")
    entries = {key: _parse(value) for key, value in raw.items()} if isinstance(raw, dict) else {}
    return {key: at for key, at in entries.items() if at is not None and at >= started}


def _count(project: Project, started: datetime, revisited: dict[str, datetime], upto: datetime | None) -> int:
    """How many traces this sitting reached, each once, up to `upto` (all of them when None): the traces first
    reviewed in it (a range on the review-log index) and the earlier ones it came back to."""
    if upto is None:
        return reviewed_since(project=project, since=started) + len(revisited)
    first = Trace.objects.filter(project=project, reviewed_at__gte=started, reviewed_at__lte=upto).count()
    return first + sum(1 for at in revisited.values() if at <= upto)


def sitting_get(request: HttpRequest, project: Project) -> Sitting:
    state = sitting_state(request, project)
    started = _parse(state["started"]) or timezone.now()
    target = state.get("target") if isinstance(state.get("target"), int) else DEFAULT_TARGET
    minutes = max(0.0, (timezone.now() - started).total_seconds() / 60)
    done = _count(project, started, _revisited(state, started), None)
    return Sitting(started=started, target=target, done=done, minutes=minutes)


def sitting_act(request: HttpRequest, project: Project, trace: Trace, params: QueueParams) -> LabelContext:
    """Before the expert's label or "reviewed" on `trace`: the sitting's last action moves to now, and the label
    context is what this action records — the trace's position in the sitting (counting it once), the sitting's
    minutes so far, how long the trace was open, and which queue served it."""
    state = sitting_state(request, project)
    now = timezone.now()
    started = _parse(state["started"]) or now
    revisited = _revisited(state, started)
    if trace.reviewed_at is None:
        # First reviewed by this action: it joins the review log after every trace the sitting reached so far.
        position = _count(project, started, revisited, None) + 1
    elif trace.reviewed_at >= started:
        # Reached earlier in this sitting (a label changed, another criterion): its position then.
        position = _count(project, started, revisited, trace.reviewed_at)
    else:
        # Reviewed in an earlier sitting: one trace of this one from its first action here, at that position.
        position = _count(project, started, revisited, revisited.setdefault(str(trace.pk), now))
    sitting_save(
        request,
        project,
        {**state, "last": now.isoformat(), "revisited": {key: at.isoformat() for key, at in revisited.items()}},
    )
    return LabelContext(
        seconds_on_trace=seconds_open(request.POST.get("opened", ""), now=now),
        sitting_position=position,
        sitting_minutes=round((now - started).total_seconds() / 60, 2),
        via=queue_via(project, params),
    )


def opened_token(now: datetime | None = None) -> str:
    """The signed time the trace page was rendered, for its label forms to send back."""
    return signing.dumps((now or timezone.now()).timestamp(), salt=_SALT)


def seconds_open(token: str, *, now: datetime) -> float | None:
    """Seconds since the page carrying `token` was rendered; None for a missing, forged or stale token."""
    if not token:
        return None
    try:
        opened = float(signing.loads(token, salt=_SALT, max_age=MAX_SECONDS_ON_TRACE))
    except (signing.BadSignature, TypeError, ValueError):
        return None
    seconds = now.timestamp() - opened
    return round(seconds, 1) if 0 <= seconds <= MAX_SECONDS_ON_TRACE else None


def queue_via(project: Project, params: QueueParams) -> str:
    """Which queue served the trace: `random`, `newest`, `oldest`, or `session:<strategy>` (drift signals compare
    only the expert's labels from random draws, whose traces are comparable week to week)."""
    if params.session:
        strategy = (
            ReviewSession.objects.filter(project=project, pk=params.session).values_list("strategy", flat=True).first()
        )
        return f"session:{strategy}" if strategy else ""
    return params.order or ""
