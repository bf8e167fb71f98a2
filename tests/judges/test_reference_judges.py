"""Reference judges end to end: references through every way in and out, a run against the expert's labels with
skips counted apart, and an LLM judge that shows the reference (the loopback server records the prompt)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotation.ingest import import_records
from annotation.models import Trace
from annotation.services import DomainError, api_token_create
from judges.models import Judgment
from judges.selectors import labelled_trace_ids, split_key
from judges.services import judge_create, judge_run_create, judge_run_execute
from judges.splits import split_of
from tests.factories import make_criterion, make_label, make_trace
from tests.llm_server import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def criterion(project):
    return make_criterion(project=project, name="correct_total", definition="Pass when the total is right.")


@pytest.fixture
def referenced(project, criterion):
    """60 labelled traces: the right total passes, a wrong one fails; every fifth trace has no reference."""
    records = []
    for i in range(60):
        right = i % 3 != 0
        record = {
            "id": f"r-{i}",
            "input": f"What is {i} + 10?",
            "output": f"The total is {i + 10 if right else i + 11}.",
            "labels": [{"criterion": "correct_total", "verdict": "pass" if right else "fail"}],
        }
        if i % 5:
            record["reference"] = i + 10
        records.append(record)
    report = import_records(project=project, records=records, on_conflict="skip")
    assert report.accepted == 60 and not report.rejected
    return criterion


def run_cmd(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_a_reference_run_compares_outputs_with_references_and_counts_skips_apart(project, referenced):
    judge = judge_create(
        project=project, criterion=referenced, name="total", kind="reference", config={"mode": "numeric"}
    )
    assert judge.latest_version().config == {"mode": "numeric", "abs_tol": 0.0, "rel_tol": 0.0, "match": "last"}
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="dev"))
    dev = labelled_trace_ids(criterion=referenced, split="dev")
    without = {t.pk for t in Trace.objects.filter(pk__in=dev, reference__isnull=True)}
    assert without and len(without) < len(dev)  # the split holds both kinds, whatever the criterion's id
    report = run.report
    assert run.status == "done"
    assert report["skipped"] == len(without) and report["skipped_reasons"] == {"no reference": len(without)}
    # Skips are outside the matrix: n counts only traces with a verdict, and the judge agrees on every one of them.
    assert report["n"] == len(dev) - len(without) and report["errors"] == 0
    assert report["accuracy"] == 1.0 and report["fp"] == report["fn"] == 0
    skipped = Judgment.objects.filter(run=run, trace_id__in=without)
    assert {(j.verdict, j.error, j.skipped) for j in skipped} == {("", "", "no reference")}


def test_the_judgments_api_says_which_judgments_were_skipped(project, referenced, expert_client):
    judge = judge_create(
        project=project, criterion=referenced, name="total", kind="reference", config={"mode": "exact"}
    )
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))
    body = expert_client.get(f"/api/v1/judge-runs/{run.pk}/judgments?limit=500").json()
    by_trace = {row["trace"]: row for row in body["judgments"]}
    assert by_trace["r-0"]["skipped"] == "no reference" and by_trace["r-0"]["verdict"] == ""
    assert by_trace["r-0"]["agrees"] is None
    assert by_trace["r-1"]["skipped"] == "" and by_trace["r-1"]["verdict"] == "fail"  # "The total is 11." ≠ "11"


def test_run_judge_prints_the_skips_and_the_run_page_shows_them(project, referenced, expert_client, tmp_path):
    config = tmp_path / "judge.json"
    config.write_text(json.dumps({"mode": "numeric"}))
    out = run_cmd(
        "create_judge", "--project", project.slug, "--criterion", "correct_total", "--name", "total",
        "--kind", "reference", "--config", str(config),
    )  # fmt: skip
    assert out.strip() == "created reference judge 'total' for 'correct_total', version 1"
    report = json.loads(
        run_cmd("run_judge", "--project", project.slug, "--judge", "total", "--split", "all", "--inline", "--json")
    )
    assert report["skipped"] == 12 and report["n"] == 48 and report["accuracy"] == 1.0
    text = run_cmd("run_judge", "--project", project.slug, "--judge", "total", "--split", "all", "--inline")
    assert "skipped: 12 (no reference)" in text
    run = referenced.judges.get().latest_version().runs.order_by("-id").first()
    page = expert_client.get(reverse("judge_run_detail", args=[project.slug, run.pk]))
    assert page.status_code == 200
    assert 'data-skipped="12">skipped: 12 (no reference)</span>' in page.content.decode()


def test_bad_reference_configs_are_refused_naming_the_key(project, criterion):
    with pytest.raises(DomainError, match="abs_tol"):
        judge_create(
            project=project, criterion=criterion, name="t", kind="reference", config={"mode": "numeric", "abs_tol": -1}
        )
    with pytest.raises(DomainError, match="mode"):
        judge_create(project=project, criterion=criterion, name="t", kind="reference", config={"mode": "fuzzy"})


def test_a_reference_judge_is_local_and_judges_new_outputs():
    from judges import kinds

    kind = kinds.get("reference")
    assert kind.local and kind.judges_new_outputs and kind.display == "Reference"


# --- references through the ways in and out ----------------------------------------------------------------------


REFERENCES = ["Paris", {"answer": [1, 2], "unit": "km"}, ["92 reactors", {"regex": "EDF|Électricité"}], 42, "[not json"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_references_round_trip_through_export_and_import(project, fmt, tmp_path):
    records = [{"id": f"x-{i}", "output": "o", "reference": ref} for i, ref in enumerate(REFERENCES)]
    records.append({"id": "none", "output": "o"})
    assert import_records(project=project, records=records, on_conflict="skip").accepted == len(records)
    stored = dict(Trace.objects.filter(project=project).values_list("external_id", "reference"))
    assert stored == {**{f"x-{i}": ref for i, ref in enumerate(REFERENCES)}, "none": None}
    first, second = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    call_command("export_traces", "--project", project.slug, "--format", fmt, str(first), stderr=io.StringIO())
    call_command("import_traces", "--project", "copy", "--create-project", "--expert", project.expert.username,
                 str(first), stdout=io.StringIO(), stderr=io.StringIO())  # fmt: skip
    copied = dict(Trace.objects.filter(project__slug="copy").values_list("external_id", "reference"))
    if fmt != "jsonl":
        # A text cell cannot say "number": 42 comes back as its text, which every mode reads as 42.
        stored["x-3"] = "42"
    assert copied == stored
    call_command("export_traces", "--project", "copy", "--format", fmt, str(second), stderr=io.StringIO())
    if fmt != "parquet":
        assert second.read_bytes() == first.read_bytes()


def test_a_bad_reference_is_rejected_naming_the_field(project):
    report = import_records(
        project=project,
        records=[
            {"id": "a", "output": "o", "reference": "nul \x00 here"},
            {"id": "b", "output": "o", "reference": None},
        ],
        on_conflict="skip",
    )
    assert [r.error for r in report.rejected][0].startswith("reference")
    assert Trace.objects.get(external_id="b").reference is None


def test_an_update_import_without_a_reference_keeps_the_stored_one(project):
    import_records(project=project, records=[{"id": "a", "output": "o", "reference": "Paris"}], on_conflict="skip")
    import_records(project=project, records=[{"id": "a", "output": "new"}], on_conflict="update")
    trace = Trace.objects.get(external_id="a")
    assert (trace.output, trace.reference) == ("new", "Paris")
    import_records(project=project, records=[{"id": "a", "output": "new", "reference": "Lyon"}], on_conflict="update")
    assert Trace.objects.get(external_id="a").reference == "Lyon"


def test_the_rest_api_takes_and_gives_references(client, project):
    _, token = api_token_create(project=project, name="ci")
    headers = {"Authorization": f"Bearer {token}"}
    body = {"traces": [{"id": "api-1", "output": "The total is 12.", "reference": {"total": 12}}]}
    url = f"/api/v1/projects/{project.slug}/traces"
    response = client.post(url, json.dumps(body), content_type="application/json", headers=headers)
    assert response.status_code == 200, response.content
    assert Trace.objects.get(external_id="api-1").reference == {"total": 12}
    read = client.get(url, headers=headers)
    assert read.status_code == 200 and read.json()["traces"][0]["reference"] == {"total": 12}


# --- the LLM judge shows the reference ---------------------------------------------------------------------------


@pytest.fixture
def llm_max_retries() -> int:
    return 1  # these tests count on the client retrying once


def _dev_trace_with_reference(project, criterion):
    key = split_key(criterion)
    external_id = next(f"d-{i}" for i in range(1000) if split_of(key, f"d-{i}") == "dev")
    trace = make_trace(
        project=project, external_id=external_id, input="Capital of France?", output="Lyon.", reference="Paris"
    )
    make_label(trace=trace, criterion=criterion, verdict="fail", critique="Wrong city.")
    return trace


def test_an_llm_judge_with_use_reference_shows_the_reference_block(project, criterion, llm_server):
    answer = json.dumps({"reasoning": "The output names another city than the reference.", "verdict": "fail"})
    llm_server.respond_with(lambda _request: Reply(content=answer))
    _dev_trace_with_reference(project, criterion)
    judge = judge_create(
        project=project, criterion=criterion, name="llm", kind="llm",
        config={"few_shot": 0, "model": "test-model", "use_reference": True},
    )  # fmt: skip
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="dev"))
    assert run.status == "done" and run.report["tn"] == 1
    (request,) = llm_server.chat_requests
    graded = request.messages[-1]["content"]
    assert "<output>\nLyon.\n</output>\n<reference>\nParis\n</reference>\n</trace>" in graded
    assert "<reference>…</reference> block inside the trace" in request.messages[0]["content"]


def test_an_llm_judge_without_use_reference_never_shows_it(project, criterion, llm_server):
    answer = json.dumps({"reasoning": "Looks wrong.", "verdict": "fail"})
    llm_server.respond_with(lambda _request: Reply(content=answer))
    _dev_trace_with_reference(project, criterion)
    judge = judge_create(
        project=project, criterion=criterion, name="llm", kind="llm", config={"few_shot": 0, "model": "test-model"}
    )
    judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="dev"))
    (request,) = llm_server.chat_requests
    assert "<reference>" not in json.dumps(request.messages)


def test_use_reference_must_be_true_or_false(project, criterion):
    with pytest.raises(DomainError, match="use_reference: expected true or false"):
        judge_create(project=project, criterion=criterion, name="llm", kind="llm", config={"use_reference": "yes"})


def test_comparing_two_versions_counts_skipped_traces_apart_from_errors(project, referenced, expert_client):
    from judges.pages import judge_run_comparison
    from judges.services import judge_version_create

    judge = judge_create(
        project=project, criterion=referenced, name="total", kind="reference", config={"mode": "numeric"}
    )
    v2 = judge_version_create(judge=judge, config={"mode": "numeric", "abs_tol": 1.0}, comment="off by one passes")
    run_a = judge_run_execute(run=judge_run_create(version=judge.versions.get(number=1), split="dev"))
    run_b = judge_run_execute(run=judge_run_create(version=v2, split="dev"))
    dev = labelled_trace_ids(criterion=referenced, split="dev")
    without = Trace.objects.filter(pk__in=dev, reference__isnull=True).count()
    assert without and run_a.report["skipped"] == run_b.report["skipped"] == without
    compared = judge_run_comparison(run_a=run_a, run_b=run_b)
    assert compared.excluded == {"only_a": 0, "only_b": 0, "skipped": without, "errors": 0}
    assert compared.comparison.n == len(dev) - without
    url = reverse("judge_compare", args=[project.slug]) + f"?a={run_a.pk}&b={run_b.pk}"
    body = expert_client.get(url).content.decode()
    assert f"{without} skipped by either version (not" in body
    assert "0 where either judgment was an error" in body
