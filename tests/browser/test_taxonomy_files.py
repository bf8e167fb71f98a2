"""Taxonomy files in a real browser: a viewer downloads the exports from the failure-modes page, an expert uploads
a codebook through the import page."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from annotation.models import FailureMode, FailureModeChange, Role
from tests.browser.conftest import login
from tests.factories import add_member, code_note, make_note, make_trace, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_viewer_downloads_the_notes_and_modes_exports_with_their_filenames(page, live_server, project, expert):
    add_member(project, make_user("viewer"), Role.VIEWER)
    mode = FailureMode.objects.create(project=project, name="hallucination", definition="Invents facts")
    trace = make_trace(project=project, external_id="t-1")
    code_note(make_note(trace=trace, author=expert, text='=1+1, "quoted"\nsecond line'), mode)

    login(page, live_server, "viewer", "/projects/acme/failure-modes/")
    page.wait_for_selector("#taxonomy-export")
    assert page.locator("#taxonomy-export a:has-text('import a codebook')").count() == 0

    with page.expect_download() as notes_info:
        page.click("#taxonomy-export a[href$='/notes.csv']")
    notes = notes_info.value
    assert notes.suggested_filename == "acme-notes.csv"
    frame = pd.read_csv(notes.path(), keep_default_na=False)
    assert list(frame["text"]) == ['\'=1+1, "quoted"\nsecond line']
    assert list(frame["failure_modes"]) == ["hallucination"]

    with page.expect_download() as modes_info:
        page.click("#taxonomy-export a[href$='/export.json']")
    modes = modes_info.value
    assert modes.suggested_filename == "acme-failure-modes.json"
    with open(modes.path(), encoding="utf-8") as stream:
        rows = json.load(stream)
    assert [(row["name"], row["trace_count"], row["note_count"]) for row in rows] == [("hallucination", 1, 1)]


def test_expert_uploads_a_codebook_and_reads_the_report(page, live_server, project, tmp_path):
    FailureMode.objects.create(project=project, name="Tone", definition="old")
    codebook = tmp_path / "codebook.csv"
    codebook.write_text("name,definition\nHallucination,Invents facts\ntone,Too casual\n,nameless\n", encoding="utf-8")

    login(page, live_server, "expert", "/projects/acme/failure-modes/")
    page.click("#taxonomy-export a:has-text('import a codebook')")
    page.wait_for_url("**/failure-modes/import/")
    page.set_input_files("input[name=file]", str(codebook))
    page.click("button:has-text('Import')")
    page.wait_for_selector("#codebook-import-report")
    report = page.inner_text("#codebook-import-report")
    assert "created 1, updated 1, unchanged 0, rejected 1" in report
    assert "row 4: the name is missing" in report

    assert dict(FailureMode.objects.filter(project=project).values_list("name", "definition")) == {
        "Hallucination": "Invents facts",
        "Tone": "Too casual",
    }
    assert sorted(FailureModeChange.objects.filter(project=project).values_list("action", flat=True)) == [
        "created",
        "redefined",
    ]
