"""The monitoring pages: every promoted judge's recent pass rates, one criterion's time series and alert rules,
an alert with the traces behind it, and the project's sampling rate. Every rate is shown with its 95% interval."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from annotation.access import Permission, get_project_for_user
from annotation.models import Criterion
from annotation.services import DomainError
from judges.models import Promotion
from judges.promotions import current_promotions
from monitoring.charts import series_chart
from monitoring.forms import AlertRuleForm, SamplingRateForm
from monitoring.models import Alert, AlertRule, Bucket
from monitoring.selectors import (
    backlog,
    bucket_counts,
    failed_judgments,
    open_alerts,
    sampling_rate,
    window_counts,
)
from monitoring.series import BUCKET_LENGTH, BucketStats, bucket_stats, dev_matrix, sample_size_note, series, truncate
from monitoring.services import sampling_rate_set

# The windows a criterion page offers per bucket size, and the default one.
WINDOWS = {
    "hour": {"24h": timedelta(hours=24), "48h": timedelta(hours=48), "7d": timedelta(days=7)},
    "day": {"7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)},
}
DEFAULT_WINDOW = {"hour": "48h", "day": "30d"}
TRACES_PER_PAGE = 50


@dataclass(frozen=True)
class CriterionSummary:
    criterion: Criterion
    promotion: Promotion
    day: BucketStats
    week: BucketStats
    backlog: int | None
    open_alerts: list[Alert]


def _window_stats(promotion: Promotion, start: datetime, end: datetime) -> BucketStats:
    passes, fails, errors = window_counts(version_id=promotion.version_id, start=start, end=end)
    return bucket_stats(
        start=start, end=end, passes=passes, fails=fails, errors=errors, matrix=dev_matrix(promotion.report)
    )


@login_required
def monitoring_overview(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    now = timezone.now()
    promotions = current_promotions(project=project)
    alerts_by_criterion: dict[int, list[Alert]] = {}
    for alert in open_alerts(project=project):
        alerts_by_criterion.setdefault(alert.criterion_id, []).append(alert)
    summaries = [
        CriterionSummary(
            criterion=promotion.criterion,
            promotion=promotion,
            day=_window_stats(promotion, now - timedelta(hours=24), now),
            week=_window_stats(promotion, now - timedelta(days=7), now),
            backlog=backlog(project=project, version_id=promotion.version_id),
            open_alerts=alerts_by_criterion.get(criterion_id, []),
        )
        for criterion_id, promotion in sorted(promotions.items(), key=lambda item: item[1].criterion.position)
    ]
    unmonitored = Criterion.objects.filter(project=project).exclude(pk__in=promotions.keys()).order_by("position")
    context = {
        "project": project,
        "access": access,
        "summaries": summaries,
        "unmonitored": unmonitored,
        "rate_percent": sampling_rate(project=project) * 100,
    }
    return render(request, "monitoring/overview.html", context)


@dataclass(frozen=True)
class BucketRow:
    stats: BucketStats
    complete: bool


@login_required
def monitoring_criterion(request: HttpRequest, slug: str, criterion_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    criterion = access.get_object_or_404(Criterion, pk=criterion_id)
    bucket = request.GET.get("bucket") if request.GET.get("bucket") in WINDOWS else "hour"
    window = request.GET.get("window") if request.GET.get("window") in WINDOWS[bucket] else DEFAULT_WINDOW[bucket]
    promotion = current_promotions(project=project).get(criterion.pk)
    rules = list(AlertRule.objects.filter(criterion=criterion))
    context = {
        "project": project,
        "access": access,
        "criterion": criterion,
        "promotion": promotion,
        "bucket": bucket,
        "window": window,
        "windows": list(WINDOWS[bucket]),
        "buckets": [b.value for b in Bucket],
        "rules": rules,
        "alerts": Alert.objects.filter(criterion=criterion).select_related("rule")[:20],
        "form": AlertRuleForm(initial={"threshold_percent": 90, "bucket": bucket}),
    }
    if promotion is not None:
        now = timezone.now()
        step = BUCKET_LENGTH[bucket]
        end = truncate(now, bucket) + step  # the current bucket is shown, marked in progress
        start = end - WINDOWS[bucket][window]
        counts = bucket_counts(project=project, version_id=promotion.version_id, start=start, end=end, bucket=bucket)
        stats = series(counts=counts, start=start, end=end, bucket=bucket, matrix=dev_matrix(promotion.report))
        rows = [BucketRow(s, s.end <= now) for s in reversed(stats)]
        period = {"hour": ("this hour", "last hour"), "day": ("today", "yesterday")}[bucket]
        context.update(
            chart=series_chart(
                stats,
                bucket=bucket,
                criterion=criterion.name,
                thresholds=[r.threshold for r in rules if r.enabled],
            ),
            rows=rows,
            notes=[sample_size_note(stats[-1], period[0]), sample_size_note(stats[-2], period[1])]
            if len(stats) > 1
            else [],
            matrix=dev_matrix(promotion.report),
            backlog=backlog(project=project, version_id=promotion.version_id),
        )
    return render(request, "monitoring/criterion.html", context)


@login_required
@require_POST
def monitoring_rule_create(request: HttpRequest, slug: str, criterion_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.EDIT_ALERT_RULES)
    criterion = access.get_object_or_404(Criterion, pk=criterion_id)
    form = AlertRuleForm(request.POST, instance=AlertRule(project=access.project, criterion=criterion))
    if form.is_valid():
        form.instance.created_by = request.user
        rule = form.save()
        messages.success(request, f"Alert rule added: {rule.describe()}.")
    else:
        errors = "; ".join(f"{field}: {' '.join(e)}" for field, e in form.errors.items())
        messages.error(request, f"The alert rule was not saved: {errors}")
    return redirect(reverse("monitoring_criterion", args=[access.project.slug, criterion.pk]) + "#rules")


@login_required
@require_POST
def monitoring_rule_update(request: HttpRequest, slug: str, rule_id: int) -> HttpResponse:
    """Enable, disable or delete a rule. Disabling or deleting resolves its open alert: nobody watches it any more."""
    access = get_project_for_user(request, slug, Permission.EDIT_ALERT_RULES)
    rule = access.get_object_or_404(AlertRule, pk=rule_id)
    action = request.POST.get("action")
    if action not in {"enable", "disable", "delete"}:
        messages.error(request, f"Unknown action {action!r} for alert rule {rule.pk}.")
    else:
        if action in {"disable", "delete"}:
            Alert.objects.filter(rule=rule, resolved_at=None).update(resolved_at=timezone.now())
        if action == "delete":
            rule.delete()
        else:
            rule.enabled = action == "enable"
            rule.state = AlertRule.State.OK if not rule.enabled else rule.state
            rule.save(update_fields=["enabled", "state"])
    return redirect(reverse("monitoring_criterion", args=[access.project.slug, rule.criterion_id]) + "#rules")


@login_required
def monitoring_alert(request: HttpRequest, slug: str, alert_id: int) -> HttpResponse:
    """An alert and the traces behind it: the sampled traces of its bucket that the judge failed."""
    access = get_project_for_user(request, slug)
    alert = access.get_object_or_404(Alert.objects.select_related("rule", "criterion", "version__judge"), pk=alert_id)
    judgments = (
        failed_judgments(version_id=alert.version_id, start=alert.bucket_start, end=alert.bucket_end)
        if alert.version_id
        else []
    )
    page = Paginator(judgments, TRACES_PER_PAGE).get_page(request.GET.get("page"))
    context = {"project": access.project, "access": access, "alert": alert, "page": page}
    return render(request, "monitoring/alert.html", context)


@login_required
def monitoring_settings(request: HttpRequest, slug: str) -> HttpResponse:
    """The production sampling rate; only the expert changes it."""
    access = get_project_for_user(request, slug)
    project = access.project
    form = SamplingRateForm(initial={"rate_percent": round(sampling_rate(project=project) * 100, 2)})
    if request.method == "POST":
        access.require(Permission.SET_SAMPLING_RATE)
        form = SamplingRateForm(request.POST)
        if form.is_valid():
            try:
                sampling_rate_set(project=project, rate=form.cleaned_data["rate_percent"] / 100, user=request.user)
            except DomainError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(
                    request, f"New production traces are now sampled at {form.cleaned_data['rate_percent']:g}%."
                )
                return redirect("monitoring_settings", project.slug)
    context = {"project": project, "access": access, "form": form, "rate": sampling_rate(project=project)}
    return render(request, "monitoring/settings.html", context)
