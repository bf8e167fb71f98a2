"""The golden set in the browser and on the command line: the review-page panel, the golden-set page with its
snapshots, bulk removal, the JSONL export (read back by import_traces) and import_golden."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import Label, Note, Project, Role, Trace
from annotation.trace_format import RecordError, parse_record
from suites.golden import golden_add, golden_entries, golden_remove, golden_size
from suites.models import GoldenEntry, GoldenSet
from tests.factories import add_member, make_criterion, make_label, make_note, make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


def members(project, version=None):
    return [(e.trace.external_id, e.reason, e.comment) for e in golden_entries(project=project, version=version)]


def run(*args):
    out = io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=io.StringIO())
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


@pytest.fixture
def viewer_client(project, client):
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client.force_login(viewer)
    return client


# --- the panel on the review page ---------------------------------------------------------------------------------


def test_review_page_offers_add_to_golden_set_with_the_three_reasons(expert_client, project):
    make_trace(project=project, external_id="t-1")
    html = expert_client.get("/projects/acme/traces/t-1/").content.decode()
    assert 'id="golden-panel"' in html
    assert "Add to golden set" in html
    for label in ("Core feature", "Past regression", "Edge case"):
        assert f">{label}</option>" in html


def test_adding_from_the_panel_with_htmx_swaps_the_panel_and_shows_the_version(teammate_client, project, teammate):
    trace = make_trace(project=project, external_id="t-1")
    response = teammate_client.post(
        f"/projects/acme/t/{trace.pk}/golden/?order=oldest",
        {"reason": "past_regression", "comment": "Broke in 2.3 <b>twice</b>"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.strip().startswith('<section id="golden-panel"') and html.strip().endswith("</section>")
    assert "In golden set since" in html and ">v1</a> (past regression)" in html
    assert "Broke in 2.3 &lt;b&gt;twice&lt;/b&gt;" in html  # the comment is escaped
    assert "Remove from golden set" in html
    assert f"/projects/acme/t/{trace.pk}/golden/remove/?order=oldest" in html  # the queue parameters ride along
    assert members(project) == [("t-1", "past_regression", "Broke in 2.3 <b>twice</b>")]
    assert GoldenEntry.objects.get().added_by == teammate


def test_adding_without_js_redirects_back_to_the_trace_and_the_page_shows_the_membership(expert_client, project):
    trace = make_trace(project=project, external_id="t/1 x")
    response = expert_client.post(f"/projects/acme/t/{trace.pk}/golden/?order=oldest", {"reason": "edge_case"})
    assert response.status_code == 302
    assert response["Location"] == "/projects/acme/traces/t/1%20x/?order=oldest"
    html = expert_client.get(response["Location"]).content.decode()
    assert ">v1</a> (edge case)" in html


def test_removing_from_the_panel_makes_a_new_version_and_offers_add_again(expert_client, project, expert):
    trace = make_trace(project=project, external_id="t-1")
    golden_add(project=project, traces=[trace], reason="core_feature", user=expert)
    response = expert_client.post(f"/projects/acme/t/{trace.pk}/golden/remove/", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "Add to golden set" in html and "In golden set since" not in html
    assert members(project) == []
    assert members(project, 1) == [("t-1", "core_feature", "")]


def test_a_bad_reason_is_shown_in_the_panel_and_changes_nothing(expert_client, project):
    trace = make_trace(project=project, external_id="t-1")
    response = expert_client.post(f"/projects/acme/t/{trace.pk}/golden/", {"reason": "vibes"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "reason: Select a valid choice" in response.content.decode()
    assert GoldenEntry.objects.count() == 0


def test_viewer_sees_the_state_but_cannot_change_the_set(viewer_client, project, expert):
    trace = make_trace(project=project, external_id="t-1")
    other = make_trace(project=project, external_id="t-2")
    golden_add(project=project, traces=[trace], reason="edge_case", user=expert)
    html = viewer_client.get("/projects/acme/traces/t-1/").content.decode()
    assert ">v1</a> (edge case)" in html
    assert "Remove from golden set" not in html
    assert "Add to golden set" not in viewer_client.get("/projects/acme/traces/t-2/").content.decode()
    assert viewer_client.post(f"/projects/acme/t/{other.pk}/golden/", {"reason": "edge_case"}).status_code == 403
    assert viewer_client.post(f"/projects/acme/t/{trace.pk}/golden/remove/").status_code == 403
    assert viewer_client.post("/projects/acme/golden/remove/", {"trace": [trace.pk]}).status_code == 403
    assert members(project) == [("t-1", "edge_case", "")]
    page = viewer_client.get("/projects/acme/golden/").content.decode()
    assert 'name="trace"' not in page and "Remove the ticked traces" not in page


def test_outsider_gets_404_everywhere(outsider_client, project, expert):
    trace = make_trace(project=project, external_id="t-1")
    golden_add(project=project, traces=[trace], reason="edge_case", user=expert)
    assert outsider_client.get("/projects/acme/golden/").status_code == 404
    assert outsider_client.get("/projects/acme/golden/v1.jsonl").status_code == 404
    assert outsider_client.post(f"/projects/acme/t/{trace.pk}/golden/", {"reason": "edge_case"}).status_code == 404
    assert outsider_client.post(f"/projects/acme/t/{trace.pk}/golden/remove/").status_code == 404
    assert outsider_client.post("/projects/acme/golden/remove/", {"trace": [trace.pk]}).status_code == 404
    assert members(project) == [("t-1", "edge_case", "")]


def test_a_trace_of_another_project_cannot_be_added_through_this_one(expert_client, project, expert):
    elsewhere = make_project(slug="other", expert=expert)
    foreign = make_trace(project=elsewhere, external_id="x")
    assert expert_client.post(f"/projects/acme/t/{foreign.pk}/golden/", {"reason": "edge_case"}).status_code == 404
    assert GoldenEntry.objects.count() == 0


# --- the golden-set page ------------------------------------------------------------------------------------------


def test_golden_page_lists_members_with_reason_comment_and_who_added_them(expert_client, project, expert):
    a = make_trace(project=project, external_id="a", input="<script>alert(1)</script> refund?")
    b = make_trace(project=project, external_id="b")
    golden_add(project=project, traces=[a], reason="core_feature", comment="the main flow", user=expert)
    golden_add(project=project, traces=[b], reason="edge_case", user=expert)
    html = expert_client.get("/projects/acme/golden/").content.decode()
    assert "v2" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; refund?" in html and "<script>alert(1)" not in html
    assert "the main flow" in html and "Core feature" in html and "Edge case" in html
    assert 'href="/projects/acme/traces/a/"' in html
    assert "v1 · expert ·" in html
    filtered = expert_client.get("/projects/acme/golden/?reason=edge_case").content.decode()
    assert 'href="/projects/acme/traces/b/"' in filtered and 'href="/projects/acme/traces/a/"' not in filtered
    assert 'href="/projects/acme/golden/v2.jsonl"' in html


def test_version_snapshot_page_shows_the_old_members_read_only(expert_client, project, expert):
    a, b, c = (make_trace(project=project, external_id=x) for x in "abc")
    golden_add(project=project, traces=[a, b], reason="core_feature", user=expert)
    golden_remove(project=project, traces=[a], user=expert)
    golden_add(project=project, traces=[c], reason="edge_case", user=expert)

    snapshot = expert_client.get("/projects/acme/golden/?version=1").content.decode()
    assert 'id="golden-snapshot"' in snapshot and "read-only" in snapshot
    assert 'href="/projects/acme/traces/a/"' in snapshot and 'href="/projects/acme/traces/b/"' in snapshot
    assert 'href="/projects/acme/traces/c/"' not in snapshot
    assert 'name="trace"' not in snapshot  # no bulk removal on a snapshot

    current = expert_client.get("/projects/acme/golden/").content.decode()
    assert 'href="/projects/acme/traces/a/"' not in current and 'href="/projects/acme/traces/c/"' in current
    # The history: every version with its size and summary.
    assert "added a, b (core feature)" in current and "removed a" in current and "added c (edge case)" in current
    assert expert_client.get("/projects/acme/golden/?version=9").status_code == 404
    assert expert_client.get("/projects/acme/golden/?version=x").status_code == 404


def test_members_come_a_page_at_a_time(expert_client, project, expert, monkeypatch):
    monkeypatch.setattr("suites.views.MEMBERS_PER_PAGE", 2)
    traces = [make_trace(project=project, external_id=f"g-{i}") for i in range(5)]
    golden_add(project=project, traces=traces, reason="core_feature", user=expert)
    seen = []
    url = "/projects/acme/golden/"
    for _ in range(5):
        html = expert_client.get(url).content.decode()
        seen += [t.external_id for t in traces if f'href="/projects/acme/traces/{t.external_id}/"' in html]
        marker = 'rel="next" href="'
        if marker not in html:
            break
        url = html.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert sorted(seen) == [f"g-{i}" for i in range(5)] and len(seen) == 5


def test_bulk_remove_takes_the_ticked_traces_out_in_one_version(expert_client, project, expert):
    a, b, c = (make_trace(project=project, external_id=x) for x in "abc")
    golden_add(project=project, traces=[a, b, c], reason="core_feature", user=expert)
    response = expert_client.post("/projects/acme/golden/remove/", {"trace": [a.pk, c.pk]})
    assert response.status_code == 302 and response["Location"] == "/projects/acme/golden/"
    assert members(project) == [("b", "core_feature", "")]
    assert members(project, 1) == [("a", "core_feature", ""), ("b", "core_feature", ""), ("c", "core_feature", "")]
    assert golden_size(project=project) == 1


def test_overview_and_nav_link_to_the_golden_set_with_its_size(expert_client, project, expert):
    traces = [make_trace(project=project) for _ in range(3)]
    golden_add(project=project, traces=traces, reason="core_feature", user=expert)
    html = expert_client.get("/projects/acme/").content.decode()
    assert '<a href="/projects/acme/golden/">3 traces</a>' in html
    assert '<a href="/projects/acme/golden/">Golden set</a>' in html


def test_reading_the_pages_of_an_empty_set_creates_nothing(expert_client, project):
    make_trace(project=project, external_id="t-1")
    assert "The golden set is empty" in expert_client.get("/projects/acme/golden/").content.decode()
    assert expert_client.get("/projects/acme/traces/t-1/").status_code == 200
    assert expert_client.get("/projects/acme/golden/v1.jsonl").status_code == 404
    assert GoldenSet.objects.count() == 0


# --- export and import ---------------------------------------------------------------------------------------------


def _golden_project(project, expert):
    factual = make_criterion(project=project, name="factual")
    a = make_trace(project=project, external_id="a", metadata={"model": "gpt-x"})
    b = make_trace(project=project, external_id="b")
    c = make_trace(project=project, external_id="c")
    make_label(trace=a, criterion=factual, verdict="fail", critique="Wrong number.")
    make_note(trace=a, author=expert, text="Invents a statistic")
    golden_add(project=project, traces=[a, b], reason="past_regression", comment="bug 12", user=expert)
    golden_remove(project=project, traces=[b], user=expert)
    golden_add(project=project, traces=[c], reason="edge_case", user=expert)
    return a, b, c


def test_export_of_a_version_streams_traces_with_their_golden_object(expert_client, project, expert):
    _golden_project(project, expert)
    response = expert_client.get("/projects/acme/golden/v1.jsonl")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="acme-golden-v1.jsonl"'
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [(r["id"], r["golden"]) for r in rows] == [
        ("a", {"reason": "past_regression", "comment": "bug 12", "version": 1}),
        ("b", {"reason": "past_regression", "comment": "bug 12", "version": 1}),
    ]
    assert rows[0]["labels"] == [{"criterion": "factual", "verdict": "fail", "critique": "Wrong number."}]
    assert rows[0]["metadata"] == {"model": "gpt-x"}
    current = b"".join(expert_client.get("/projects/acme/golden/v3.jsonl").streaming_content).decode()
    assert [json.loads(line)["id"] for line in current.splitlines()] == ["a", "c"]
    assert expert_client.get("/projects/acme/golden/v4.jsonl").status_code == 404


def test_export_round_trips_through_import_traces_into_a_new_project(project, expert, tmp_path):
    _golden_project(project, expert)
    path = tmp_path / "golden.jsonl"
    out, error = run("export_golden", "--project", "acme", str(path))
    assert error is None
    output, error = run("import_traces", "--project", "copy", "--create-project", "--expert", "expert", str(path))
    assert (output.strip(), error) == ("created 2, duplicates 0, rejected 0", None)
    copy = Project.objects.get(slug="copy")
    assert sorted(Trace.objects.filter(project=copy).values_list("external_id", flat=True)) == ["a", "c"]
    assert Label.objects.get(trace__project=copy).critique == "Wrong number."
    assert Note.objects.get(trace__project=copy).text == "Invents a statistic"
    # The traces themselves are unchanged: exporting the copy gives the golden file without the golden objects.
    plain = tmp_path / "copy.jsonl"
    call_command("export_traces", "--project", "copy", str(plain), stderr=io.StringIO())
    stripped = [json.loads(line) for line in path.read_text().splitlines()]
    for row in stripped:
        del row["golden"]
    assert [json.loads(line) for line in plain.read_text().splitlines()] == stripped
    # And the file seeds the copy's golden set.
    output, error = run("import_golden", "--project", "copy", "--reason", "core_feature", str(path))
    assert error is None and "now v1" in output
    assert members(copy) == [("a", "core_feature", ""), ("c", "core_feature", "")]


def test_trace_format_ignores_the_golden_key_but_still_rejects_other_unknown_keys():
    record = parse_record({"id": "a", "input": "hi", "golden": {"reason": "edge_case", "version": 3}})
    assert record.external_id == "a" and record.input == "hi"
    with pytest.raises(RecordError, match="unknown field"):
        parse_record({"id": "a", "input": "hi", "goldne": {}})


def test_export_golden_writes_the_current_version_to_stdout_or_names_a_bad_version(project, expert, capsysbinary):
    _golden_project(project, expert)
    call_command("export_golden", "--project", "acme", "--version", "2", "-", stderr=io.StringIO())
    lines = capsysbinary.readouterr().out.decode().splitlines()
    assert [json.loads(line)["golden"]["version"] for line in lines] == [2]
    _, error = run("export_golden", "--project", "acme", "--version", "7", "-")
    assert error is not None and "versions 1 to 3, not 7" in str(error)
    _, error = run("export_golden", "--project", "nope", "-")
    assert error is not None and "no project 'nope'" in str(error)


def test_import_golden_reads_ids_and_jsonl_lines(project, expert, tmp_path):
    for x in ("a", "b", "c"):
        make_trace(project=project, external_id=x)
    path = tmp_path / "ids.txt"
    path.write_text('a\n\n{"id": "b", "input": "anything"}\n  c  \n', encoding="utf-8")
    output, error = run(
        "import_golden",
        "--project",
        "acme",
        "--reason",
        "edge_case",
        "--comment",
        "seed",
        "--user",
        "expert",
        str(path),
    )
    assert error is None
    assert output.strip() == "3 traces filed as edge_case: golden set of acme now v1"
    assert members(project) == [("a", "edge_case", "seed"), ("b", "edge_case", "seed"), ("c", "edge_case", "seed")]
    assert GoldenEntry.objects.filter(added_by=expert).count() == 3
    output, error = run("import_golden", "--project", "acme", "--reason", "edge_case", "--comment", "seed", str(path))
    assert error is None and "still v1" in output


def test_import_golden_reports_each_bad_line_and_writes_nothing(project, tmp_path):
    make_trace(project=project, external_id="a")
    make_trace(project=make_project(slug="other"), external_id="elsewhere")
    path = tmp_path / "bad.jsonl"
    path.write_text('a\n{"id": "a"\n{"input": "no id"}\nelsewhere\n{"id": 7}\n', encoding="utf-8")
    output, error = run("import_golden", "--project", "acme", "--reason", "core_feature", str(path))
    assert error is not None and error.returncode == 1 and str(error) == "4 rejected"
    assert output.splitlines() == [
        "line 2: not valid JSON (Expecting ',' delimiter at column 11)",
        "line 3: the object has no id (a string or a number)",
        "line 4: no trace 'elsewhere' in acme",
        "line 5: no trace '7' in acme",
        "nothing was written",
    ]
    assert GoldenEntry.objects.count() == 0


def test_import_golden_refuses_an_unknown_reason_or_project(project, tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("a\n", encoding="utf-8")
    with pytest.raises(CommandError, match="invalid choice: 'vibes'"):
        call_command("import_golden", "--project", "acme", "--reason", "vibes", str(path))
    _, error = run("import_golden", "--project", "nope", "--reason", "edge_case", str(path))
    assert error is not None and "no project 'nope'" in str(error)
