"""The nouns of error analysis: projects, traces, notes, criteria, labels and the failure-mode codebook."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from annotation import criterion_names, trace_format
from core.runs import WorkerRun


class Role(models.TextChoices):
    EXPERT = "expert", "Expert"
    ENGINEER = "engineer", "Engineer"
    VIEWER = "viewer", "Viewer"


class Verdict(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"


class Project(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # The one person whose labels are ground truth. Kept in sync with a Membership of role "expert".
    expert = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="expert_projects"
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="projects")
    # Seeds the "random" queue order; a stored per-trace key makes that order indexable at a million traces.
    queue_seed = models.CharField(max_length=32, default="evalstudio")
    created_at = models.DateTimeField(default=timezone.now)
    # Blind re-review (annotation.rereviews): the share of queue steps that re-serve a trace the expert labelled at
    # least `rereview_after_days` ago, labels hidden; 0 turns it off. Only the expert sets these.
    rereview_rate = models.FloatField(default=0.05)
    rereview_after_days = models.PositiveIntegerField(default=7)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("project_detail", args=[self.slug])

    def cache_key(self, kind: str) -> str:
        """A cache key for a number derived from this project's rows. created_at is part of it because test
        databases are rebuilt with the same primary keys while a shared cache (Redis) outlives them."""
        return f"evalstudio:{kind}:{self.pk}:{self.created_at.timestamp():.6f}"

    def shuffle_key(self, external_id: str) -> int:
        """A stable pseudo-random position for a trace in this project's "random" queue order."""
        return trace_format.shuffle_key(self.queue_seed, external_id)


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class Invitation(models.Model):
    """The expert's invitation of an email address to a project with a role. It becomes a Membership when someone
    with that email logs in (single sign-on or password); until then it is pending and can be withdrawn."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)  # stored lower-case: addresses are matched case-insensitively
    role = models.CharField(max_length=16, choices=Role.choices)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="invitations_sent"
    )
    created = models.DateTimeField(default=timezone.now)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="invitations_accepted"
    )

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            # One pending invitation per address and project: a second one would be ambiguous about the role.
            models.UniqueConstraint(
                fields=["project", "email"], condition=models.Q(accepted_at__isnull=True), name="invitation_one_pending"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.project} ({self.role})"

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None


class Trace(models.Model):
    # What a trace file says about a trace (besides its id): written by an import, read back by an export.
    CONTENT_FIELDS = (
        "input",
        "output",
        "messages",
        "context",
        "metadata",
        "session_id",
        "task_id",
        "trial",
        "source",
        "occurred_at",
        "reference",
    )

    # No index of its own: every index below (and the unique key) starts with project, and each index costs ingestion.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="traces", db_index=False)
    # Unique per project: the idempotency key of ingestion (the `id` field, or a content hash without one).
    external_id = models.CharField(max_length=255)
    input = models.TextField(blank=True)
    output = models.TextField(blank=True)
    messages = models.JSONField(null=True, blank=True)
    context = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    session_id = models.CharField(max_length=255, blank=True)
    task_id = models.CharField(max_length=255, blank=True)
    trial = models.IntegerField(null=True, blank=True)
    source = models.CharField(max_length=64, blank=True, db_index=False)
    # When the trace happened (the `timestamp` field); ingestion time when the file does not say.
    occurred_at = models.DateTimeField(default=timezone.now)
    # A known-good answer for this input (the `reference` field; set by the expert on a golden-set entry too): a
    # string, or any JSON value; null when there is none. Reference judges compare outputs with it.
    reference = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    shuffle_key = models.BigIntegerField(default=0)
    # Set when the expert first labels, notes or marks the trace reviewed; the order of review (saturation).
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="trace_unique_external_id"),
        ]
        indexes = [
            # The review queue at a million traces: next unreviewed in each order is an index range scan.
            models.Index(
                fields=["project", "shuffle_key", "id"], name="trace_queue_random", condition=Q(reviewed_at=None)
            ),
            models.Index(
                fields=["project", "occurred_at", "id"], name="trace_queue_time", condition=Q(reviewed_at=None)
            ),
            # Partial: a new trace is never in the review log, so ingestion does not pay for this index.
            models.Index(
                fields=["project", "reviewed_at", "id"], name="trace_review_log", condition=Q(reviewed_at__isnull=False)
            ),
            # A calibration rater's sample: the expert's labelled (so reviewed) traces in the stored random order,
            # walked from the start rather than sorting every labelled trace (annotation.calibration).
            models.Index(
                fields=["project", "shuffle_key", "id"],
                name="trace_reviewed_random",
                condition=Q(reviewed_at__isnull=False),
            ),
            models.Index(fields=["project", "occurred_at", "id"], name="trace_by_time"),
            models.Index(fields=["project", "source", "id"], name="trace_by_source"),
            # Partial: agent trials (task_id + trial) for outcome grading; other traces cost nothing here.
            models.Index(
                fields=["project", "id"], name="trace_agent_trials", condition=Q(trial__isnull=False) & ~Q(task_id="")
            ),
            # Partial: a conversation (the traces of one session id) in time order; traces without one cost nothing.
            models.Index(
                fields=["project", "session_id", "occurred_at", "id"],
                name="trace_conversation",
                condition=~Q(session_id=""),
            ),
            # On PostgreSQL a GIN index on metadata (jsonb_path_ops) is added by migration 0002.
        ]

    def __str__(self) -> str:
        return self.external_id

    def get_absolute_url(self) -> str:
        return reverse("trace_detail", args=[self.project.slug, self.external_id])

    @property
    def display_title(self) -> str:
        """A one-line summary for lists: the first user words, else the output."""
        text = self.input
        if not text and self.messages:
            for message in self.messages:
                if isinstance(message, dict) and message.get("role") == "user" and message.get("content"):
                    content = message["content"]
                    text = content if isinstance(content, str) else str(content)
                    break
        text = (text or self.output or self.external_id).strip().replace("\n", " ")
        return text[:117] + "…" if len(text) > 120 else text

    @property
    def reference_text(self) -> str:
        """The reference as a page shows it: a string as it is, any other JSON value as JSON; "" without one."""
        return "" if self.reference is None else trace_format.reference_cell(self.reference)

    @property
    def kind(self) -> str:
        """single-turn / chat / agent / rag — for display and demo stratification."""
        messages = self.messages or []
        if any(isinstance(m, dict) and (m.get("tool_calls") or m.get("role") == "tool") for m in messages):
            return "agent"
        if self.context:
            return "rag"
        if len(messages) > 2:
            return "chat"
        return "single-turn"


class FailureMode(models.Model):
    """One entry of the failure taxonomy (the codebook). Every edit is kept in FailureModeChange."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="failure_modes")
    name = models.CharField(max_length=200)
    definition = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Retired modes keep their notes and history but leave the picker; a merged mode is retired into its target.
    retired_at = models.DateTimeField(null=True, blank=True)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_from"
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="failure_mode_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_retired(self) -> bool:
        return self.retired_at is not None


class FailureModeChange(models.Model):
    """The codebook's history: one row per create, rename, redefinition, merge, split, retire or restore, so a
    count that moved can be explained later. `detail` holds what changed, e.g. {"from": "old", "to": "new"}."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        RENAMED = "renamed", "Renamed"
        REDEFINED = "redefined", "Definition edited"
        MERGED = "merged", "Merged"
        SPLIT = "split", "Split"
        RETIRED = "retired", "Retired"
        RESTORED = "restored", "Restored"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="failure_mode_changes")
    failure_mode = models.ForeignKey(FailureMode, on_delete=models.CASCADE, related_name="changes")
    action = models.CharField(max_length=16, choices=Action.choices)
    detail = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"], name="failure_mode_change_log")]

    def __str__(self) -> str:
        return f"{self.failure_mode}: {self.action}"


class Note(models.Model):
    """Open coding: a free-text observation on a trace, by any member."""

    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="notes")
    text = models.TextField()
    failure_modes = models.ManyToManyField(FailureMode, through="NoteFailureMode", blank=True, related_name="notes")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.text[:60]


class NoteFailureMode(models.Model):
    """A note coded to a failure mode (axial coding). It carries the note's trace, so counting the traces of each
    mode is an index-only scan of this table rather than a join through a million notes. Write links through
    `annotation.services` (or set `trace_id` yourself): `note.failure_modes.add()` cannot fill it in."""

    note = models.ForeignKey(Note, on_delete=models.CASCADE, db_index=False, related_name="mode_links")
    failure_mode = models.ForeignKey(
        FailureMode, on_delete=models.CASCADE, db_column="failuremode_id", db_index=False, related_name="note_links"
    )
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, db_index=False, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "annotation_note_failure_modes"
        # Same columns, hence the same generated name, as the auto-created table this model took over. It also
        # serves lookups by note, so the note column needs no index of its own.
        unique_together = [("note", "failure_mode")]
        indexes = [
            models.Index(fields=["failure_mode", "trace"], name="note_mode_by_trace"),
            # Deleting a trace checks this foreign key row by row: without an index led by trace_id each check
            # scanned the whole link table (a bulk delete of test data ran for 17 minutes).
            models.Index(fields=["trace"], name="note_mode_link_trace"),
        ]

    def __str__(self) -> str:
        return f"{self.note_id} → {self.failure_mode_id}"


class Criterion(models.Model):
    """A binary pass/fail question the expert answers per trace; each gets its own judge later."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="criteria")
    name = models.CharField(max_length=100)
    definition = models.TextField(blank=True, help_text="What pass and fail mean for this criterion.")
    position = models.PositiveIntegerField(default=0)
    failure_mode = models.ForeignKey(
        FailureMode, null=True, blank=True, on_delete=models.SET_NULL, related_name="criteria"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # The number of the definition's current CriterionVersion; each label records the one it was made under.
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="criterion_unique_name")]
        verbose_name_plural = "criteria"

    def __str__(self) -> str:
        return self.name

    @property
    def generic_name(self) -> str | None:
        """The vague quality the name amounts to ("helpfulness", "quality", …), or None for a concrete name."""
        return criterion_names.generic_quality(self.name)


class CriterionVersion(models.Model):
    """One definition of a criterion, as the expert wrote it: every edit of the definition is a new version (who,
    when, what). The method expects criteria to move as the expert judges outputs; labels record the version they
    were made under, so a change shows which labels were made under the old words."""

    criterion = models.ForeignKey(Criterion, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    definition = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["criterion", "-number"]
        constraints = [models.UniqueConstraint(fields=["criterion", "number"], name="criterion_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.criterion_id} v{self.number}"


# The method asks for 50 to 100 labels with a critique per criterion: enough to measure a judge on and to pick
# few-shot examples from.
CRITIQUED_LABELS_GOAL = (50, 100)
# A fail critique of fewer words rarely says what failed and where, which is what a judge learns from.
TERSE_CRITIQUE_WORDS = 8


class Label(models.Model):
    """The expert's verdict on one trace for one criterion, with the critique that explains it."""

    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="labels")
    criterion = models.ForeignKey(Criterion, on_delete=models.CASCADE, related_name="labels")
    verdict = models.CharField(max_length=4, choices=Verdict.choices)
    critique = models.TextField(blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="labels")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # The criterion's definition version (CriterionVersion.number) when the verdict was last set or confirmed.
    criterion_version = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trace", "criterion"], name="label_unique_trace_criterion")]
        indexes = [models.Index(fields=["criterion", "verdict"], name="label_by_criterion")]

    def __str__(self) -> str:
        return f"{self.criterion}: {self.verdict}"

    @property
    def critique_words(self) -> int:
        return len(self.critique.split())

    @property
    def is_terse_fail(self) -> bool:
        """A fail whose critique is too short to learn the failure from: the review page nudges (never refuses)."""
        return self.verdict == Verdict.FAIL and self.critique_words < TERSE_CRITIQUE_WORDS


class LabelChange(models.Model):
    """History of a label: one row per saved state, so later disagreements can be explained."""

    label = models.ForeignKey(Label, on_delete=models.CASCADE, related_name="changes")
    verdict = models.CharField(max_length=4, choices=Verdict.choices)
    critique = models.TextField(blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField(default=timezone.now)
    criterion_version = models.PositiveIntegerField(default=1)
    # How the verdict was given, from the review page (annotation.sittings); empty for imports and the API.
    seconds_on_trace = models.FloatField(null=True, blank=True)  # since the trace's page was shown
    sitting_position = models.PositiveIntegerField(null=True, blank=True)  # the nth trace of the sitting
    sitting_minutes = models.FloatField(null=True, blank=True)  # into the sitting
    via = models.CharField(max_length=40, blank=True)  # the queue: random, newest, oldest, session:<strategy>
    # The label's criterion and whether this is the label's first entry (its verdict on first reading), written
    # with the entry: the reliability numbers (judges.reliability) then read the first verdicts of a project's
    # criteria from the partial indexes below, instead of grouping all its history and joining labels each time.
    # No index of its own: the partial indexes below lead with it (a criterion's deletion scans, and is rare).
    criterion = models.ForeignKey(Criterion, on_delete=models.CASCADE, related_name="+", db_index=False)
    is_first = models.BooleanField(default=False)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [
            # Fatigue: first verdicts by position in the sitting (and their count per criterion).
            models.Index(
                fields=["criterion", "sitting_position"],
                include=["verdict", "seconds_on_trace", "author"],
                condition=Q(is_first=True),
                name="label_change_first",
            ),
            # Drift: first verdicts given in the random queue, by week.
            models.Index(
                fields=["criterion", "changed_at"],
                include=["verdict", "author"],
                condition=Q(is_first=True, via="random"),
                name="label_change_first_random",
            ),
            # Changed later: the few entries after the first.
            models.Index(
                fields=["criterion"],
                include=["label", "verdict"],
                condition=Q(is_first=False),
                name="label_change_later",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.verdict} by {self.author} at {self.changed_at:%Y-%m-%d %H:%M}"


class ApiToken(models.Model):
    """A project-scoped bearer token for the REST API. Only a SHA-256 hash is stored.

    A token may expire (`expires_at`) and be revoked (`revoked_at`); a revoked token is kept for the record (who made
    it, when it was last used) and answers 401 like an expired one."""

    PREFIX = "es_"

    class State(models.TextChoices):
        ACTIVE = "active", "active"
        EXPIRED = "expired", "expired"
        REVOKED = "revoked", "revoked"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Null for tokens made by `create_api_token` (an operator on the server) and before this field existed.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.project.slug}: {self.name}"

    def state(self, now: datetime | None = None) -> str:
        """Revoked wins over expired: revoking is a decision, expiry a date."""
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at is not None and self.expires_at <= (now or timezone.now()):
            return self.State.EXPIRED
        return self.State.ACTIVE

    @staticmethod
    def hash(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()

    @classmethod
    def generate(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)


class ImportJob(WorkerRun):
    """A file uploaded in the browser, imported by the worker with progress."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    file_name = models.CharField(max_length=255)
    file_path = models.CharField(max_length=1000)
    file_format = models.CharField(max_length=16, default="jsonl")  # one of annotation.ingest.FORMATS
    on_conflict = models.CharField(max_length=8, default="skip")
    bytes_total = models.BigIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    created_count = models.IntegerField(default=0)
    updated_count = models.IntegerField(default=0)
    duplicate_count = models.IntegerField(default=0)
    rejected_count = models.IntegerField(default=0)
    # The first rejections, `[{"line": n, "error": "..."}]`; the count above is the full number.
    rejections = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"{self.file_name} ({self.status})"

    @property
    def percent(self) -> int:
        if self.is_finished:
            return 100
        return int(100 * self.bytes_done / self.bytes_total) if self.bytes_total else 0


class ReviewSession(models.Model):
    """A sitting of error analysis: N traces picked by a strategy, reviewed in a fixed order (the cadence)."""

    class Strategy(models.TextChoices):
        RANDOM = "random", "Random"
        STRATIFIED = "stratified", "Stratified by a metadata key"
        LONGEST = "longest", "Outliers: longest traces"
        RARE_METADATA = "rare_metadata", "Outliers: rare metadata values"
        NEWEST_PRODUCTION = "newest_production", "Newest production traces"
        DISAGREEMENTS = "disagreements", "Judge–expert disagreements"
        NEGATIVE_FEEDBACK = "negative_feedback", "Negative user feedback first"
        RECALIBRATION = "recalibration", "Recalibration after a definition change"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="review_sessions")
    name = models.CharField(max_length=200)
    strategy = models.CharField(max_length=32, choices=Strategy.choices)
    # Strategy inputs, e.g. {"metadata_key": "locale", "seed": "s1"}; kept so a session can be explained later.
    params = models.JSONField(default=dict, blank=True)
    size = models.PositiveIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    traces = models.ManyToManyField(Trace, through="ReviewSessionTrace", related_name="review_sessions")

    # Strategies whose traces the expert has already reviewed: the session walks them again.
    REVISITING = frozenset({Strategy.DISAGREEMENTS, Strategy.RECALIBRATION})
    # Strategies whose items the expert labels again blind (BlindRelabel) before the earlier label (and a judge's
    # verdict) are shown: only the decision that follows completes an item.
    BLIND = frozenset({Strategy.DISAGREEMENTS, Strategy.RECALIBRATION})

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def revisits(self) -> bool:
        return self.strategy in self.REVISITING

    @property
    def relabels_blind(self) -> bool:
        return self.strategy in self.BLIND

    @classmethod
    def done_field_for(cls, strategy: str | None) -> str:
        """The ReviewSessionTrace lookup that marks an item done: its trace reviewed, or, in a session that revisits
        reviewed traces, the expert having acted on it within the session."""
        return "revisited_at" if strategy in cls.REVISITING else "trace__reviewed_at"


class ReviewSessionTrace(models.Model):
    session = models.ForeignKey(ReviewSession, on_delete=models.CASCADE, related_name="items")
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    # Why the trace is in the session when the strategy has a reason per trace, e.g. for a disagreement the judge,
    # its verdict and reasoning against the expert's label, as they were when the session was made.
    reason = models.JSONField(default=dict, blank=True)
    # Sessions that revisit reviewed traces (ReviewSession.revisits) count an item done when the expert acted on it
    # within the session; other sessions count a trace done when it is reviewed.
    revisited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["session", "position"]
        constraints = [
            models.UniqueConstraint(fields=["session", "trace"], name="review_session_unique_trace"),
            models.UniqueConstraint(fields=["session", "position"], name="review_session_unique_position"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.position}"


class BlindRelabel(models.Model):
    """An item of a disagreement or recalibration session labelled again blind, then decided with everything in view.

    The expert first labels the trace without seeing the earlier label or the judge's verdict (the blind label);
    only then are both revealed, and the expert keeps the blind label or goes back to the earlier one, with a
    written reason when they differ. The label the expert keeps is written to `Label` (the ground truth, with its
    history); this row keeps the four verdicts, so a criterion's labels that moved toward a judge can be counted:
    such moves raise the judge's measured agreement whether or not the judge was right.
    """

    class Kept(models.TextChoices):
        BLIND = "blind", "the blind label"
        EARLIER = "earlier", "the earlier label"

    item = models.OneToOneField(ReviewSessionTrace, on_delete=models.CASCADE, related_name="relabel")
    criterion = models.ForeignKey(Criterion, on_delete=models.CASCADE, related_name="relabels")
    # The judge's verdict as it was when a disagreement session was made (the item's reason); blank in a
    # recalibration session (after a definition change), which has no judge.
    judge_verdict = models.CharField(max_length=4, choices=Verdict.choices, blank=True)
    # The label as it stood when the expert labelled blind; blank when the trace had none any more.
    earlier_verdict = models.CharField(max_length=4, choices=Verdict.choices, blank=True)
    earlier_critique = models.TextField(blank=True)
    blind_verdict = models.CharField(max_length=4, choices=Verdict.choices)
    blind_critique = models.TextField(blank=True)
    labelled_at = models.DateTimeField(default=timezone.now)
    # Set together by the decision.
    kept = models.CharField(max_length=8, choices=Kept.choices, blank=True)
    final_verdict = models.CharField(max_length=4, choices=Verdict.choices, blank=True)
    final_critique = models.TextField(blank=True)
    reason = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # The earlier label disagreed with the judge and the final one agrees with it. None until decided.
    moved_toward_judge = models.BooleanField(null=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["criterion", "decided_at"], name="relabel_by_criterion")]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.earlier_verdict or '-'} → {self.blind_verdict} → {self.final_verdict or '?'}"

    @property
    def is_decided(self) -> bool:
        return self.decided_at is not None

    @property
    def verdicts_differ(self) -> bool:
        """The blind label's verdict is not the earlier one's: the decision changes the ground truth either way it
        goes, so it needs a written reason."""
        return bool(self.earlier_verdict) and self.blind_verdict != self.earlier_verdict


class SuggestionRun(WorkerRun):
    """Clustering of uncoded notes into proposed failure modes, run by the worker with progress."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="suggestion_runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # Inputs ({"seed": 0, "distance_threshold": …, "use_llm": false}), so a run can be repeated exactly.
    params = models.JSONField(default=dict, blank=True)
    note_count = models.PositiveIntegerField(default=0)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    stage = models.CharField(max_length=100, blank=True)

    def __str__(self) -> str:
        return f"suggestions #{self.pk} ({self.status})"


class Suggestion(models.Model):
    """One proposed group of notes. Nothing reaches the codebook until the expert accepts (possibly edited)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    run = models.ForeignKey(SuggestionRun, on_delete=models.CASCADE, related_name="suggestions")
    name = models.CharField(max_length=200)
    definition = models.TextField(blank=True)
    top_terms = models.JSONField(default=list, blank=True)
    notes = models.ManyToManyField(Note, related_name="+")
    position = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # The mode the notes went to on acceptance (a new one, or an existing one the expert picked).
    failure_mode = models.ForeignKey(FailureMode, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position", "id"]

    def __str__(self) -> str:
        return self.name


class Feedback(models.Model):
    """One end user's thumbs, rating or comment on a trace (annotation.feedback). Rows only ever get added: feedback
    that arrives after the trace (the API) is a new row, never a rewrite of the trace."""

    class Kind(models.TextChoices):
        THUMBS = "thumbs", "Thumbs"
        RATING = "rating", "Rating"
        COMMENT = "comment", "Comment"

    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="feedback")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # "up"/"down" for thumbs, the number for a rating, the text of a comment.
    value = models.JSONField()
    scale = models.FloatField(null=True, blank=True)  # a rating's scale (the value's maximum)
    # The one signal monitoring and the review queue read: thumbs down or a low rating; null for a comment.
    negative = models.BooleanField(null=True, blank=True)
    at = models.DateTimeField(null=True, blank=True)  # when the user gave it, when the sender says
    source = models.CharField(max_length=64, blank=True)
    end_user = models.CharField(max_length=255, blank=True)  # the product's user id, as sent (`user`)
    # The sender's idempotency key (`id`): a retry with the same key stores nothing new. Blank: no key.
    client_id = models.CharField(max_length=255, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["trace", "client_id"], name="feedback_unique_client_id", condition=~Q(client_id="")
            ),
        ]
        indexes = [
            # The negative-feedback-first queue and the monitoring rate look up traces with negative feedback.
            models.Index(fields=["trace"], name="feedback_negative", condition=Q(negative=True)),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.value} on {self.trace_id}"


class PendingFeedback(models.Model):
    """Feedback sent for a trace this project does not hold yet, kept until the trace is stored (annotation.ingest
    claims it into Feedback in the same transaction). A Langfuse SDK score usually arrives before its trace: the
    SDK flushes scores and spans separately, and assembly from spans runs on the worker. Kept for
    EVALSTUDIO_PENDING_FEEDBACK_DAYS, then dropped (a trace that never came)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    external_id = models.CharField(max_length=255)
    # The item in the trace format (FeedbackRecord.as_dict), read back with annotation.feedback.parse_feedback_item.
    item = models.JSONField()
    client_id = models.CharField(max_length=255)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id", "client_id"], name="pending_feedback_unique_client_id"
            ),
        ]
        indexes = [models.Index(fields=["project", "received_at"], name="pending_feedback_age")]

    def __str__(self) -> str:
        return f"feedback waiting for {self.external_id}"


# --- OpenTelemetry spans (issue 13, part otlp): stored as received, assembled into traces by the worker ----------


class Span(models.Model):
    """One OTel span as the OTLP receiver got it (lossless). A trace's spans are those with its project and
    `trace_id` equal to the trace's `external_id` (the OTel trace id in lower-case hex)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    parent_span_id = models.CharField(max_length=16, blank=True)
    name = models.TextField(blank=True)
    kind = models.CharField(max_length=16)
    # Unix nanoseconds, as OTLP sends them: a datetime would lose the sub-microsecond part.
    start_ns = models.BigIntegerField()
    end_ns = models.BigIntegerField()
    status_code = models.CharField(max_length=8, default="unset")
    status_message = models.TextField(blank=True)
    attributes = models.JSONField(default=dict)
    events = models.JSONField(default=list)
    links = models.JSONField(default=list)
    resource = models.JSONField(default=dict)
    scope = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # A retried export sends the same spans again: the second copy is ignored (ON CONFLICT DO NOTHING).
            models.UniqueConstraint(fields=["project", "trace_id", "span_id"], name="span_unique_per_trace"),
        ]

    def __str__(self) -> str:
        return f"{self.trace_id}/{self.span_id} {self.name}"

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)


class SpanAssembly(models.Model):
    """A trace whose spans changed since it was last assembled: the worker's to-do list, written in the same
    transaction as the spans, so a broker that is down (or a worker that dies) delays assembly but never loses it.
    One row per trace however many requests touched it (coalesced); the drain deletes it once assembled."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    trace_id = models.CharField(max_length=32)
    marked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "trace_id"], name="span_assembly_unique_trace"),
        ]

    def __str__(self) -> str:
        return f"assemble {self.trace_id}"


class SelfReview(models.Model):
    """The expert's blind second verdict on a trace they labelled at least a few days before (annotation.rereviews),
    kept beside the first, never over it: the pair measures the expert's self-agreement. When the two differ, the
    expert later decides which stands, with a reason; keeping the new one changes the label (with its history)."""

    class Kept(models.TextChoices):
        THEN = "then", "the earlier label"
        NOW = "now", "the re-review"

    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="self_reviews")
    criterion = models.ForeignKey(Criterion, on_delete=models.CASCADE, related_name="self_reviews")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The label as it stood when the trace was re-served.
    then_verdict = models.CharField(max_length=4, choices=Verdict.choices)
    then_critique = models.TextField(blank=True)
    then_at = models.DateTimeField()
    then_version = models.PositiveIntegerField(default=1)
    verdict = models.CharField(max_length=4, choices=Verdict.choices)
    critique = models.TextField(blank=True)
    criterion_version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    kept = models.CharField(max_length=8, choices=Kept.choices, blank=True)
    reason = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["criterion", "created_at"], name="self_review_by_criterion"),
            models.Index(fields=["trace", "created_at"], name="self_review_by_trace"),
        ]

    def __str__(self) -> str:
        return f"{self.criterion_id}: {self.then_verdict} then, {self.verdict} now"

    @property
    def agrees(self) -> bool:
        return self.verdict == self.then_verdict


class CalibrationRater(models.Model):
    """A second member the expert asks to label a sample of the expert's traces blind, so that agreement between two
    people on the criteria can be measured (judges.reliability). Only the expert's labels are ground truth: the
    rater's (RaterLabel) never feed judges, splits or suites."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="calibration_raters")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    sample_size = models.PositiveIntegerField(default=50)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="calibration_rater_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} rates {self.project}"


class RaterLabel(models.Model):
    """A calibration rater's blind verdict on one criterion of one trace the expert labelled."""

    rater = models.ForeignKey(CalibrationRater, on_delete=models.CASCADE, related_name="labels")
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="+")
    criterion = models.ForeignKey(Criterion, on_delete=models.CASCADE, related_name="+")
    verdict = models.CharField(max_length=4, choices=Verdict.choices)
    critique = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rater", "trace", "criterion"], name="rater_label_unique_criterion")
        ]

    def __str__(self) -> str:
        return f"{self.rater_id}: {self.verdict}"
