"""A judge's own page: its immutable versions, making the next one, diffs between two, the prompt an LLM version
would send, "add as few-shot example" from a run's disagreements, and the iteration history on the dev split."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotation.access import ProjectAccess, get_project_for_user
from annotation.models import Label, Trace
from annotation.services import DomainError
from annotation.suggestions import llm_configured
from judges.models import Judge, JudgeRun, JudgeVersion
from judges.selectors import judge_versions_page, latest_dev_runs_by_version, split_key
from judges.services import judge_version_create, prompt_preview
from judges.splits import split_of
from judges.views_promotion import judge_promotion_context

# The judges page's alignment target (DESIGN.md: iterate until agreement is above 90%).
TARGET = 0.9
# Versions shown on the judge page, newest first; a judge iterated past this shows its latest ones.
VERSIONS_SHOWN = 50
COMMENT_MAX_CHARS = 2000
CONFIG_MAX_CHARS = 100_000
_DIFF_PARAM = re.compile(r"^\s*(\d+)\s*\.\.\s*(\d+)\s*$")
# Shown in place of an LLM judge's Run button (judges page and judge page), and when a run is asked for anyway.
LLM_ENDPOINT_HELP = (
    "No LLM endpoint is configured, so LLM judges cannot run yet. Point EvalStudio at any OpenAI-compatible server "
    "by setting OPENAI_BASE_URL before starting it: a local vLLM, Ollama or llama.cpp server works "
    "(Ollama: OPENAI_BASE_URL=http://127.0.0.1:11434/v1; llama.cpp's llama-server: http://127.0.0.1:8080/v1; "
    "vLLM: its --port, e.g. http://127.0.0.1:8001/v1), or set OPENAI_API_KEY to use OpenAI's API. The judge asks "
    'for the model named in its version\'s "model" setting: make a version naming a model your server serves.'
)


def run_button_context() -> dict[str, Any]:
    """What the Run button fragment needs besides the judge and its versions."""
    return {
        "llm_ready": llm_configured(),
        "llm_endpoint_help": LLM_ENDPOINT_HELP,
        "split_choices": JudgeRun.Split.choices,
    }


def _require_editor(access: ProjectAccess) -> None:
    if not access.can_ingest:
        raise PermissionDenied("Only the expert and engineers can change judges; viewers see them")


def _pretty(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False)


# --- pure presentation: diffs and the history chart ------------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "added", "removed", "hunk", "header" or "context": the CSS class of the line
    text: str


def config_diff(old: dict[str, Any], new: dict[str, Any], *, old_name: str, new_name: str) -> list[DiffLine]:
    """A unified diff of two pretty-printed configs, each line tagged for its CSS class (escaping is the
    template's job: configs hold untrusted prompt text)."""
    lines = []
    for line in difflib.unified_diff(
        _pretty(old).splitlines(), _pretty(new).splitlines(), fromfile=old_name, tofile=new_name, lineterm=""
    ):
        if line.startswith(("+++", "---")):
            kind = "header"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "added"
        elif line.startswith("-"):
            kind = "removed"
        else:
            kind = "context"
        lines.append(DiffLine(kind=kind, text=line))
    return lines


def parse_diff_param(raw: str, numbers: set[int]) -> tuple[tuple[int, int] | None, str | None]:
    """`?diff=1..2` → (1, 2), or an error naming the parameter and what is wrong."""
    match = _DIFF_PARAM.match(raw)
    if not match:
        return None, f"diff: expected two version numbers like 1..2, got {raw!r}"
    old, new = int(match[1]), int(match[2])
    missing = [n for n in (old, new) if n not in numbers]
    if missing:
        return None, f"diff: version {missing[0]} does not exist (versions: {', '.join(map(str, sorted(numbers)))})"
    if old == new:
        return None, f"diff: pick two different versions, got {old} twice"
    return (old, new), None


@dataclass(frozen=True)
class HistoryRow:
    number: int
    run: JudgeRun | None
    # metric key → (value, low, high); value None when the split had no expert pass (TPR) or fail (TNR).
    metrics: dict[str, tuple[float | None, float | None, float | None]]


HISTORY_METRICS = (("tpr", "TPR"), ("tnr", "TNR"), ("kappa", "κ"))
CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 640, 220, 36
# κ may be negative; the chart's y axis runs from Y_MIN so a worse-than-chance judge is still drawn.
Y_MIN, Y_MAX = -0.2, 1.0


def history_rows(numbers: list[int], runs: dict[int, JudgeRun]) -> list[HistoryRow]:
    rows = []
    for number in numbers:
        run = runs.get(number)
        metrics: dict[str, tuple[float | None, float | None, float | None]] = {}
        for key, _ in HISTORY_METRICS:
            report = run.report if run and run.report else {}
            interval = (report.get("ci") or {}).get(key) or (None, None)
            metrics[key] = (report.get(key), interval[0], interval[1])
        rows.append(HistoryRow(number=number, run=run, metrics=metrics))
    return rows


def _y(value: float) -> float:
    value = min(max(value, Y_MIN), Y_MAX)
    inner = CHART_HEIGHT - 2 * CHART_PAD
    return round(CHART_PAD + (Y_MAX - value) / (Y_MAX - Y_MIN) * inner, 1)


def history_chart(rows: list[HistoryRow]) -> dict[str, Any]:
    """Coordinates for the server-side SVG: per version with a dev run, one point per metric with its 95%
    whisker, side by side; a dashed line at the target; y ticks. Versions oldest first, left to right."""
    measured = [row for row in sorted(rows, key=lambda r: r.number) if row.run is not None]
    inner_width = CHART_WIDTH - 2 * CHART_PAD
    slot = inner_width / max(len(measured), 1)
    points = []
    labels = []
    for index, row in enumerate(measured):
        centre = CHART_PAD + slot * (index + 0.5)
        labels.append({"x": round(centre, 1), "text": f"v{row.number}"})
        for offset, (key, name) in zip((-10, 0, 10), HISTORY_METRICS, strict=True):
            value, low, high = row.metrics[key]
            if value is None:
                continue
            points.append(
                {
                    "metric": key,
                    "name": name,
                    "version": row.number,
                    "value": value,
                    "x": round(centre + offset, 1),
                    "y": _y(value),
                    "low_y": _y(low) if low is not None else None,
                    "high_y": _y(high) if high is not None else None,
                }
            )
    ticks = [{"value": v, "y": _y(v)} for v in (0.0, 0.25, 0.5, 0.75, 1.0)]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_PAD,
        "right": CHART_WIDTH - CHART_PAD,
        "bottom": CHART_HEIGHT - CHART_PAD,
        "target_y": _y(TARGET),
        "ticks": ticks,
        "labels": labels,
        "points": points,
        "empty": not measured,
    }


# --- the judge page ------------------------------------------------------------------------------------------------


def _get_judge(access: ProjectAccess, judge_id: int) -> Judge:
    return get_object_or_404(Judge.objects.select_related("criterion"), pk=judge_id, project=access.project)


def _judge_context(
    request: HttpRequest,
    access: ProjectAccess,
    judge: Judge,
    *,
    form_config: str | None = None,
    form_comment: str = "",
    form_errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    versions = judge_versions_page(judge=judge, limit=VERSIONS_SHOWN)
    by_number = {v.number: v for v in versions}
    latest = versions[0] if versions else None
    diff_raw = request.GET.get("diff", "").strip()
    diff_lines: list[DiffLine] = []
    diff_pair = None
    diff_error = None
    if diff_raw:
        # Diffs may name versions older than the page shows: check against all of the judge's numbers.
        numbers = set(judge.versions.values_list("number", flat=True))
        diff_pair, diff_error = parse_diff_param(diff_raw, numbers)
        if diff_pair:
            pair = {v.number: v for v in judge.versions.filter(number__in=diff_pair).only("number", "config")}
            old, new = pair[diff_pair[0]], pair[diff_pair[1]]
            diff_lines = config_diff(old.config, new.config, old_name=f"v{old.number}", new_name=f"v{new.number}")
    runs = latest_dev_runs_by_version(judge=judge, numbers=list(by_number))
    rows = history_rows(list(by_number), runs)
    promotion = judge_promotion_context(project=access.project, judge=judge, versions=versions)
    return {
        **promotion,
        **run_button_context(),
        "run_versions": versions,
        "project": access.project,
        "access": access,
        "judge": judge,
        "versions": [(v, _pretty(v.config)) for v in versions],
        "versions_capped": len(versions) == VERSIONS_SHOWN,
        "latest": latest,
        "form_config": form_config if form_config is not None else (_pretty(latest.config) if latest else "{}"),
        "form_comment": form_comment,
        "form_errors": form_errors or {},
        "diff_raw": diff_raw,
        "diff_pair": diff_pair,
        "diff_error": diff_error,
        "diff_lines": diff_lines,
        "history": rows,
        "chart": history_chart(rows),
        "target": TARGET,
        "is_llm": judge.kind == Judge.Kind.LLM,
    }


@login_required
@require_GET
def judge_detail(request: HttpRequest, slug: str, judge_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    judge = _get_judge(access, judge_id)
    context = _judge_context(request, access, judge)
    return render(request, "judges/judge_detail.html", context, status=400 if context["diff_error"] else 200)


@login_required
@require_POST
def judge_version_create_view(request: HttpRequest, slug: str, judge_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    _require_editor(access)
    judge = _get_judge(access, judge_id)
    raw_config = request.POST.get("config", "")
    comment = request.POST.get("comment", "").strip()
    errors: dict[str, str] = {}
    config: object = None
    if len(raw_config) > CONFIG_MAX_CHARS:
        errors["config"] = f"config: at most {CONFIG_MAX_CHARS:,} characters, got {len(raw_config):,}"
    else:
        try:
            config = json.loads(raw_config)
        except json.JSONDecodeError as exc:
            errors["config"] = f"config: not valid JSON — {exc.msg} at line {exc.lineno}, column {exc.colno}"
    if len(comment) > COMMENT_MAX_CHARS:
        errors["comment"] = f"comment: at most {COMMENT_MAX_CHARS:,} characters, got {len(comment):,}"
    if not errors:
        try:
            version = judge_version_create(judge=judge, config=config, comment=comment, user=request.user)
        except DomainError as exc:
            message = str(exc)
            # The service names the field first ("config: …", "examples: …"); anything else is about the config.
            errors["comment" if message.startswith("comment:") else "config"] = message
        else:
            messages.success(request, f"{judge.name} v{version.number} created.")
            return redirect("judge_detail", slug, judge.pk)
    context = _judge_context(request, access, judge, form_config=raw_config, form_comment=comment, form_errors=errors)
    return render(request, "judges/judge_detail.html", context, status=400)


# --- few-shot examples from a run's disagreements ------------------------------------------------------------------


@login_required
@require_POST
def judge_example_add(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    """A new version of the run's LLM judge with the disagreement's trace appended to its few-shot examples; the
    expert's critique of that trace becomes the example's reasoning when the prompt is built."""
    access = get_project_for_user(request, slug)
    _require_editor(access)
    run = get_object_or_404(
        JudgeRun.objects.select_related("version__judge__criterion__project"),
        pk=run_id,
        version__judge__project=access.project,
    )
    judge = run.version.judge
    back = redirect("judge_run_detail", slug, run.pk)
    external_id = request.POST.get("trace", "").strip()
    try:
        version = _add_example(judge=judge, external_id=external_id, run=run, user=request.user)
    except DomainError as exc:
        messages.error(request, f"{judge.name}: {exc}")
        return back
    messages.success(request, f"{judge.name} v{version.number} created with {external_id} as a few-shot example.")
    return redirect("judge_detail", slug, judge.pk)


@transaction.atomic
def _add_example(*, judge: Judge, external_id: str, run: JudgeRun, user: Any) -> JudgeVersion:
    if judge.kind != Judge.Kind.LLM:
        raise DomainError(f"only LLM judges take few-shot examples; this is a {judge.get_kind_display()} judge")
    if not external_id:
        raise DomainError("trace: name the trace to add as an example")
    criterion = judge.criterion
    trace = Trace.objects.filter(project=judge.project_id, external_id=external_id).only("id").first()
    if trace is None:
        raise DomainError(f"trace: {external_id!r} is not a trace of this project")
    if not Label.objects.filter(criterion=criterion, trace=trace).exists():
        raise DomainError(f"trace: {external_id!r} has no expert label for {criterion.name!r}")
    split = split_of(split_key(criterion), external_id)
    if split != "train":
        raise DomainError(
            f"trace {external_id!r} is in the {split} split; only train traces can be examples, or the judge "
            "would be measured on its own examples"
        )
    # Lock the judge before reading its latest config: two quick clicks must each append, not overwrite the other.
    Judge.objects.select_for_update().filter(pk=judge.pk).first()
    latest = judge.latest_version()
    config = dict(latest.config) if latest else {}
    examples = list(config.get("examples", []))
    if external_id in examples:
        raise DomainError(f"trace {external_id!r} is already a few-shot example of v{latest.number}")
    config["examples"] = [*examples, external_id]
    comment = f"Added {external_id} as a few-shot example (a disagreement of run #{run.pk})"
    return judge_version_create(judge=judge, config=config, comment=comment, user=user)


def disagreement_example_states(*, judge: Judge, external_ids: list[str]) -> dict[str, str]:
    """external id → "addable", "example" (already in the latest version) or the split that forbids it."""
    if judge.kind != Judge.Kind.LLM:
        return {}
    latest = judge.latest_version()
    current = set((latest.config if latest else {}).get("examples", []))
    key = split_key(judge.criterion)
    states = {}
    for external_id in external_ids:
        split = split_of(key, external_id)
        states[external_id] = "example" if external_id in current else ("addable" if split == "train" else split)
    return states


# --- prompt preview ------------------------------------------------------------------------------------------------


@login_required
@require_GET
def judge_version_preview(request: HttpRequest, slug: str, judge_id: int, number: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    judge = _get_judge(access, judge_id)
    version = get_object_or_404(JudgeVersion, judge=judge, number=number)
    external_id = request.GET.get("trace", "").strip()
    error = None
    prompt: list[dict[str, Any]] = []
    if judge.kind != Judge.Kind.LLM:
        error = f"{judge.name} is a {judge.get_kind_display()} judge; only LLM judges have a prompt to preview"
    elif external_id:
        trace = Trace.objects.filter(project=access.project, external_id=external_id).first()
        if trace is None:
            error = f"trace: {external_id!r} is not a trace of this project"
        else:
            try:
                prompt = prompt_preview(version=version, trace=trace)
            except DomainError as exc:
                error = str(exc)
    context = {
        "project": access.project,
        "access": access,
        "judge": judge,
        "version": version,
        "trace_id": external_id,
        "error": error,
        "prompt": prompt,
    }
    return render(request, "judges/version_preview.html", context, status=400 if error else 200)
