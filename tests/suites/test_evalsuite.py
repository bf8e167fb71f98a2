"""`manage.py evalsuite`: candidate outputs for the golden inputs judged by the promoted judges, compared with a
baseline; exit 0 pass, 1 regression / under threshold, 2 bad input (nothing stored)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from django.core.management import call_command

from judges.bias import bias_run_create, bias_run_execute
from judges.models import Promotion
from judges.promotions import judge_version_promote
from judges.services import judge_create, judge_run_create, judge_run_execute
from suites.floors import suite_floor_set
from suites.golden import golden_add, golden_remove
from suites.models import SuiteCase, SuiteRun, SuiteVerdict
from tests.factories import make_criterion, make_label, make_split_labels, make_trace

pytestmark = pytest.mark.django_db

GOOD, BAD = "Here you go.", "Sorry, I cannot help."
NO_SORRY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
GOLDEN = 40  # golden traces; the first 10 apologise, so the golden outputs pass no_apology at 75%


def judge_count() -> int:
    from judges.models import Judge

    return Judge.objects.count()


def promote(criterion, *, name: str, kind: str, config: dict) -> None:
    # Promotion is decided on test by the 95% lower bounds: 40 more labels of each class there, outside the golden set.
    # (Ids, and so inputs, name the criterion: a judge name such as "no-sorry" would be an apology to the LLM judge.)
    test = [(GOOD, "pass"), (BAD, "fail")] * 40
    make_split_labels(criterion=criterion, split="test", outputs=test, prefix=f"test-{criterion.name}-{judge_count()}")
    judge = judge_create(project=criterion.project, criterion=criterion, name=name, kind=kind, config=config)
    version = judge.latest_version()
    for split in ("dev", "test"):
        judge_run_execute(run=judge_run_create(version=version, split=split))
    if kind == "llm":  # an LLM judge is promoted after a bias battery under the bias bar
        bias_run_execute(run=bias_run_create(version=version))
    judge_version_promote(version=version)


@pytest.fixture
def criterion(project):
    """`no_apology` with 120 labelled traces and a promoted assertion judge; the first 40 traces are golden."""
    criterion = make_criterion(project=project, name="no_apology", definition="Fail when the reply apologises.")
    traces = []
    for i in range(120):
        bad = i % 4 == 0 if i >= GOLDEN else i < 10
        trace = make_trace(project=project, external_id=f"g-{i}", output=BAD if bad else GOOD)
        make_label(trace=trace, criterion=criterion, verdict="fail" if bad else "pass")
        traces.append(trace)
    promote(criterion, name="no-sorry", kind="assertion", config=NO_SORRY)
    golden_add(project=project, traces=traces[:GOLDEN], reason="core_feature")
    return criterion


def write_candidates(tmp_path: Path, outputs: dict[str, str] | list[object], name: str = "candidates.jsonl") -> str:
    path = tmp_path / name
    if isinstance(outputs, dict):
        lines = [json.dumps({"id": i, "output": o}) for i, o in outputs.items()]
    else:
        lines = [item if isinstance(item, str) else json.dumps(item) for item in outputs]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def golden_outputs(*, apologising: int = 10) -> dict[str, str]:
    """Candidates for the 40 golden ids; the first `apologising` apologise."""
    return {f"g-{i}": BAD if i < apologising else GOOD for i in range(GOLDEN)}


def evalsuite(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("evalsuite", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


# --- exit codes ----------------------------------------------------------------------------------------------------


def test_candidates_as_good_as_the_golden_outputs_pass_with_exit_0(project, criterion, tmp_path):
    code, out, err = evalsuite("--project", "acme", "--candidates", write_candidates(tmp_path, golden_outputs()))
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("no_apology"))
    assert "75.0%" in row and "+0.0 pt" in row and row.rstrip().endswith("pass")
    assert "OK: exit 0" in out and "too easy" not in out
    run = SuiteRun.objects.get()
    assert run.exit_code == 0 and run.golden_version == 1 and run.baseline is None
    assert SuiteCase.objects.filter(run=run).count() == GOLDEN
    assert SuiteVerdict.objects.filter(case__run=run, verdict="fail").count() == 10


def test_a_significant_regression_fails_with_exit_1_and_names_the_paired_test(project, criterion, tmp_path):
    code, out, _ = evalsuite(
        "--project", "acme", "--candidates", write_candidates(tmp_path, golden_outputs(apologising=25)), "--json"
    )
    assert code == 1
    result = json.loads(out)
    (row,) = result["criteria"]
    assert row["pass_rate"] == pytest.approx(15 / 40) and row["baseline_pass_rate"] == pytest.approx(30 / 40)
    assert row["only_baseline_passed"] == 15 and row["only_candidate_passed"] == 0
    assert row["p_value"] == pytest.approx(2 * 0.5**15)
    assert row["verdict"] == "regression" and result["exit_code"] == 1
    assert SuiteRun.objects.get().exit_code == 1


def test_a_small_drop_that_is_not_significant_still_passes(project, criterion, tmp_path):
    code, out, _ = evalsuite(
        "--project", "acme", "--candidates", write_candidates(tmp_path, golden_outputs(apologising=12)), "--json"
    )
    (row,) = json.loads(out)["criteria"]
    assert code == 0 and row["verdict"] == "pass" and row["p_value"] == pytest.approx(0.5)
    # The same drop with a lax alpha is a regression: alpha is honoured, not fixed.
    code, _, _ = evalsuite(
        "--project",
        "acme",
        "--candidates",
        write_candidates(tmp_path, golden_outputs(apologising=12)),
        "--alpha",
        "0.6",
    )
    assert code == 1


def test_a_pass_rate_under_the_criterions_threshold_fails_with_exit_1(project, criterion, tmp_path):
    suite_floor_set(criterion=criterion, min_pass_rate=0.8)
    code, out, _ = evalsuite("--project", "acme", "--candidates", write_candidates(tmp_path, golden_outputs()))
    assert code == 1
    assert "pass rate 75.0% is under the threshold 80.0%" in out and "UNDER_THRESHOLD" in out
    suite_floor_set(criterion=criterion, min_pass_rate=0.7)
    code, out, _ = evalsuite("--project", "acme", "--candidates", write_candidates(tmp_path, golden_outputs()))
    assert code == 0 and "meets its threshold 70.0%" in out


def test_a_criterion_above_90_percent_and_a_golden_set_under_100_cases_warn_and_say_why(project, criterion, tmp_path):
    # 3 of 40 apologise: 92.5% passes, above the 90% that leaves failures visible, though not every case passes.
    code, out, err = evalsuite(
        "--project", "acme", "--candidates", write_candidates(tmp_path, golden_outputs(apologising=3)), "--json"
    )
    warnings = json.loads(out)["warnings"]
    assert code == 0 and warnings == [
        "the golden set has 40 cases, fewer than 100: at a 70% pass rate a criterion's 95% interval is 30 points "
        "wide (53%–83%), too wide to see a regression; grow it to 100–200 cases (past failures, edge cases)",
        "suite too easy for no_apology: its candidates pass 37 of 40 golden cases (92.5%), above 90%, so too few "
        "failures are left to show a regression; aim for about 70% (add harder golden cases, e.g. past failures)",
    ]
    assert err.splitlines() == [f"warning: {w}" for w in warnings]
    # The table says the same; at 75% only the golden set's size is left to warn about.
    code, out, _ = evalsuite("--project", "acme", "--candidates", write_candidates(tmp_path, golden_outputs()))
    assert "warning: the golden set has 40 cases, fewer than 100" in out and "too easy" not in out
    assert SuiteRun.objects.order_by("-id").first().summary["warnings"][0].startswith("the golden set has 40 cases")


def test_a_golden_set_of_100_to_200_cases_gets_no_size_warning(project, criterion, tmp_path):
    golden_add(
        project=project,
        traces=list(project.traces.filter(external_id__in=[f"g-{i}" for i in range(40, 100)])),
        reason="edge_case",
    )
    outputs = {f"g-{i}": BAD if i < 10 or (i >= 40 and i % 4 == 0) else GOOD for i in range(100)}
    code, out, _ = evalsuite("--project", "acme", "--candidates", write_candidates(tmp_path, outputs), "--json")
    result = json.loads(out)
    assert code == 0 and result["cases"] == 100 and result["warnings"] == []


# --- bad input: exit 2, each problem named, nothing stored -----------------------------------------------------------


def assert_bad_input(args: list[str], *expected: str) -> str:
    code, out, err = evalsuite(*args)
    assert code == 2, (out, err)
    for message in expected:
        assert message in err, err
    assert not SuiteRun.objects.exists() and not SuiteCase.objects.exists()
    return err


def test_missing_ids_are_bad_input(project, criterion, tmp_path):
    outputs = golden_outputs()
    del outputs["g-3"], outputs["g-7"]
    path = write_candidates(tmp_path, outputs)
    assert_bad_input(
        ["--project", "acme", "--candidates", path], "missing: no candidate for 2 golden ids: 'g-3', 'g-7'"
    )


def test_malformed_lines_are_reported_by_number(project, criterion, tmp_path):
    lines = [json.dumps({"id": i, "output": o}) for i, o in golden_outputs().items()]
    lines[1] = '{"id": "g-1", "output": "unterminated'
    lines[2] = json.dumps(["not", "an", "object"])
    lines[3] = json.dumps({"id": "g-3"})
    lines[4] = json.dumps({"id": "g-4", "output": 42})
    lines[5] = json.dumps({"id": "g-5", "output": "ok", "outptu": "typo"})
    path = write_candidates(tmp_path, lines)
    err = assert_bad_input(
        ["--project", "acme", "--candidates", path],
        "line 2: invalid JSON",
        "line 3: expected a JSON object",
        "line 4: needs an output or messages",
        "line 5: output: expected a string, got int",
        "line 6: unknown field 'outptu'",
    )
    # An id read from a rejected line is not reported missing as well: one problem, one message.
    assert "missing: no candidate for 2 golden ids: 'g-1', 'g-2'\n" in err


def test_a_duplicate_id_and_an_id_outside_the_golden_set_are_bad_input(project, criterion, tmp_path):
    lines = [{"id": i, "output": o} for i, o in golden_outputs().items()]
    lines.append({"id": "g-0", "output": GOOD})
    lines.append({"id": "g-100", "output": GOOD})  # a trace of the project, but not golden
    path = write_candidates(tmp_path, lines)
    assert_bad_input(
        ["--project", "acme", "--candidates", path],
        "line 41: id 'g-0' is already on line 1",
        "line 42: id 'g-100' is not in the golden set",
    )


def test_unknown_criteria_and_an_unknown_baseline_are_bad_input(project, criterion, tmp_path):
    path = write_candidates(tmp_path, golden_outputs())
    assert_bad_input(
        ["--project", "acme", "--candidates", path, "--criteria", "no_apology,tone", "--baseline", "v9"],
        "criteria: no criterion 'tone' in project 'acme' (criteria: no_apology)",
        "baseline: no finished suite run named 'v9'",
    )
    assert_bad_input(["--project", "nope", "--candidates", path], "--project: no project 'nope'")
    assert_bad_input(["--project", "acme", "--candidates", str(tmp_path / "absent.jsonl")], "--candidates: cannot read")
    junit = str(tmp_path / "no-such-dir" / "suite.xml")
    assert_bad_input(["--project", "acme", "--candidates", path, "--junit", junit], "--junit: no directory")


def test_no_promoted_judge_is_bad_input(project, tmp_path):
    make_criterion(project=project, name="tone")
    trace = make_trace(project=project, external_id="g-0")
    golden_add(project=project, traces=[trace], reason="edge_case")
    path = write_candidates(tmp_path, {"g-0": GOOD})
    err = assert_bad_input(
        ["--project", "acme", "--candidates", path], "no promoted assertion, classifier or reference judge to run"
    )
    # With --json, stdout still holds one object for the script reading it.
    code, out, _ = evalsuite("--project", "acme", "--candidates", path, "--json")
    assert code == 2 and json.loads(out) == {"exit_code": 2, "errors": [err.splitlines()[0]]}


def test_an_empty_golden_set_is_bad_input(project, criterion, tmp_path):
    golden_remove(project=project, traces=list(project.traces.all()))
    assert_bad_input(["--project", "acme", "--candidates", write_candidates(tmp_path, {"g-0": GOOD})], "has no traces")


# --- JUnit, JSON, baselines ------------------------------------------------------------------------------------------

JSON_KEYS = {
    "run_id", "name", "project", "golden_version", "cases", "alpha", "include_llm", "baseline", "criteria",
    "not_covered", "warnings", "passed", "exit_code",
}  # fmt: skip
CRITERION_KEYS = {
    "criterion", "criterion_id", "judge", "kind", "version", "judge_evidence", "n", "judged", "passed", "errors",
    "skipped", "pass_rate", "ci", "threshold", "paired_n", "baseline_pass_rate", "baseline_errors", "difference",
    "difference_ci", "only_baseline_passed", "only_candidate_passed", "p_value", "improved", "verdict", "failures",
}  # fmt: skip


def test_json_output_has_the_documented_keys_and_lists_uncovered_criteria(project, criterion, tmp_path):
    make_criterion(project=project, name="tone")
    code, out, _ = evalsuite(
        "--project", "acme", "--candidates", write_candidates(tmp_path, golden_outputs()), "--json", "--name", "r1"
    )
    result = json.loads(out)
    assert code == 0 and set(result) == JSON_KEYS and set(result["criteria"][0]) == CRITERION_KEYS
    assert result["name"] == "r1" and result["run_id"] == SuiteRun.objects.get().pk
    assert result["baseline"]["kind"] == "golden_outputs" and result["baseline"]["run_id"] is None
    assert result["not_covered"] == [{"criterion": "tone", "reason": "no promoted judge"}]
    low, high = result["criteria"][0]["ci"]
    assert low == pytest.approx(0.588, abs=0.001) and high == pytest.approx(0.873, abs=0.001)  # exact, 30 of 40
    # How far the gate can be trusted: its judge's agreement with the expert on the held-out split it was promoted on.
    promotion = Promotion.objects.get(ended_at=None)
    evidence = result["criteria"][0]["judge_evidence"]
    assert evidence == {
        "split": "test",
        "n": promotion.report["n"],
        "tpr": promotion.report["tpr"],
        "tnr": promotion.report["tnr"],
        "ci": {"tpr": promotion.report["ci"]["tpr"], "tnr": promotion.report["ci"]["tnr"]},
        "stale": None,
    }
    table_code, table, _ = evalsuite("--project", "acme", "--candidates", write_candidates(tmp_path, golden_outputs()))
    assert (
        table_code == 0 and f"no_apology: judged by no-sorry v1, on test (n = {promotion.report['n']}): TPR " in table
    )


def test_junit_xml_has_a_testcase_per_criterion_and_per_failing_case(project, criterion, tmp_path):
    make_criterion(project=project, name="tone")
    junit = tmp_path / "suite.xml"
    outputs = golden_outputs(apologising=25)
    code, _, _ = evalsuite(
        "--project", "acme", "--candidates", write_candidates(tmp_path, outputs), "--junit", str(junit)
    )
    assert code == 1
    root = ET.parse(junit).getroot()
    per_criterion, per_case = root.findall("testsuite")
    assert per_criterion.get("name") == "evalsuite" and per_criterion.get("failures") == "1"
    (failing,) = [c for c in per_criterion.findall("testcase") if c.find("failure") is not None]
    assert failing.get("name") == "no_apology" and failing.find("failure").get("type") == "regression"
    assert "McNemar p" in failing.find("failure").text
    props = {p.get("name"): p.get("value") for p in failing.find("properties")}
    assert float(props["pass_rate"]) == pytest.approx(15 / 40) and props["judge"] == "no-sorry"
    skipped = [c for c in per_criterion.findall("testcase") if c.find("skipped") is not None]
    assert [c.get("name") for c in skipped] == ["tone"]
    # Per case: 15 regressed (failures), 10 failed in the golden outputs too (skipped), 15 passed.
    assert (per_case.get("tests"), per_case.get("failures"), per_case.get("skipped")) == ("40", "15", "10")
    regressed = {c.get("name") for c in per_case.findall("testcase") if c.find("failure") is not None}
    assert regressed == {f"g-{i}" for i in range(10, 25)}


def test_a_later_run_compares_with_an_earlier_one_named_as_its_baseline(project, criterion, tmp_path):
    first = write_candidates(tmp_path, golden_outputs(apologising=0), "v1.jsonl")
    assert evalsuite("--project", "acme", "--candidates", first, "--name", "v1.0")[0] == 0
    second = write_candidates(tmp_path, golden_outputs(apologising=10), "v2.jsonl")
    code, out, _ = evalsuite("--project", "acme", "--candidates", second, "--baseline", "v1.0", "--json")
    result = json.loads(out)
    (row,) = result["criteria"]
    # Against v1.0 (100%) the drop to 75% is significant; against the golden outputs (75%) it would not be.
    assert code == 1 and row["baseline_pass_rate"] == 1.0 and row["verdict"] == "regression"
    v1 = SuiteRun.objects.get(name="v1.0")
    assert result["baseline"] == {
        "kind": "run", "run_id": v1.pk, "name": "v1.0", "description": result["baseline"]["description"],
        "rejudged": [],
    }  # fmt: skip
    assert SuiteRun.objects.get(pk=result["run_id"]).baseline == v1
    # By id as well.
    assert evalsuite("--project", "acme", "--candidates", second, "--baseline", str(v1.pk))[0] == 1


def test_a_baseline_judged_by_an_older_version_is_judged_again_with_the_promoted_one(project, criterion, tmp_path):
    outputs = {f"g-{i}": BAD if i < 5 else "I am sorry." if i < 20 else GOOD for i in range(GOLDEN)}
    first = write_candidates(tmp_path, outputs, "a")
    evalsuite("--project", "acme", "--candidates", first, "--name", "old")
    # A new promoted judge that only fails "Sorry," (comma): "I am sorry." now passes in the baseline too.
    promote(criterion, name="no-sorry-comma", kind="assertion", config={**NO_SORRY, "value": "sorry,"})
    code, out, _ = evalsuite("--project", "acme", "--candidates", first, "--baseline", "old", "--json")
    result = json.loads(out)
    (row,) = result["criteria"]
    assert result["baseline"]["rejudged"] == ["no_apology"] and "judged again" in result["warnings"][-1]
    # Stored verdicts of the old judge would give 50% against 87.5% now; judged again, the same outputs are equal.
    assert row["judge"] == "no-sorry-comma" and row["baseline_pass_rate"] == row["pass_rate"] == 35 / 40
    assert row["difference"] == 0.0 and code == 0


# --- LLM judges: only with --include-llm (nightly) -----------------------------------------------------------------


def judge_tone(request):
    """A tone judge that fails apologies, reading only the judged trace (the last message)."""
    from tests.llm_server import Reply

    verdict = "fail" if "sorry" in request.messages[-1]["content"].lower() else "pass"
    return Reply(content=json.dumps({"reasoning": f"tone: {verdict}", "verdict": verdict}))


def test_llm_judges_run_only_with_include_llm_and_their_errors_fail_the_run(project, criterion, llm_server, tmp_path):
    from tests.llm_server import Reply

    tone = make_criterion(project=project, name="tone", definition="Fail when the reply grovels.")
    for label in criterion.labels.select_related("trace"):
        make_label(trace=label.trace, criterion=tone, verdict=label.verdict)
    llm_server.respond_with(judge_tone)
    promote(tone, name="tone-llm", kind="llm", config={"few_shot": 0, "model": "test-model"})
    promoted_calls = len(llm_server.chat_requests)
    outputs = {f"g-{i}": f"Sorry, not today ({i})." if i < 10 else f"Here it is ({i})." for i in range(GOLDEN)}
    path = write_candidates(tmp_path, outputs)

    code, out, _ = evalsuite("--project", "acme", "--candidates", path, "--json")
    result = json.loads(out)
    assert code == 0 and [c["criterion"] for c in result["criteria"]] == ["no_apology"]
    assert result["not_covered"] == [
        {"criterion": "tone", "reason": "its promoted judge is an LLM judge; run with --include-llm"}
    ]
    assert len(llm_server.chat_requests) == promoted_calls  # no call without --include-llm

    code, out, _ = evalsuite("--project", "acme", "--candidates", path, "--json", "--include-llm")
    result = json.loads(out)
    tone_row = next(c for c in result["criteria"] if c["criterion"] == "tone")
    assert code == 0 and tone_row["kind"] == "llm" and tone_row["pass_rate"] == 0.75 and result["include_llm"]
    # The 40 new candidate outputs were asked about; the golden outputs' answers came from the dev run's cache.
    assert len(llm_server.chat_requests) >= promoted_calls + GOLDEN

    # A provider that fails: every judgment errors, the criterion is an error and the run fails (exit 1).
    llm_server.respond_with(lambda _request: Reply(status=503, content="overloaded"))
    fresh = write_candidates(tmp_path, {i: o + " Again." for i, o in outputs.items()}, "fresh.jsonl")
    code, out, _ = evalsuite("--project", "acme", "--candidates", fresh, "--json", "--include-llm")
    tone_row = next(c for c in json.loads(out)["criteria"] if c["criterion"] == "tone")
    assert code == 1 and tone_row["verdict"] == "error" and tone_row["errors"] == GOLDEN
    assert tone_row["failures"][0] == "40 judgments errored" and tone_row["pass_rate"] is None


def test_after_a_golden_set_change_only_the_cases_in_both_runs_are_paired(project, criterion, tmp_path, monkeypatch):
    evalsuite("--project", "acme", "--candidates", write_candidates(tmp_path, golden_outputs()), "--name", "before")
    extra = make_trace(project=project, external_id="g-new", output=GOOD)
    golden_add(project=project, traces=[extra], reason="edge_case")
    golden_remove(project=project, traces=[project.traces.get(external_id="g-39")])
    outputs = {**golden_outputs(), "g-new": GOOD}
    del outputs["g-39"]
    # Read from stdin, as `… | manage.py evalsuite --candidates -`.
    monkeypatch.setattr(
        "sys.stdin", io.TextIOWrapper(io.BytesIO(Path(write_candidates(tmp_path, outputs)).read_bytes()))
    )
    code, out, _ = evalsuite("--project", "acme", "--candidates", "-", "--baseline", "before", "--json")
    result = json.loads(out)
    (row,) = result["criteria"]
    assert code == 0 and result["golden_version"] == 3 and row["n"] == GOLDEN and row["paired_n"] == GOLDEN - 1
    assert "golden set v1, this run on v3" in result["warnings"][1]  # after the golden set's size
    run = SuiteRun.objects.get(pk=result["run_id"])
    assert run.candidates_file == "stdin"
    no_baseline = SuiteVerdict.objects.get(case__run=run, case__trace=extra)
    assert no_baseline.baseline_verdict == "" and no_baseline.verdict == "pass"


def test_a_classifier_judge_runs_and_a_judge_that_cannot_load_fails_the_run_with_its_reason(
    project, criterion, tmp_path
):
    from judges.models import JudgeVersion

    polite = make_criterion(project=project, name="polite")
    for label in criterion.labels.select_related("trace"):
        make_label(trace=label.trace, criterion=polite, verdict=label.verdict)
    promote(polite, name="polite-clf", kind="classifier", config={})
    path = write_candidates(tmp_path, golden_outputs(apologising=25))
    code, out, _ = evalsuite("--project", "acme", "--candidates", path, "--json")
    rows = {c["criterion"]: c for c in json.loads(out)["criteria"]}
    assert code == 1 and rows["polite"]["kind"] == "classifier"
    assert rows["polite"]["pass_rate"] == pytest.approx(15 / 40) and rows["polite"]["verdict"] == "regression"

    JudgeVersion.objects.filter(judge__name="polite-clf").update(artifact=b"not a pickle")
    code, out, _ = evalsuite(
        "--project", "acme", "--candidates", write_candidates(tmp_path, golden_outputs()), "--json"
    )
    rows = {c["criterion"]: c for c in json.loads(out)["criteria"]}
    assert code == 1 and rows["polite"]["verdict"] == "error" and rows["polite"]["errors"] == GOLDEN
    assert rows["no_apology"]["verdict"] == "pass"  # the other criterion is judged all the same
    stored = SuiteVerdict.objects.filter(case__run_id=json.loads(out)["run_id"], criterion=polite)
    assert stored.count() == GOLDEN and all(v.verdict == "" and v.error for v in stored)


# --- a run whose worker died ---------------------------------------------------------------------------------------


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing in the run's code catches it, so the run stays RUNNING, as when its worker dies."""


def test_a_run_taken_over_after_its_worker_died_judges_only_the_criteria_left(project, criterion, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from core.runs import stale_window
    from suites import evalsuite as suite_module
    from suites.evalsuite import evalsuite_run, records_from_list, suite_run_create, suite_run_execute

    polite = make_criterion(project=project, name="polite")
    for label in criterion.labels.select_related("trace"):
        make_label(trace=label.trace, criterion=polite, verdict=label.verdict)
    promote(polite, name="polite-check", kind="assertion", config=NO_SORRY)
    candidates = [{"id": i, "output": o} for i, o in golden_outputs(apologising=12).items()]
    run = suite_run_create(project=project, records=records_from_list(candidates))
    judge_all, judged, dying = suite_module._judge_all, [], [True]

    def judge_all_then_die(version, inputs, scorers):
        judged.append(version.judge.criterion.name)
        if dying[0] and len(judged) == 3:  # no_apology's candidates and baseline are judged; polite's are next
            raise WorkerKilled
        return judge_all(version, inputs, scorers)

    monkeypatch.setattr(suite_module, "_judge_all", judge_all_then_die)
    with pytest.raises(WorkerKilled):
        suite_run_execute(run=run)
    run.refresh_from_db()
    assert run.status == "running"
    assert SuiteVerdict.objects.filter(case__run=run, criterion=criterion).count() == GOLDEN
    assert not SuiteVerdict.objects.filter(case__run=run, criterion=polite).exists()

    SuiteRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - stale_window() - timedelta(seconds=1))
    dying[0], judged[:] = False, []
    taken_over = suite_run_execute(run=run)
    assert judged == ["polite", "polite"]  # its candidates and its baseline; no_apology's verdicts are read back
    run.refresh_from_db()
    assert (run.status, run.attempts, run.exit_code) == ("done", 2, taken_over.exit_code)
    assert SuiteVerdict.objects.filter(case__run=run).count() == 2 * GOLDEN
    # The same result as a run judged in one go.
    in_one_go = evalsuite_run(project=project, records=records_from_list(candidates))
    assert taken_over.result["criteria"] == in_one_go.result["criteria"]
    assert taken_over.cases == in_one_go.cases
