"""The monitoring pages: every current check's recent pass rates, one series' time series (a criterion's, or an
agent's task completion), which traffic it judges and its alert rules, an alert with the traces behind it, and the
project's sampling rate. Every rate is shown with its 95% interval."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from annotation.access import Permission, ProjectAccess, get_project_for_user
from annotation.models import Project
from annotation.services import DomainError
from judges.monitored import Subject, provider
from monitoring.charts import series_chart
from monitoring.checks import JUDGE, check_matrix, current_check, series_find, subject_of
from monitoring.feedback import feedback_agreement, negative_feedback_series, negative_feedback_window
from monitoring.forms import AlertRuleForm, SamplingRateForm
from monitoring.models import Alert, AlertRule, Bucket, MonitoredCheck, MonitoredSeries
from monitoring.selectors import (
    alert_rules,
    coverage,
    failed_judgments,
    monitoring_summary,
    sampling_rate,
    series_alerts,
    series_stats,
    series_url,
)
from monitoring.services import (
    alert_rule_create,
    alert_rule_delete,
    alert_rule_enable,
    alert_rule_rotate_secret,
    sampling_rate_set,
    series_get_or_create,
    series_traffic_set,
)

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
        "feedback_week": negative_feedback_window(project=project, days=7, now=timezone.now()),
    }
    return render(request, "monitoring/overview.html", context)


def _subject_or_404(access: ProjectAccess, provider_name: str, subject_id: int) -> Subject:
    subject = subject_of(project=access.project, provider_name=provider_name, subject_id=subject_id)
    if subject is None:
        raise Http404("No such monitored subject in this project")
    return subject


def _series_page(request: HttpRequest, access: ProjectAccess, subject: Subject) -> HttpResponse:
    """One series: its current check's pass rates over time, which traffic it judges, alert rules and alerts."""
    project = access.project
    bucket = request.GET.get("bucket") if request.GET.get("bucket") in WINDOWS else "hour"
    window = request.GET.get("window") if request.GET.get("window") in WINDOWS[bucket] else DEFAULT_WINDOW[bucket]
    series = series_find(project=project, provider_name=subject.provider, subject_id=subject.subject_id)
    check = current_check(project=project, provider_name=subject.provider, subject_id=subject.subject_id)
    rules = alert_rules(series=series)
    owner = provider(subject.provider)
    form = AlertRuleForm(initial={"threshold_percent": 90, "bucket": bucket})
    if owner is not None and not owner.corrects:
        form.fields["metric"].choices = [(AlertRule.Metric.OBSERVED.value, AlertRule.Metric.OBSERVED.label)]
    covered = coverage(series=series, check=check, rate=sampling_rate(project=project))
    context = {
        "project": project,
        "access": access,
        "subject": subject,
        "series": series,
        "check": check,
        "coverage": covered,
        "series_url": series_url(project=project, subject=subject),
        "bucket": bucket,
        "window": window,
        "windows": list(WINDOWS[bucket]),
        "buckets": [b.value for b in Bucket],
        "rules": rules,
        "alerts": series_alerts(series=series, limit=ALERTS_SHOWN),
        "form": form,
    }
    if check is not None:
        found = series_stats(
            project=project,
            check=check,
            series=series,
            covered=covered,
            bucket=bucket,
            window=WINDOWS[bucket][window],
            now=timezone.now(),
        )
        context.update(
            chart=series_chart(
                found.stats,
                bucket=bucket,
                criterion=subject.name,
                thresholds=[r.threshold for r in rules if r.enabled],
            ),
            rows=found.rows,
            notes=found.notes,
            matrix=check_matrix(check),
            backlog=found.backlog,
        )
    context.update(_feedback_context(project, series, bucket, WINDOWS[bucket][window]))
    return render(request, "monitoring/criterion.html", context)


def _feedback_context(project: Project, series: MonitoredSeries | None, bucket: str, window: timedelta) -> dict:
    """Users' negative-feedback rate per bucket beside the judge's, and how often the two agree."""
    now = timezone.now()
    feedback = negative_feedback_series(project=project, bucket=bucket, window=window, now=now)
    check_ids = list(MonitoredCheck.objects.filter(series=series).values_list("pk", flat=True)) if series else []
    return {
        "feedback_rows": list(reversed(feedback)),
        "feedback_any": any(row.polar for row in feedback),
        "agreement": feedback_agreement(project=project, check_ids=check_ids, start=now - window),
    }


@login_required
def monitoring_criterion(request: HttpRequest, slug: str, criterion_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    return _series_page(request, access, _subject_or_404(access, JUDGE, criterion_id))


@login_required
def monitoring_series(request: HttpRequest, slug: str, provider_name: str, subject_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    return _series_page(request, access, _subject_or_404(access, provider_name, subject_id))


def _rule_create(request: HttpRequest, access: ProjectAccess, subject: Subject) -> HttpResponse:
    form = AlertRuleForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            rule = alert_rule_create(
                series=series_get_or_create(project=access.project, subject=subject),
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
    return redirect(series_url(project=access.project, subject=subject) + "#rules")


@login_required
@require_POST
def monitoring_rule_create(request: HttpRequest, slug: str, criterion_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.EDIT_ALERT_RULES)
    return _rule_create(request, access, _subject_or_404(access, JUDGE, criterion_id))


@login_required
@require_POST
def monitoring_series_rule_create(request: HttpRequest, slug: str, provider_name: str, subject_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.EDIT_ALERT_RULES)
    return _rule_create(request, access, _subject_or_404(access, provider_name, subject_id))


@login_required
@require_POST
def monitoring_traffic_set(request: HttpRequest, slug: str, provider_name: str, subject_id: int) -> HttpResponse:
    """All production traffic or the sample, for one series. The expert and engineers set it (as alert rules):
    it changes what a free check costs nothing to judge, not what counts as a pass."""
    access = get_project_for_user(request, slug, Permission.EDIT_ALERT_RULES)
    subject = _subject_or_404(access, provider_name, subject_id)
    choice = request.POST.get("traffic")
    if choice not in {"all", "sample"}:
        messages.error(request, f"traffic: expected all or sample, got {choice!r}.")
    else:
        series = series_get_or_create(project=access.project, subject=subject)
        series_traffic_set(series=series, all_traffic=choice == "all", user=request.user)
        check = current_check(project=access.project, provider_name=subject.provider, subject_id=subject.subject_id)
        if choice == "sample":
            messages.success(request, f"{subject.name} is judged on the sample of traces stored from now on.")
        elif check is not None and not check.local:
            messages.warning(
                request,
                f"{subject.name} is set to all production traffic, but its check ({check.label}, an {check.kind}) "
                "is paid per trace: it judges the sample until a check that runs here replaces it.",
            )
        else:
            messages.success(request, f"{subject.name} is judged on all production traces stored from now on.")
    return redirect(series_url(project=access.project, subject=subject))


@login_required
@require_POST
def monitoring_rule_update(request: HttpRequest, slug: str, rule_id: int) -> HttpResponse:
    """Enable, disable or delete a rule, or rotate its webhook secret. Disabling or deleting resolves its open
    alert: nobody watches it any more."""
    access = get_project_for_user(request, slug, Permission.EDIT_ALERT_RULES)
    rule = access.get_object_or_404(AlertRule.objects.select_related("series__project"), pk=rule_id)
    action = request.POST.get("action")
    if action not in {"enable", "disable", "delete", "rotate-secret"}:
        messages.error(request, f"Unknown action {action!r} for alert rule {rule.pk}.")
    elif action == "delete":
        alert_rule_delete(rule=rule)
    elif action == "rotate-secret":
        alert_rule_rotate_secret(rule=rule)
        messages.success(request, f"Alert rule {rule.pk} signs its webhooks with a new secret from now on.")
    else:
        alert_rule_enable(rule=rule, enabled=action == "enable")
    return redirect(rule.series.get_absolute_url() + "#rules")


@login_required
def monitoring_alert(request: HttpRequest, slug: str, alert_id: int) -> HttpResponse:
    """An alert and the traces behind it: the sampled traces of its bucket that the judge failed."""
    access = get_project_for_user(request, slug)
    alert = access.get_object_or_404(
        Alert.objects.select_related("rule", "series__project", "monitored_check"), pk=alert_id
    )
    judgments = (
        failed_judgments(check_id=alert.monitored_check_id, start=alert.bucket_start, end=alert.bucket_end)
        if alert.monitored_check_id
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
