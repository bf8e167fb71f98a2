"""Judges: automated verdicts per criterion, versioned, run over a split and measured against the expert."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from annotation.models import Criterion, Project, Trace, Verdict
from core.runs import WorkerRun
from judges.loop_rules import DEFAULT_CYCLE_DAYS, DEFAULT_CYCLE_SIZE, DEFAULT_OUTLIER_DAYS, DEFAULT_OUTLIER_SIZE

# The reasoning a verdict keeps (judgments, suite verdicts, monitoring verdicts); a runaway answer is cut here.
MAX_REASONING_CHARS = 20_000


class Judge(models.Model):
    """One way of answering one criterion automatically. Its behaviour lives in immutable versions."""

    class Kind(models.TextChoices):
        """The built-in kinds' names; judges.kinds registers these and any other."""

        ASSERTION = "assertion", "Assertion"
        CLASSIFIER = "classifier", "Classifier"
        LLM = "llm", "LLM"
        EXTERNAL = "external", "External"
        REFERENCE = "reference", "Reference"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judges")
    criterion = models.ForeignKey(Criterion, on_delete=models.CASCADE, related_name="judges")
    name = models.CharField(max_length=100)
    # The name of a registered kind (judges.kinds), which checks it and names it for display: a new kind needs no
    # change to this model.
    kind = models.CharField(max_length=16)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["criterion__position", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="judge_unique_name")]

    def __str__(self) -> str:
        return self.name

    def latest_version(self) -> JudgeVersion | None:
        return self.versions.order_by("-number").first()


class JudgeVersion(models.Model):
    """A judge's configuration at one point in time, with everything its verdicts depend on (config, trained
    artifact, snapshot). Never edited: a change, including a change to the labels or definition it was built on,
    makes the next number."""

    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    # Kind-specific: an assertion's check, an LLM's model, prompt and few-shot trace ids, a classifier's params.
    config = models.JSONField(default=dict, blank=True)
    # A classifier's trained pipeline (pickled by judges.providers.classifier) and what its training saw.
    artifact = models.BinaryField(null=True, blank=True, editable=False)
    training = models.JSONField(default=dict, blank=True)
    # What the version's verdicts depend on outside it, copied when it was made (JudgeKind.build): an LLM judge's
    # rubric, criterion name and definition, and its examples' verdicts, critiques and traces as the prompt shows
    # them. Runs read this, never the criterion or the labels as they are now.
    snapshot = models.JSONField(default=dict, blank=True, editable=False)
    comment = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # The criterion's definition version (annotation.CriterionVersion) when this version was made: a later
    # definition makes it stale (judges.staleness), whatever its kind.
    criterion_version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["judge", "number"]
        constraints = [models.UniqueConstraint(fields=["judge", "number"], name="judge_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.judge} v{self.number}"


class JudgeRun(WorkerRun):
    """One judge version over the traces of one split (or judgments imported from elsewhere)."""

    class Split(models.TextChoices):
        TRAIN = "train", "Train"
        DEV = "dev", "Dev"
        TEST = "test", "Test"
        ALL = "all", "All labelled traces"

    version = models.ForeignKey(JudgeVersion, on_delete=models.CASCADE, related_name="runs")
    split = models.CharField(max_length=8, choices=Split.choices)
    total = models.PositiveIntegerField(default=0)
    # Set for an external judge's imported verdicts (the file name); empty for runs made here.
    imported_from = models.CharField(max_length=255, blank=True)
    # The alignment report (judges.stats.alignment_report), written when the run finishes.
    report = models.JSONField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.version} on {self.split} ({self.status})"


class Judgment(models.Model):
    """A judge's answer for one trace in one run: a verdict with its reasoning, or the error that prevented one."""

    run = models.ForeignKey(JudgeRun, on_delete=models.CASCADE, related_name="judgments")
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="+")
    # Empty when the judgment failed permanently: an error is neither a pass nor a fail.
    verdict = models.CharField(max_length=4, choices=Verdict.choices, blank=True)
    reasoning = models.TextField(blank=True)
    raw_output = models.TextField(blank=True)
    error = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Dollars, when the judge's config gives token prices.
    cost_usd = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Why the judge did not judge this trace ("no reference"), with verdict and error empty: a skip is neither a
    # pass, a fail nor an error, and reports count it apart.
    skipped = models.CharField(max_length=200, blank=True)
    # What to know about a verdict that still stands (judges.providers.Outcome.warning): a prompt estimated longer
    # than the model's context, which a server may have cut without saying so.
    warning = models.TextField(blank=True, default="")

    class Meta:
        # Exactly one judgment per (run, trace), however often a chunk of work is retried.
        constraints = [models.UniqueConstraint(fields=["run", "trace"], name="judgment_unique_run_trace")]

    def __str__(self) -> str:
        return f"{self.trace_id}: {self.verdict or 'error'}"


class LLMResponse(models.Model):
    """Answers already paid for, by (model, messages, params): a rerun of the same prompt reads them back. Written
    and read by the LLM kind (judges.kinds.llm), one row as soon as each call returns."""

    key = models.CharField(max_length=64, unique=True)
    model = models.CharField(max_length=200)
    text = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.model} {self.key[:12]}"


# The project's bar when the expert has not set one (DESIGN.md: iterate until agreement is above 90%).
DEFAULT_MIN_TPR = DEFAULT_MIN_TNR = 0.9
# The bias bar when the expert has not set one (issue 14): at most 5% of verdicts flipped by any bias.
DEFAULT_MAX_FLIP_RATE = 0.05


class PromotionBar(models.Model):
    """The project's one bar: the TPR and TNR a judge must reach to be "aligned", to meet the cost ladder's target
    and to be promoted (judges.evidence says how a run meets it); only the expert sets it. A project without a row
    has the default bar."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="promotion_bar")
    min_tpr = models.FloatField(default=DEFAULT_MIN_TPR)
    min_tnr = models.FloatField(default=DEFAULT_MIN_TNR)
    # The bias bar: the highest flip rate of an LLM judge's bias battery that promotion accepts (judges.bias).
    max_flip_rate = models.FloatField(default=DEFAULT_MAX_FLIP_RATE)

    def __str__(self) -> str:
        return f"{self.project}: TPR ≥ {self.min_tpr:.0%}, TNR ≥ {self.min_tnr:.0%}"


class Promotion(models.Model):
    """The judge version chosen to answer its criterion in regression suites and production monitoring.

    At most one promotion per criterion is current (ended_at empty); a new promotion ends the previous one, so
    the rows are the record of who promoted what, when, on which evidence.
    """

    class EvidenceSplit(models.TextChoices):
        TEST = "test", "Test"
        # Promotions made before a test run was required: their evidence is the dev run, kept as it was.
        DEV = "dev", "Dev (before test evidence was required)"

    criterion = models.ForeignKey(Criterion, on_delete=models.CASCADE, related_name="promotions")
    version = models.ForeignKey(JudgeVersion, on_delete=models.PROTECT, related_name="promotions")
    # The evidence, as it was at promotion time: `report` is the run decisions read (monitoring's corrected rate
    # uses its confusion counts), the test run's report; `evidence_split` says which split it was measured on.
    test_run = models.ForeignKey(JudgeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    report = models.JSONField(default=dict, blank=True)
    evidence_split = models.CharField(max_length=8, choices=EvidenceSplit.choices, default=EvidenceSplit.TEST)
    # The dev run whose point estimates reached the bar, shown beside the test evidence.
    dev_run = models.ForeignKey(JudgeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    dev_report = models.JSONField(default=dict, blank=True)
    min_tpr = models.FloatField()
    min_tnr = models.FloatField()
    comment = models.TextField(blank=True)
    # An LLM judge's bias battery that passed the bias bar, as it was at promotion time (with `max_flip_rate`, the
    # bar it passed); empty for kinds without a battery.
    bias_run = models.ForeignKey("BiasRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    bias_report = models.JSONField(default=dict, blank=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promoted_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-promoted_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["criterion"], condition=models.Q(ended_at=None), name="promotion_one_current_per_criterion"
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} for {self.criterion}"

    @property
    def is_current(self) -> bool:
        return self.ended_at is None

    @property
    def on_test_evidence(self) -> bool:
        return self.evidence_split == self.EvidenceSplit.TEST


class BiasRun(WorkerRun):
    """An LLM judge version's bias battery on the dev split (judges.bias): order, verbosity and bandwagon flip
    rates against the version's own unperturbed verdicts. Its prompts go through the answer cache, so the
    unperturbed ones cost nothing after a dev run, and a battery taken over after a worker died pays only for
    what it had not asked yet."""

    version = models.ForeignKey(JudgeVersion, on_delete=models.CASCADE, related_name="bias_runs")
    split = models.CharField(max_length=8, default="dev", editable=False)
    # Prompts to ask (unperturbed and perturbed) and how many have been answered: the page's progress.
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    # judges.providers.bias.flip_report, plus what the calls cost; written when the run finishes.
    report = models.JSONField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"bias battery of {self.version} ({self.status})"


# Guardrails block production answers inline, where a false positive is a production bug: a check must almost never
# fail what the expert passed (issue 14 §5).
DEFAULT_GUARDRAIL_MIN_TPR = 0.99


class GuardrailBar(models.Model):
    """The TPR a check's dev and test runs must reach to be marked guardrail-ready, beside the promotion bar; only
    the expert sets it. A project without a row has the default."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="guardrail_bar")
    min_tpr = models.FloatField(default=DEFAULT_GUARDRAIL_MIN_TPR)

    def __str__(self) -> str:
        return f"{self.project}: guardrail TPR ≥ {self.min_tpr:.0%}"


class GuardrailMark(models.Model):
    """An assertion judge version the expert marked guardrail-ready, with the evidence as it was then (its latest dev
    and test runs' reports and the bar). At most one current mark per judge (revoked_at empty); marking another
    version of the judge ends the previous mark, so the rows are the record of who marked what, when, on what."""

    # The project, copied from the judge: the guardrail route asks for a project's current marks in one query.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="guardrail_marks")
    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="guardrail_marks")
    version = models.ForeignKey(JudgeVersion, on_delete=models.PROTECT, related_name="guardrail_marks")
    dev_run = models.ForeignKey(JudgeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    dev_report = models.JSONField(default=dict, blank=True)
    test_run = models.ForeignKey(JudgeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    test_report = models.JSONField(default=dict, blank=True)
    min_tpr = models.FloatField()
    comment = models.TextField(blank=True)
    marked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    marked_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-marked_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["judge"], condition=models.Q(revoked_at=None), name="guardrail_one_current_per_judge"
            )
        ]
        indexes = [
            models.Index(fields=["project"], condition=models.Q(revoked_at=None), name="guardrail_current_by_project")
        ]

    def __str__(self) -> str:
        return f"{self.version} guardrail-ready"

    @property
    def is_current(self) -> bool:
        return self.revoked_at is None


def new_digest_secret() -> str:
    """The digest webhook's signing key: 256 random bits, prefixed like monitoring's alert webhook secrets."""
    return "whsec_" + secrets.token_urlsafe(32)


class LoopCadence(models.Model):
    """The expert's settings of the loop's cadence (docs/expert-reliability.md "The loop's cadence"), and the optional
    weekly digest webhook. A project without a row uses the defaults of judges.loop_rules."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="loop_cadence")
    cycle_days = models.PositiveIntegerField(default=DEFAULT_CYCLE_DAYS)
    cycle_size = models.PositiveIntegerField(default=DEFAULT_CYCLE_SIZE)
    outlier_days = models.PositiveIntegerField(default=DEFAULT_OUTLIER_DAYS)
    outlier_size = models.PositiveIntegerField(default=DEFAULT_OUTLIER_SIZE)
    digest_url = models.URLField(max_length=500, blank=True)
    digest_secret = models.CharField(max_length=64, default=new_digest_secret, editable=False)
    # The last delivered digest: the next is due a week later (a failed delivery is tried again at the next beat).
    digest_sent_at = models.DateTimeField(null=True, blank=True)
    digest_status = models.PositiveSmallIntegerField(null=True, blank=True)
    digest_error = models.TextField(blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"cadence of {self.project_id}"
