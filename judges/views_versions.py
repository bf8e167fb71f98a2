"""A judge's own page: its immutable versions and what each froze (marked when built on a definition or labels that
changed since, with a new version from current labels one click away), making the next one, diffs between two,
the prompt an LLM version would send, "add as few-shot example" from a run's disagreements, and the iteration
history on the dev split."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotation.access import Permission, ProjectAccess, get_project_for_user
from annotation.selectors import trace_by_external_id
from annotation.services import DomainError
from core import llm_compat
from core.json_input import JsonTooDeep, json_loads
from core.llm_client import model_context
from judges import kinds
from judges.charts import history_chart, history_rows
from judges.examples import judge_example_add as judge_example_add_service
from judges.guardrails import judge_guardrail_states
from judges.kinds import versions_drift
from judges.kinds.llm import prompt_preview
from judges.models import Judge, JudgeRun, JudgeVersion
from judges.selectors import judge_version_numbers, judge_version_pair, judge_versions_page, latest_dev_runs_by_version
from judges.services import judge_version_create, judge_version_from_current_labels
from judges.views_bias import annotate_versions
from judges.views_promotion import judge_promotion_context

# Versions shown on the judge page, newest first; a judge iterated past this shows its latest ones.
VERSIONS_SHOWN = 50
COMMENT_MAX_CHARS = 2000
CONFIG_MAX_CHARS = 100_000
_DIFF_PARAM = re.compile(r"^\s*(\d+)\s*\.\.\s*(\d+)\s*$")


# Shown in place of an LLM judge's Run button (judges page and judge page), and when a run is asked for anyway.
def run_button_context() -> dict[str, Any]:
    """What the Run button fragment needs besides the judge and its versions."""
    return {"split_choices": JudgeRun.Split.choices}


def _pretty(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False)


# --- pure presentation: diffs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "added", "removed", "hunk", "header" or "context": the CSS class of the line
    text: str


def config_diff(
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    old_name: str,
    new_name: str,
    old_frozen: dict[str, Any] | None = None,
    new_frozen: dict[str, Any] | None = None,
) -> list[DiffLine]:
    """A unified diff of two pretty-printed configs, followed by what each version froze when it was made (when
    either froze anything), each line tagged for its CSS class (escaping is the template's job: configs and
    critiques hold untrusted text)."""
    lines = []
    for line in difflib.unified_diff(
        _diff_text(old, old_frozen), _diff_text(new, new_frozen), fromfile=old_name, tofile=new_name, lineterm=""
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


def _diff_text(config: dict[str, Any], frozen: dict[str, Any] | None) -> list[str]:
    text = _pretty(config).splitlines()
    if frozen:
        text += ["", "frozen when made:", *_pretty(frozen).splitlines()]
    return text


def _frozen(version: JudgeVersion) -> dict[str, Any] | None:
    """What the version froze, as judge_versions_page and judge_version_pair annotate it; None when nothing."""
    if getattr(version, "frozen_examples", None) is None:
        return None
    return {
        "criterion": version.frozen_criterion,
        "definition": version.frozen_definition,
        "examples": version.frozen_examples,
    }


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


# --- the judge page ------------------------------------------------------------------------------------------------


def _get_judge(access: ProjectAccess, judge_id: int) -> Judge:
    return access.get_object_or_404(Judge.objects.select_related("criterion"), pk=judge_id)


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
        diff_pair, diff_error = parse_diff_param(diff_raw, judge_version_numbers(judge=judge))
        if diff_pair:
            old, new = judge_version_pair(judge=judge, old=diff_pair[0], new=diff_pair[1])
            diff_lines = config_diff(
                old.config,
                new.config,
                old_name=f"v{old.number}",
                new_name=f"v{new.number}",
                old_frozen=_frozen(old),
                new_frozen=_frozen(new),
            )
    drifts = versions_drift(v.pk for v in versions)
    for version in versions:
        version.drift = drifts.get(version.pk)
    # The previous numbers too (one query still): "compare with previous version" is drawn only when both versions
    # have a finished dev run, since the comparison page has nothing to show otherwise (a 400).
    runs = latest_dev_runs_by_version(judge=judge, numbers=sorted({*by_number, *(n - 1 for n in by_number if n > 1)}))
    for version in versions:
        version.comparable_with_previous = version.number in runs and version.number - 1 in runs
    rows = history_rows(list(by_number), runs)
    promotion = judge_promotion_context(project=access.project, judge=judge, versions=versions)
    bias = annotate_versions(project=access.project, judge=judge, versions=versions)
    guardrail_states = judge_guardrail_states(judge=judge, versions=versions)
    for version in versions:
        version.guardrail_state = guardrail_states.get(version.number)
    bar = promotion["bar"]  # the project's bar: the chart's target lines are the ones promotion uses
    return {
        **promotion,
        **bias,
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
        "chart": history_chart(rows, target=bar.min_tpr, target_tnr=bar.min_tnr),
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
    access = get_project_for_user(request, slug, Permission.EDIT_JUDGES)
    judge = _get_judge(access, judge_id)
    raw_config = request.POST.get("config", "")
    comment = request.POST.get("comment", "").strip()
    errors: dict[str, str] = {}
    config: object = None
    if len(raw_config) > CONFIG_MAX_CHARS:
        errors["config"] = f"config: at most {CONFIG_MAX_CHARS:,} characters, got {len(raw_config):,}"
    else:
        try:
            config = json_loads(raw_config, where="config")
        except JsonTooDeep as exc:
            errors["config"] = str(exc)
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


@login_required
@require_POST
def judge_version_from_current_labels_view(request: HttpRequest, slug: str, judge_id: int, number: int) -> HttpResponse:
    """One click: the judge's next version with version `number`'s config, frozen from the criterion's current
    definition and labels."""
    access = get_project_for_user(request, slug, Permission.EDIT_JUDGES)
    judge = _get_judge(access, judge_id)
    version = get_object_or_404(JudgeVersion.objects.defer("artifact"), judge=judge, number=number)
    try:
        new = judge_version_from_current_labels(version=version, user=request.user)
    except DomainError as exc:
        messages.error(request, f"{judge.name}: {exc}")
    else:
        messages.success(request, f"{judge.name} v{new.number} created from v{number}'s config and current labels.")
    return redirect("judge_detail", slug, judge.pk)


# --- few-shot examples from a run's disagreements ------------------------------------------------------------------


@login_required
@require_POST
def judge_example_add(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    """A new version of the run's LLM judge with the disagreement's trace appended to its few-shot examples; the
    expert's critique of that trace becomes the example's reasoning when the prompt is built."""
    access = get_project_for_user(request, slug, Permission.EDIT_JUDGES)
    run = access.get_object_or_404(
        JudgeRun.objects.select_related("version__judge__criterion__project"), via="version__judge__project", pk=run_id
    )
    judge = run.version.judge
    back = redirect("judge_run_detail", slug, run.pk)
    external_id = request.POST.get("trace", "").strip()
    try:
        version = judge_example_add_service(judge=judge, external_id=external_id, run=run, user=request.user)
    except DomainError as exc:
        messages.error(request, f"{judge.name}: {exc}")
        return back
    messages.success(request, f"{judge.name} v{version.number} created with {external_id} as a few-shot example.")
    return redirect("judge_detail", slug, judge.pk)


# --- prompt preview ------------------------------------------------------------------------------------------------


def _prompt_size(version: JudgeVersion, prompt: list[dict[str, Any]]) -> dict[str, Any]:
    """The previewed prompt's estimated tokens, the model's context when known (the version's `context_tokens`, or
    what the server reported to a worker's run: the page asks no server) and the warning when it does not fit."""
    if not prompt:
        return {}
    estimated = llm_compat.estimate_tokens(prompt)
    window = model_context(None, version.config, probe=False)
    return {
        "prompt_tokens": estimated,
        "context_window": window,
        "context_warning": llm_compat.over_context_warning(estimated, version.config.get("max_tokens", 0), window),
    }


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
        error = f"{judge.name} is a {kinds.get(judge.kind).display} judge; only LLM judges have a prompt to preview"
    elif external_id:
        trace = trace_by_external_id(project=access.project, external_id=external_id)
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
        **_prompt_size(version, prompt),
    }
    return render(request, "judges/version_preview.html", context, status=400 if error else 200)
