"""Judges end to end: versions, splits, runs in process and on a real worker, imported verdicts, the commands."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from annotation.ingest import import_records
from annotation.models import Label
from annotation.services import DomainError
from annotation.trace_format import from_binarized
from core.runs import claimable_runs
from judges.models import Judge, JudgeRun, Judgment
from judges.selectors import labelled_trace_ids, split_counts
from judges.services import (
    judge_create,
    judge_run_cancel,
    judge_run_chunk,
    judge_run_create,
    judge_run_execute,
    judge_run_maybe_finish,
    judge_run_plan,
    judge_version_create,
    judgments_import,
)
from judges.stats import METRICS, ConfusionMatrix, metrics
from tests.factories import make_criterion, make_label, make_project, make_trace

pytestmark = pytest.mark.django_db
DATA = Path("/work/shared/data")
REFUSES_APOLOGY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}


@pytest.fixture
def criterion(project):
    return make_criterion(project=project, name="no_apology")


@pytest.fixture
def labelled(project, criterion):
    """120 traces: the expert fails the apologetic ones; the judge's check catches all but the subtle ones."""
    for i in range(120):
        apologetic, subtle = i % 3 == 0, i % 12 == 0
        output = "We regret the trouble." if subtle else ("Sorry, no." if apologetic else "Done.")
        trace = make_trace(project=project, external_id=f"t-{i}", output=output)
        make_label(trace=trace, criterion=criterion, verdict="fail" if apologetic else "pass")
    return criterion


def run_cmd(*args: str) -> tuple[str, CommandError | None]:
    out = io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=io.StringIO())
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def test_a_judge_starts_at_version_one_and_changes_only_by_new_versions(project, criterion):
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=REFUSES_APOLOGY)
    first = judge.latest_version()
    assert (first.number, first.config["value"]) == (1, "sorry")
    second = judge_version_create(judge=judge, config={**REFUSES_APOLOGY, "value": "apolog"}, comment="broader")
    assert second.number == 2 and judge.latest_version() == second
    first.refresh_from_db()
    assert first.config["value"] == "sorry"  # the old version is untouched
    with pytest.raises(DomainError, match="nothing changed: the config is the same as version 2"):
        judge_version_create(judge=judge, config={**REFUSES_APOLOGY, "value": "apolog"})


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("assertion", {"check": "regex"}, "config: pattern: a regular expression is required"),
        ("assertion", None, "config: check: expected one of"),
        ("llm", {"model": "x", "few_shot": 99}, "config: few_shot: expected a number from 0 to 20"),
        ("classifier", {"C": -1}, "config: C: expected a positive number"),
        ("external", {"x": 1}, "config: an external judge takes no settings"),
        ("oracle", {}, "kind: expected one of"),
    ],
)
def test_bad_judges_are_refused_with_the_reason(project, criterion, kind, config, message):
    with pytest.raises(DomainError, match=message):
        judge_create(project=project, criterion=criterion, name="j", kind=kind, config=config)
    assert not Judge.objects.exists()


def test_names_are_unique_per_project_and_criteria_must_belong_to_it(project, criterion):
    judge_create(project=project, criterion=criterion, name="j", kind="external")
    with pytest.raises(DomainError, match="already has a judge named 'j'"):
        judge_create(project=project, criterion=criterion, name="j", kind="external")
    other = make_criterion(project=make_project(slug="other"), name="x")
    with pytest.raises(DomainError, match="belongs to another project"):
        judge_create(project=project, criterion=other, name="k", kind="external")


def test_splits_are_about_20_40_40_and_never_move(project, labelled):
    counts = split_counts(criterion=labelled)
    sizes = {name: sum(c.values()) for name, c in counts.items()}
    assert sum(sizes.values()) == 120
    assert 10 <= sizes["train"] <= 40 and 30 <= sizes["dev"] <= 70 and 30 <= sizes["test"] <= 70
    before = {name: labelled_trace_ids(criterion=labelled, split=name) for name in ("train", "dev", "test")}
    for i in range(120, 200):
        make_label(trace=make_trace(project=project, external_id=f"t-{i}"), criterion=labelled, verdict="pass")
    for name, ids in before.items():
        assert ids.items() <= labelled_trace_ids(criterion=labelled, split=name).items()


def test_an_inline_run_judges_each_trace_of_its_split_once_and_reports_against_the_expert(project, labelled):
    judge = judge_create(project=project, criterion=labelled, name="apology", kind="assertion", config=REFUSES_APOLOGY)
    run = judge_run_create(version=judge.latest_version(), split="dev")
    expert = labelled_trace_ids(criterion=labelled, split="dev")
    assert run.total == len(expert)
    run = judge_run_execute(run=run)
    assert run.status == "done"
    judgments = dict(Judgment.objects.filter(run=run).values_list("trace_id", "verdict"))
    assert judgments.keys() == expert.keys()
    # The report, recomputed naively from the rows.
    expected = ConfusionMatrix.from_pairs((expert[t], v) for t, v in judgments.items())
    assert (run.report["tp"], run.report["fn"], run.report["fp"], run.report["tn"]) == (
        expected.tp,
        expected.fn,
        expected.fp,
        expected.tn,
    )
    assert expected.fp > 0  # the subtle apologies slip through
    for name, value in metrics(expected).items():
        assert run.report[name] == pytest.approx(value)
        low, high = run.report["ci"][name]
        assert low <= value <= high
    # Running the same run again changes nothing.
    assert judge_run_execute(run=run).report == run.report
    assert Judgment.objects.filter(run=run).count() == len(expert)


def test_errors_are_counted_apart_from_passes_and_fails(project, labelled):
    judge = judge_create(project=project, criterion=labelled, name="apology", kind="assertion", config=REFUSES_APOLOGY)
    run = judge_run_create(version=judge.latest_version(), split="all")
    traces = list(labelled_trace_ids(criterion=labelled, split="all"))
    Judgment.objects.bulk_create(
        [Judgment(run=run, trace_id=t, verdict="pass") for t in traces[:100]]
        + [Judgment(run=run, trace_id=t, error="timeout") for t in traces[100:]]
    )
    JudgeRun.objects.filter(pk=run.pk).update(status="running")
    assert judge_run_maybe_finish(run=run)
    report = run.report
    assert (report["n"], report["errors"]) == (100, 20)


def judgments_file(*rows: object) -> io.BytesIO:
    return io.BytesIO(b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows))


def test_imported_verdicts_are_measured_like_any_other_judge(project, labelled):
    judge = judge_create(project=project, criterion=labelled, name="vendor", kind="external")
    rows = [{"id": f"t-{i}", "verdict": "fail" if i % 2 else "pass", "reasoning": f"r{i}"} for i in range(120)]
    result = judgments_import(judge=judge, stream=judgments_file(*rows), source_name="vendor.jsonl")
    assert (result.imported, result.rejected) == (120, [])
    assert result.run.report["n"] == 120
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="test"))
    assert run.report["n"] == len(labelled_trace_ids(criterion=labelled, split="test"))
    assert Judgment.objects.filter(run=run, reasoning__startswith="r").count() == run.report["n"]
    # Verdicts for only some traces: the run measures those and finishes (it does not wait for the rest).
    partial = judge_create(project=project, criterion=labelled, name="partial", kind="external")
    judgments_import(judge=partial, stream=judgments_file(*rows[:30]), source_name="partial.jsonl")
    run = judge_run_execute(run=judge_run_create(version=partial.latest_version(), split="all"))
    assert (run.status, run.total, run.report["n"]) == ("done", 30, 30)


def test_a_bad_judgments_file_is_reported_line_by_line_and_nothing_lands(project, labelled):
    judge = judge_create(project=project, criterion=labelled, name="vendor", kind="external")
    stream = judgments_file(
        {"id": "t-1", "verdict": "pass"},
        b"{oops",
        {"id": "t-2", "verdict": "maybe"},
        {"id": "t-1", "verdict": "fail"},
        {"id": "nope", "verdict": "fail"},
        {"id": "t-3", "verdict": "fail", "score": 0.3},
    )
    result = judgments_import(judge=judge, stream=stream, source_name="bad.jsonl")
    assert [str(r) for r in result.rejected] == [
        "line 2: invalid JSON: Expecting property name enclosed in double quotes at column 2",
        "line 3: verdict: expected 'pass' or 'fail', got 'maybe'",
        "line 4: id: 't-1' already judged on line 1",
        "line 5: id: no trace 'nope' in project 'acme'",
        "line 6: unknown field 'score' (fields: id, verdict, reasoning)",
    ]
    assert result.run is None and not JudgeRun.objects.exists()
    with pytest.raises(DomainError, match="the file is empty"):
        judgments_import(judge=judge, stream=io.BytesIO(b""), source_name="empty.jsonl")
    assertion_judge = judge_create(
        project=project, criterion=labelled, name="a", kind="assertion", config=REFUSES_APOLOGY
    )
    with pytest.raises(DomainError, match="can only be imported into an external one"):
        judgments_import(judge=assertion_judge, stream=judgments_file(), source_name="x")


def test_commands_create_run_and_print_the_report_keys(project, labelled, tmp_path):
    config = tmp_path / "judge.json"
    config.write_text(json.dumps(REFUSES_APOLOGY))
    out, error = run_cmd(
        "create_judge", "--project", "acme", "--criterion", "no_apology", "--name", "apology",
        "--kind", "assertion", "--config", str(config),
    )  # fmt: skip
    assert error is None and out.strip() == "created assertion judge 'apology' for 'no_apology', version 1"
    out, error = run_cmd("run_judge", "--project", "acme", "--judge", "apology", "--split", "dev", "--inline", "--json")
    assert error is None
    report = json.loads(out)
    assert set(report) == {"n", "tp", "fp", "tn", "fn", *METRICS, "ci", "errors", "skipped", "skipped_reasons", "split"}
    assert report["split"] == "dev"
    out, error = run_cmd("run_judge", "--project", "acme", "--judge", "apology", "--split", "dev", "--inline")
    assert error is None and out.startswith("apology v1 on dev: n=") and "95% CI" in out
    _, error = run_cmd("run_judge", "--project", "acme", "--judge", "nope", "--split", "dev", "--inline")
    assert str(error) == "--judge: project 'acme' has no judge 'nope' (judges: apology)"
    _, error = run_cmd("run_judge", "--project", "acme", "--judge", "apology", "--version", "7", "--split", "dev")
    assert str(error) == "--version: judge 'apology' has no version 7 (versions: 1)"
    _, error = run_cmd("create_judge", "--project", "acme", "--criterion", "tone", "--name", "x", "--kind", "external")
    assert str(error) == "--criterion: project 'acme' has no criterion 'tone' (criteria: no_apology)"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_run_judge_goes_through_a_real_worker(celery_worker, project, labelled):
    judge_create(project=project, criterion=labelled, name="apology", kind="assertion", config=REFUSES_APOLOGY)
    out, error = run_cmd("run_judge", "--project", "acme", "--judge", "apology", "--split", "all", "--json")
    assert error is None
    assert json.loads(out)["n"] == 120
    assert JudgeRun.objects.get().status == "done"


def test_faithbench_detectors_imported_as_external_judges(project):
    """A real LLM judge's alignment without calling an LLM: GPT-4o's FaithBench predictions against the humans."""
    path = DATA / "faithbench" / "binarized.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    report = import_records(project=project, records=[from_binarized(row, criterion="faithful") for row in lines])
    assert report.rejected == []
    criterion = Label.objects.filter(trace__project=project).first().criterion
    judge = judge_create(project=project, criterion=criterion, name="gpt-4o", kind="external")
    verdicts = [
        {"id": row["id"], "verdict": "pass" if row["meta"]["gpt_4o"] == 1 else "fail"}
        for row in lines
        if row["meta"].get("gpt_4o") in (0, 1)
    ]
    result = judgments_import(judge=judge, stream=judgments_file(*verdicts), source_name="faithbench gpt_4o")
    assert result.rejected == []
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="test"))
    human = labelled_trace_ids(criterion=criterion, split="test")
    assert run.report["n"] == len([v for v in verdicts if row_in(v["id"], human, project)])
    assert 0 < run.report["accuracy"] < 1
    assert Counter(human.values())["fail"] > 0


def row_in(external_id: str, trace_ids: dict[int, str], project) -> bool:
    from annotation.models import Trace

    return Trace.objects.get(project=project, external_id=external_id).pk in trace_ids


def test_cancelling_a_running_run_stops_its_chunks_and_keeps_it_cancelled(project, labelled):
    judge = judge_create(project=project, criterion=labelled, name="apology", kind="assertion", config=REFUSES_APOLOGY)
    run = judge_run_create(version=judge.latest_version(), split="all")
    chunks = judge_run_plan(run=run)
    assert len(chunks) == 1 and run.status == "running"
    judge_run_cancel(run=run)
    assert judge_run_chunk(run=run, trace_ids=chunks[0]) == 0
    assert not judge_run_maybe_finish(run=run)
    run.refresh_from_db()
    assert (run.status, run.report) == ("cancelled", None)
    assert not Judgment.objects.filter(run=run).exists()


def test_a_run_whose_worker_died_is_planned_again_for_what_is_missing(project, labelled, settings):
    judge = judge_create(project=project, criterion=labelled, name="apology", kind="assertion", config=REFUSES_APOLOGY)
    run = judge_run_create(version=judge.latest_version(), split="all")
    (chunk,) = judge_run_plan(run=run)
    judge_run_chunk(run=run, trace_ids=chunk[:50])  # then the worker is killed
    assert judge_run_plan(run=run) == []  # its heartbeat is fresh: another delivery must not take it over
    silent = timedelta(seconds=settings.EVALSTUDIO_RUN_STALE_SECONDS + 1)
    JudgeRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - silent)
    assert list(claimable_runs(JudgeRun)) == [run]
    (rest,) = judge_run_plan(run=run)
    assert sorted(rest) == sorted(chunk[50:])
    judge_run_chunk(run=run, trace_ids=rest)
    assert judge_run_maybe_finish(run=run)
    assert Judgment.objects.filter(run=run).count() == 120 and run.report["n"] == 120


def test_chunks_planned_by_an_attempt_that_was_taken_over_do_nothing(project, labelled, monkeypatch, settings):
    from judges.tasks import judge_run_chunk_task, judge_run_task

    judge = judge_create(project=project, criterion=labelled, name="apology", kind="assertion", config=REFUSES_APOLOGY)
    run = judge_run_create(version=judge.latest_version(), split="all")
    queued: list[tuple] = []
    monkeypatch.setattr(judge_run_chunk_task, "delay", lambda *args: queued.append(args))
    assert judge_run_task(run.pk) == 1
    (lost_chunk,) = queued  # the worker died before judging it; its message comes back much later
    silent = timedelta(seconds=settings.EVALSTUDIO_RUN_STALE_SECONDS + 1)
    JudgeRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - silent)
    assert judge_run_task(run.pk) == 1  # taken over: the new attempt plans its own chunk
    own_chunk = queued[1]
    assert own_chunk[1] == lost_chunk[1] and own_chunk[2] != lost_chunk[2]
    assert judge_run_chunk_task(*lost_chunk) == 0 and not Judgment.objects.filter(run=run).exists()
    assert judge_run_chunk_task(*own_chunk) == 120
    run.refresh_from_db()
    assert (run.status, run.attempts, run.report["n"]) == ("done", 2, 120)


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_is_kept_while_a_chunk_is_judged(project, labelled, settings):
    import time

    from judges.providers import Outcome

    settings.EVALSTUDIO_RUN_STALE_SECONDS = 0.6  # a beat every 0.1 s
    judge = judge_create(project=project, criterion=labelled, name="apology", kind="assertion", config=REFUSES_APOLOGY)
    run = judge_run_create(version=judge.latest_version(), split="all")
    (chunk,) = judge_run_plan(run=run)
    claimed_at = JudgeRun.objects.get(pk=run.pk).heartbeat_at

    def slow_llm(traces: list) -> list[Outcome]:
        # Longer than the window: without beats while it waits, the run would look lost.
        deadline = time.monotonic() + 10
        while JudgeRun.objects.get(pk=run.pk).heartbeat_at < claimed_at + timedelta(seconds=1):
            assert time.monotonic() < deadline, "no heartbeat while the chunk was judged"
            time.sleep(0.05)
        return [Outcome(verdict="pass") for _ in traces]

    assert judge_run_chunk(run=run, trace_ids=chunk, score=slow_llm) == 120
    assert JudgeRun.objects.get(pk=run.pk).heartbeat_at >= claimed_at + timedelta(seconds=1)


def test_run_judge_without_a_worker_judges_in_process_after_a_grace_period(project, labelled, monkeypatch):
    """Nothing consumes the broker in this test: the command must not wait for a worker that never comes."""
    from judges.management.commands import _common

    monkeypatch.setattr(_common, "WORKER_GRACE_S", 0)
    judge_create(project=project, criterion=labelled, name="apology", kind="assertion", config=REFUSES_APOLOGY)
    err = io.StringIO()
    out = io.StringIO()
    call_command("run_judge", "--project", "acme", "--judge", "apology", "--split", "dev", "--json", stdout=out,
                 stderr=err)  # fmt: skip
    assert json.loads(out.getvalue())["split"] == "dev"
    assert "judging in this process" in err.getvalue()
