"""The monitoring pages: every promoted judge's recent pass rates, one criterion's time series and alert rules,
an alert with the traces behind it, and the project's sampling rate. Every rate is shown with its 95% interval."""

from __future__ import annotations

from datetime import timedelta

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
from judges.promotions import current_promotions
from monitoring.charts import series_chart
from monitoring.forms import AlertRuleForm, SamplingRateForm
from monitoring.models import Alert, AlertRule, Bucket
from monitoring.selectors import (
    alert_rules,
    criterion_alerts,
    criterion_series,
    failed_judgments,
    monitoring_summary,
    sampling_rate,
)
from monitoring.series import evidence_matrix
from monitoring.services import alert_rule_create, alert_rule_delete, alert_rule_enable, sampling_rate_set

# The windows a criterion page offers per bucket size, and the default one.
WINDOWS = {
    "hour": {"24h": timedelta(hours=24), "48h": timedelta(hours=48), "7d": timedelta(days=7)},
    "day": {"7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)},
}
DEFAULT_WINDOW = {"hour": "48h", "day": "30d"}
TRACES_PER_PAGE = 50
ALERTS_SHOWN = 20


@login_required
def monitoring_overview(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    overview = monitoring_summary(project=project, now=timezone.now())
    context = {
        "project": project,
        "access": access,
        "summaries": overview.summaries,
        "unmonitored": overview.unmonitored,
        "rate_percent": sampling_rate(project=project) * 100,
    }
    return render(request, "monitoring/overview.html", context)


@login_required
def monitoring_criterion(request: HttpRequest, slug: str, criterion_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    criterion = access.get_object_or_404(Criterion, pk=criterion_id)
    bucket = request.GET.get("bucket") if request.GET.get("bucket") in WINDOWS else "hour"
    window = request.GET.get("window") if request.GET.get("window") in WINDOWS[bucket] else DEFAULT_WINDOW[bucket]
    promotion = current_promotions(project=project).get(criterion.pk)
    rules = alert_rules(criterion=criterion)
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
        "alerts": criterion_alerts(criterion=criterion, limit=ALERTS_SHOWN),
        "form": AlertRuleForm(initial={"threshold_percent": 90, "bucket": bucket}),
    }
    if promotion is not None:
        found = criterion_series(
            project=project, promotion=promotion, bucket=bucket, window=WINDOWS[bucket][window], now=timezone.now()
        )
        context.update(
            chart=series_chart(
                found.stats,
                bucket=bucket,
                criterion=criterion.name,
                thresholds=[r.threshold for r in rules if r.enabled],
            ),
            rows=found.rows,
            notes=found.notes,
            matrix=evidence_matrix(promotion.report),
            backlog=found.backlog,
        )
    return render(request, "monitoring/criterion.html", context)


@login_required
@require_POST
def monitoring_rule_create(request: HttpRequest, slug: str, criterion_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.EDIT_ALERT_RULES)
    criterion = access.get_object_or_404(Criterion, pk=criterion_id)
    form = AlertRuleForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            rule = alert_rule_create(
                criterion=criterion,
                threshold=data["threshold_percent"] / 100,
                metric=data["metric"],
                bound=data["bound"],
                side=data["side"],
                bucket=data["bucket"],
                min_sample=data["min_sample"],
                webhook_url=data["webhook_url"],
                enabled=data["enabled"],
                user=request.user,
            )
        except DomainError as exc:
            messages.error(request, f"The alert rule was not saved: {exc}")
        else:
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
    elif action == "delete":
        alert_rule_delete(rule=rule)
    else:
        alert_rule_enable(rule=rule, enabled=action == "enable")
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
