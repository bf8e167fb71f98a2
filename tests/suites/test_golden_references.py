"""A golden entry's reference: the edit page (who may), the history it records, the export that carries it, and
evalsuite judging a new release's outputs against it with a reference judge."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from annotation.models import Role, Trace
from annotation.services import DomainError
from judges.promotions import judge_version_promote
from judges.services import judge_create, judge_run_create, judge_run_execute
from suites.golden import golden_add, golden_jsonl, golden_reference_set, golden_remove
from suites.models import ReferenceEdit, SuiteVerdict
from tests.factories import add_member, make_criterion, make_split_labels, make_trace, make_user

pytestmark = pytest.mark.django_db


def url(trace: Trace) -> str:
    return f"/projects/acme/golden/t/{trace.pk}/reference/"


@pytest.fixture
def golden_trace(project, expert):
    trace = make_trace(project=project, external_id="g-1", input="Capital of France?", output="Paris.")
    golden_add(project=project, traces=[trace], reason="core_feature", user=expert)
    return trace


@pytest.fixture
def viewer_client(project, client):
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client.force_login(viewer)
    return client


def test_the_expert_sets_a_text_reference_and_the_history_says_who_and_when(expert_client, expert, golden_trace):
    page = expert_client.get(url(golden_trace))
    assert page.status_code == 200 and 'id="reference-form"' in page.content.decode()
    response = expert_client.post(url(golden_trace), {"reference": "  Paris  "}, follow=True)
    assert response.status_code == 200 and "g-1: reference saved." in response.content.decode()
    golden_trace.refresh_from_db()
    assert golden_trace.reference == "Paris"
    edit = ReferenceEdit.objects.get()
    assert (edit.trace_id, edit.reference, edit.previous, edit.edited_by) == (golden_trace.pk, "Paris", None, expert)
    html = response.content.decode()
    assert 'id="reference-history"' in html and expert.username in html
    # The same value again records nothing.
    expert_client.post(url(golden_trace), {"reference": "Paris"})
    assert ReferenceEdit.objects.count() == 1


def test_a_json_reference_is_parsed_and_bad_json_is_refused_naming_the_field(teammate_client, golden_trace):
    response = teammate_client.post(url(golden_trace), {"reference": '{"city": "Paris"}', "as_json": "on"})
    assert response.status_code == 302
    golden_trace.refresh_from_db()
    assert golden_trace.reference == {"city": "Paris"}
    bad = teammate_client.post(url(golden_trace), {"reference": '{"city": ', "as_json": "on"})
    assert bad.status_code == 400 and "reference: not valid JSON" in bad.content.decode()
    golden_trace.refresh_from_db()
    assert golden_trace.reference == {"city": "Paris"}
    nul = teammate_client.post(url(golden_trace), {"reference": '"a\\u0000b"', "as_json": "on"})
    assert nul.status_code == 400 and "reference: contains a NUL character" in nul.content.decode()


def test_an_empty_box_clears_the_reference_and_the_clearing_is_recorded(expert_client, expert, project, golden_trace):
    golden_reference_set(project=project, trace=golden_trace, reference="Paris", user=expert)
    response = expert_client.post(url(golden_trace), {"reference": ""}, follow=True)
    assert "g-1: reference cleared." in response.content.decode()
    golden_trace.refresh_from_db()
    assert golden_trace.reference is None
    assert list(ReferenceEdit.objects.order_by("id").values_list("reference", "previous")) == [
        ("Paris", None),
        (None, "Paris"),
    ]


def test_untrusted_reference_text_is_escaped_on_both_pages(expert_client, expert, project, golden_trace):
    golden_reference_set(project=project, trace=golden_trace, reference="<script>alert(1)</script>", user=expert)
    for page in (expert_client.get(url(golden_trace)), expert_client.get("/projects/acme/golden/")):
        html = page.content.decode()
        assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_the_golden_page_shows_each_entrys_reference_with_an_edit_link_for_editors(
    expert_client, viewer_client, expert, project, golden_trace
):
    golden_reference_set(project=project, trace=golden_trace, reference={"city": "Paris"}, user=expert)
    html = expert_client.get("/projects/acme/golden/").content.decode()
    assert "{&quot;city&quot;:&quot;Paris&quot;}" in html and url(golden_trace) in html
    html = viewer_client.get("/projects/acme/golden/").content.decode()
    assert "{&quot;city&quot;:&quot;Paris&quot;}" in html and url(golden_trace) not in html


def test_only_those_who_edit_the_golden_set_may_set_a_reference(viewer_client, outsider_client, golden_trace):
    assert viewer_client.get(url(golden_trace)).status_code == 403
    assert viewer_client.post(url(golden_trace), {"reference": "x"}).status_code == 403
    assert outsider_client.get(url(golden_trace)).status_code == 404
    assert outsider_client.post(url(golden_trace), {"reference": "x"}).status_code == 404
    golden_trace.refresh_from_db()
    assert golden_trace.reference is None and not ReferenceEdit.objects.exists()


def test_a_trace_outside_the_current_golden_set_has_no_reference_form(expert_client, expert, project, golden_trace):
    other = make_trace(project=project, external_id="not-golden")
    assert expert_client.get(url(other)).status_code == 404
    golden_remove(project=project, traces=[golden_trace], user=expert)
    assert expert_client.post(url(golden_trace), {"reference": "x"}).status_code == 404
    with pytest.raises(DomainError, match="not in the current golden set"):
        golden_reference_set(project=project, trace=golden_trace, reference="x", user=expert)


def test_the_reference_stays_on_the_trace_when_it_is_re_filed_and_rides_in_the_export(expert, project, golden_trace):
    golden_reference_set(project=project, trace=golden_trace, reference="Paris", user=expert)
    golden_add(project=project, traces=[golden_trace], reason="edge_case", user=expert)
    (line,) = list(golden_jsonl(project=project))
    record = json.loads(line)
    assert record["reference"] == "Paris" and record["golden"]["reason"] == "edge_case"


# --- evalsuite against the golden references ----------------------------------------------------------------------


def promote_reference_judge(project, criterion) -> None:
    # Promotion needs evidence on dev and test: labelled traces with references, outside the golden set.
    labelled = []
    for split, count in (("dev", 5), ("test", 40)):
        for answer, verdict in (("7", "pass"), ("8", "fail")):
            labelled += make_split_labels(
                criterion=criterion, split=split, outputs=[(f"The answer is {answer}.", verdict)] * count,
                prefix=f"{split}-{verdict}",
            )  # fmt: skip
    Trace.objects.filter(pk__in=[t.pk for t in labelled]).update(reference=7)
    judge = judge_create(project=project, criterion=criterion, name="exact-number", kind="reference",
                         config={"mode": "numeric"})  # fmt: skip
    version = judge.latest_version()
    for split in ("dev", "test"):
        judge_run_execute(run=judge_run_create(version=version, split=split))
    judge_version_promote(version=version)


def test_evalsuite_judges_each_candidate_against_its_golden_reference(project, expert, tmp_path: Path):
    criterion = make_criterion(project=project, name="correct", definition="Pass when the number is right.")
    promote_reference_judge(project, criterion)
    golden = [make_trace(project=project, external_id=f"q-{i}", input=f"{i} + 1?", output=f"{i + 1}") for i in range(6)]
    golden_add(project=project, traces=golden, reason="core_feature", user=expert)
    for i, trace in enumerate(golden[:5]):  # q-5 has no reference
        golden_reference_set(project=project, trace=trace, reference=i + 1, user=expert)
    # The new release gets q-0..q-2 right, q-3 and q-4 wrong; q-5 cannot be checked.
    outputs = {"q-0": "1", "q-1": "It is 2.", "q-2": "3", "q-3": "5", "q-4": "six", "q-5": "6"}
    path = tmp_path / "candidates.jsonl"
    path.write_text("".join(json.dumps({"id": i, "output": o}) + "\n" for i, o in outputs.items()))
    out = io.StringIO()
    with contextlib.suppress(SystemExit):  # exit 1: the pass rate is what it is; the numbers are what is checked
        call_command("evalsuite", "--project", "acme", "--candidates", str(path), "--json", stdout=out,
                     stderr=io.StringIO())  # fmt: skip
    result = json.loads(out.getvalue())
    (numbers,) = result["criteria"]
    assert (numbers["n"], numbers["judged"], numbers["passed"], numbers["skipped"], numbers["errors"]) == (
        6,
        5,
        3,
        1,
        0,
    )
    assert numbers["pass_rate"] == pytest.approx(0.6)
    assert any("1 case skipped by its judge" in warning for warning in result["warnings"])
    verdicts = {
        v.case.trace.external_id: (v.verdict, v.error, v.reasoning)
        for v in SuiteVerdict.objects.select_related("case__trace")
    }
    assert verdicts["q-3"][0] == "fail" and "last number 5 differs from the reference 4" in verdicts["q-3"][2]
    assert verdicts["q-4"][0] == "fail" and verdicts["q-1"][0] == "pass"
    assert verdicts["q-5"] == ("", "", "no reference")


def test_the_review_panel_of_a_golden_trace_shows_its_reference_and_links_to_the_form(
    expert_client, expert, project, golden_trace
):
    html = expert_client.get("/projects/acme/traces/g-1/").content.decode()
    assert 'id="golden-reference"' in html and "set the known-good answer" in html and url(golden_trace) in html
    golden_reference_set(project=project, trace=golden_trace, reference="Paris", user=expert)
    html = expert_client.get("/projects/acme/traces/g-1/").content.decode()
    assert "Reference: <code>Paris</code>" in html
