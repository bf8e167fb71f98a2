"""Writes that span models or have side effects. Each runs in a transaction and raises DomainError on bad input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotation.models import (
    ApiToken,
    Criterion,
    CriterionVersion,
    FailureMode,
    Label,
    LabelChange,
    Membership,
    Note,
    Project,
    Role,
    Trace,
    Verdict,
)
from core.validation import nul_message


class DomainError(Exception):
    """A rule of the domain was broken; the message is shown to the user as is."""


@transaction.atomic
def project_create(
    *, slug: str, name: str = "", expert: AbstractBaseUser | None = None, description: str = ""
) -> Project:
    if Project.objects.filter(slug=slug).exists():
        raise DomainError(f"A project with slug {slug!r} already exists")
    project = Project.objects.create(slug=slug, name=name or slug, description=description)
    if expert is not None:
        project_set_expert(project=project, user=expert)
    return project


@transaction.atomic
def project_set_expert(*, project: Project, user: AbstractBaseUser) -> None:
    """Make `user` the project's one expert; a previous expert stays on as an engineer."""
    if project.expert_id and project.expert_id != user.pk:
        Membership.objects.filter(project=project, user_id=project.expert_id).update(role=Role.ENGINEER)
    project.expert = user
    project.save(update_fields=["expert"])
    Membership.objects.update_or_create(project=project, user=user, defaults={"role": Role.EXPERT})


@transaction.atomic
def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    if role == Role.EXPERT:
        project_set_expert(project=project, user=user)
        return Membership.objects.get(project=project, user=user)
    if project.expert_id == user.pk:
        raise DomainError(f"{user} is the project's expert; make someone else the expert first")
    if role not in Role.values:
        raise DomainError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}")
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


# A token lives at most this long when it expires at all (the form and the command refuse more); no expiry is allowed.
API_TOKEN_MAX_DAYS = 3650


def api_token_create(
    *,
    project: Project,
    name: str,
    expires_at: datetime | None = None,
    created_by: AbstractBaseUser | None = None,
) -> tuple[ApiToken, str]:
    """A new token for the project; the raw value is returned once and only its hash is stored."""
    name = name.strip()
    if not name:
        raise DomainError("A token needs a name")
    if len(name) > ApiToken._meta.get_field("name").max_length:
        raise DomainError(f"A token's name has at most {ApiToken._meta.get_field('name').max_length} characters")
    now = timezone.now()
    if expires_at is not None:
        if expires_at <= now:
            raise DomainError("A token's expiry must be in the future")
        if expires_at > now + timedelta(days=API_TOKEN_MAX_DAYS):
            raise DomainError(f"A token's expiry is at most {API_TOKEN_MAX_DAYS} days away; leave it empty for none")
    raw = ApiToken.generate()
    token = ApiToken.objects.create(
        project=project,
        name=name,
        token_hash=ApiToken.hash(raw),
        created_at=now,
        created_by=created_by,
        expires_at=expires_at,
    )
    return token, raw


def api_token_revoke(*, token: ApiToken, user: AbstractBaseUser | None) -> ApiToken:
    """Revoke the token (kept for the record). Revoking twice keeps the first revocation: the conditional UPDATE
    makes two clicks, or two tabs, one revocation."""
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now(), revoked_by=user)
    token.refresh_from_db()
    return token


# Reviewing: labels, notes and the review log ------------------------------------------------------------------

# Autosave sends the critique every pause in typing; edits by the same author within this window update the
# latest history row instead of adding one, so history keeps meaningful states rather than keystrokes.
LABEL_HISTORY_COALESCE_SECONDS = 60
NOTE_MAX_CHARS = 20_000
CRITIQUE_MAX_CHARS = 20_000


def _mark_reviewed(trace: Trace, when: datetime) -> None:
    # Conditional UPDATE: two tabs labelling at once cannot move the first review time.
    if trace.reviewed_at is None:
        Trace.objects.filter(pk=trace.pk, reviewed_at__isnull=True).update(reviewed_at=when)
        trace.reviewed_at = Trace.objects.filter(pk=trace.pk).values_list("reviewed_at", flat=True).get()


@dataclass(frozen=True)
class LabelContext:
    """How a verdict was given, recorded with it (LabelChange): the review page fills it in (annotation.sittings)."""

    seconds_on_trace: float | None = None
    sitting_position: int | None = None
    sitting_minutes: float | None = None
    via: str = ""


def _require_expert(trace: Trace, user: AbstractBaseUser, action: str) -> None:
    if trace.project.expert_id is None or trace.project.expert_id != user.pk:
        raise DomainError(f"Only the project's expert can {action}; their labels are the ground truth")


@transaction.atomic
def label_submit(
    *,
    trace: Trace,
    criterion: Criterion,
    verdict: str,
    critique: str,
    user: AbstractBaseUser,
    context: LabelContext | None = None,
) -> Label:
    """Save the expert's verdict and critique for one criterion, recording the new state in the label's history,
    with how it was given (`context`: the review page's sitting and timing) when known."""
    _require_expert(trace, user, "label traces")
    if criterion.project_id != trace.project_id:
        raise DomainError(f"Criterion {criterion.name!r} belongs to another project")
    if verdict not in Verdict.values:
        raise DomainError(f"Verdict must be one of {', '.join(Verdict.values)}, got {verdict!r}")
    if len(critique) > CRITIQUE_MAX_CHARS:
        raise DomainError(f"A critique is limited to {CRITIQUE_MAX_CHARS} characters")
    now = timezone.now()
    # The definition's version as it is now, not as the caller's criterion object was loaded (the page may be old).
    version = Criterion.objects.filter(pk=criterion.pk).values_list("version", flat=True).get()
    label = Label.objects.select_for_update().filter(trace=trace, criterion=criterion).first()
    if label is None:
        # The unique constraint settles a race between two first saves: the loser's atomic block fails cleanly.
        label = Label.objects.create(
            trace=trace, criterion=criterion, verdict=verdict, critique=critique, author=user, created_at=now,
            updated_at=now, criterion_version=version,
        )  # fmt: skip
    elif label.verdict == verdict and label.critique == critique and label.criterion_version == version:
        _mark_reviewed(trace, now)
        return label
    else:
        # The same verdict saved under a newer definition is a confirmation under it: the label moves to it.
        label.verdict, label.critique, label.author, label.updated_at = verdict, critique, user, now
        label.criterion_version = version
        label.save(update_fields=["verdict", "critique", "author", "updated_at", "criterion_version"])
    latest = label.changes.order_by("-changed_at", "-id").first()
    window = timedelta(seconds=LABEL_HISTORY_COALESCE_SECONDS)
    if (
        latest is not None
        and latest.author_id == user.pk
        and latest.verdict == verdict
        and latest.criterion_version == version
        and now - latest.changed_at < window
    ):
        latest.critique, latest.changed_at = critique, now
        latest.save(update_fields=["critique", "changed_at"])
    else:
        context = context or LabelContext()
        LabelChange.objects.create(
            label=label,
            criterion_id=label.criterion_id,
            # The label's first entry is its verdict on first reading (judges.reliability counts only those).
            is_first=latest is None,
            verdict=verdict,
            critique=critique,
            author=user,
            changed_at=now,
            criterion_version=version,
            seconds_on_trace=context.seconds_on_trace,
            sitting_position=context.sitting_position,
            sitting_minutes=context.sitting_minutes,
            via=context.via,
        )
    _mark_reviewed(trace, now)
    return label


@transaction.atomic
def trace_mark_reviewed(*, trace: Trace, user: AbstractBaseUser) -> Trace:
    """For traces that need no label: they leave the queue and enter the review log."""
    _require_expert(trace, user, "mark traces reviewed")
    _mark_reviewed(trace, timezone.now())
    return trace


def _clean_note_text(text: str) -> str:
    text = text.strip()
    if not text:
        raise DomainError("A note cannot be empty")
    if "\x00" in text:
        raise DomainError(nul_message("A note"))
    if len(text) > NOTE_MAX_CHARS:
        raise DomainError(f"A note is limited to {NOTE_MAX_CHARS} characters")
    return text


@transaction.atomic
def note_create(*, trace: Trace, author: AbstractBaseUser, text: str) -> Note:
    """Any member may write notes; the expert's first note also marks the trace reviewed."""
    now = timezone.now()
    # One timestamp for both, so a fresh note never reads as "edited".
    note = Note.objects.create(trace=trace, author=author, text=_clean_note_text(text), created_at=now, updated_at=now)
    if trace.project.expert_id == author.pk:
        _mark_reviewed(trace, note.created_at)
    return note


@transaction.atomic
def note_update(*, note: Note, user: AbstractBaseUser, text: str) -> Note:
    if note.author_id != user.pk:
        raise DomainError("Only the author can edit a note")
    note.text = _clean_note_text(text)
    note.updated_at = timezone.now()
    note.save(update_fields=["text", "updated_at"])
    return note


@transaction.atomic
def note_delete(*, note: Note, user: AbstractBaseUser) -> None:
    if note.author_id != user.pk:
        raise DomainError("Only the author can delete a note")
    note.delete()


# --- criteria ------------------------------------------------------------------------------------------------------

CRITERION_NAME_MAX_CHARS = Criterion._meta.get_field("name").max_length
CRITERION_DEFINITION_MAX_CHARS = 5000


def _clean_criterion(
    project: Project, name: str, definition: str, failure_mode: FailureMode | None, *, exclude: Criterion | None
) -> tuple[str, str]:
    name = " ".join(name.split())
    if not name:
        raise DomainError("A criterion needs a name")
    if "\x00" in name or "\x00" in definition:
        raise DomainError(nul_message("A criterion name" if "\x00" in name else "A criterion definition"))
    if len(name) > CRITERION_NAME_MAX_CHARS:
        raise DomainError(f"A criterion name is limited to {CRITERION_NAME_MAX_CHARS} characters")
    definition = definition.strip()
    if len(definition) > CRITERION_DEFINITION_MAX_CHARS:
        raise DomainError(f"A definition is limited to {CRITERION_DEFINITION_MAX_CHARS} characters")
    clash = Criterion.objects.filter(project=project, name__iexact=name)
    if exclude is not None:
        clash = clash.exclude(pk=exclude.pk)
    if clash.exists():
        raise DomainError(f"A criterion named “{name}” already exists in this project")
    if failure_mode is not None:
        if failure_mode.project_id != project.pk:
            raise DomainError(f"Failure mode “{failure_mode.name}” belongs to another project")
        if failure_mode.is_retired and (exclude is None or exclude.failure_mode_id != failure_mode.pk):
            raise DomainError(f"Failure mode “{failure_mode.name}” is retired; link a current mode")
    return name, definition


@transaction.atomic
def criterion_create(
    *,
    project: Project,
    name: str,
    definition: str = "",
    failure_mode: FailureMode | None = None,
    user: AbstractBaseUser | None = None,
) -> Criterion:
    """A pass/fail question the expert answers per trace, usually born from a failure mode. Its definition is
    version 1."""
    name, definition = _clean_criterion(project, name, definition, failure_mode, exclude=None)
    position = (project.criteria.aggregate(m=Max("position"))["m"] or 0) + 1
    criterion = Criterion.objects.create(
        project=project,
        name=name,
        definition=definition,
        failure_mode=failure_mode,
        position=position,
    )
    CriterionVersion.objects.create(
        criterion=criterion, number=1, name=name, definition=definition, author=user, created_at=criterion.created_at
    )
    return criterion


@transaction.atomic
def criterion_update(
    *,
    criterion: Criterion,
    name: str,
    definition: str,
    failure_mode: FailureMode | None,
    user: AbstractBaseUser | None = None,
) -> Criterion:
    """Rename, redefine or relink a criterion. Its labels, judges and splits stay: they hang on the criterion, not
    its name (an import naming the old name would create a new criterion, though). A changed definition is a new
    version (CriterionVersion), by `user`; labels made from now on record it, the earlier ones keep theirs."""
    name, definition = _clean_criterion(criterion.project, name, definition, failure_mode, exclude=criterion)
    # Locked and read afresh: two edits at once make two versions in turn, and the object may be an old page's.
    criterion.definition, criterion.version = (
        Criterion.objects.select_for_update().filter(pk=criterion.pk).values_list("definition", "version").get()
    )
    fields = ["name", "definition", "failure_mode"]
    if definition != criterion.definition:
        criterion.version += 1
        fields.append("version")
        CriterionVersion.objects.create(
            criterion=criterion, number=criterion.version, name=name, definition=definition, author=user
        )
    criterion.name, criterion.definition, criterion.failure_mode = name, definition, failure_mode
    criterion.save(update_fields=fields)
    return criterion
