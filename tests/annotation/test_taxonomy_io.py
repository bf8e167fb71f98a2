"""Taxonomy files: the modes and notes exports (CSV, JSON), the codebook import (command and upload), and coded
notes travelling through import_traces / export_traces."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from annotation.models import FailureMode, FailureModeChange, Note, Project, Role, Trace
from annotation.services import DomainError, api_token_create
from annotation.taxonomy import failure_mode_counts
from annotation.taxonomy_format import (
    IGNORED_CODEBOOK_COLUMNS,
    MODE_COLUMNS,
    NOTE_COLUMNS,
    CodebookEntry,
    NoteEntry,
    RowError,
    TaxonomyFileError,
    csv_safe,
    csv_unescape,
    parse_codebook,
    parse_notes_file,
)
from annotation.taxonomy_io import (
    NOTES_CHUNK,
    _iso_utc,
    codebook_import,
    failure_modes_export,
    notes_export_chunks,
    notes_export_csv,
    notes_export_json,
    notes_import,
)
from tests.factories import add_member, code_note, make_criterion, make_label, make_note, make_project, make_trace

uses_db = pytest.mark.django_db

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def read_csv(text: str) -> pd.DataFrame:
    # keep_default_na=False: an empty cell is "", and a note reading "NA" stays text.
    return pd.read_csv(io.StringIO(text), keep_default_na=False, dtype={"text": str, "name": str})


# --- CSV cell safety (no database) --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-cmd", "'-cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tindented", "'\tindented"),
        ("\rreturn", "'\rreturn"),
        # An apostrophe already in front of a formula gets another, so the import can take exactly one off.
        ("'=x", "''=x"),
        ("plain", "plain"),
        ("'quoted", "'quoted"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_csv_safe_defuses_formula_cells_and_csv_unescape_undoes_exactly_that(text, cell):
    assert csv_safe(text) == cell
    assert csv_unescape(cell) == text


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-01 12:00:00.123456+00",  # PostgreSQL in UTC
        "2026-11-01 12:00:00+00",  # no fraction: written without one, like isoformat
        "2026-11-01 12:00:00.12345+00",  # trailing zeros of the microseconds left out (…450)
        "2026-11-01 12:00:00.123456",  # SQLite: naive text, stored in UTC
        "2026-11-01 13:00:00.123456+01",  # a session in another zone
    ],
)
def test_database_timestamp_text_becomes_the_trace_format_timestamp(stamp):
    expected = {
        "2026-11-01 12:00:00+00": "2026-11-01T12:00:00Z",
        "2026-11-01 12:00:00.12345+00": "2026-11-01T12:00:00.123450Z",
    }
    assert _iso_utc(stamp) == expected.get(stamp, "2026-11-01T12:00:00.123456Z")


# --- parsing a codebook file (no database) ------------------------------------------------------------------------


def parse(text: str | bytes, fmt: str = "csv", max_name_chars: int = 200):
    data = text.encode() if isinstance(text, str) else text
    return parse_codebook(data, fmt=fmt, max_name_chars=max_name_chars)


def test_csv_codebook_reads_names_and_definitions_with_spreadsheet_row_numbers():
    text = (
        "\ufeffName,Definition\r\n"
        "Hallucination,Invents facts\r\n"
        "\r\n"
        '"Tone,  too  casual","Says ""yo"",\nand more"\r\n'
        "  no definition  \r\n"
        "'=sum,'-minus\r\n"
    )
    entries, errors = parse(text)
    assert errors == []
    assert entries == [
        CodebookEntry(row=2, name="Hallucination", definition="Invents facts"),
        CodebookEntry(row=4, name="Tone, too casual", definition='Says "yo",\nand more'),
        CodebookEntry(row=5, name="no definition", definition=None),
        CodebookEntry(row=6, name="=sum", definition="-minus"),
    ]


def test_csv_codebook_reports_each_bad_row_by_number_and_keeps_the_good_ones():
    long_name = "x" * 21
    text = f"name,definition\nok,fine\n,no name\n{long_name},too long\nOK ,repeat in another case\na,b,c\nlast,one\n"
    entries, errors = parse(text, max_name_chars=20)
    assert [entry.name for entry in entries] == ["ok", "last"]
    assert [str(error) for error in errors] == [
        "row 3: the name is missing",
        "row 4: the name is 21 characters long; the limit is 20",
        "row 5: “OK” is already named on row 2",
        "row 6: 3 cells, but the header has 2 columns",
    ]


def test_text_a_database_cannot_store_is_a_row_error():
    entries, errors = parse(b"name,definition\nx\x00y,fine\nz,ok\n")
    assert entries == [CodebookEntry(row=3, name="z", definition="ok")]
    assert errors == [RowError(2, "name contains a NUL character (\\u0000), which cannot be stored")]


def test_the_failure_modes_export_columns_are_read_past():
    header = ",".join(MODE_COLUMNS)
    entries, errors = parse(f"{header}\n7,Hallucination,Invents facts,False,,3,4,0.5,0.25\n")
    assert errors == []
    assert entries == [CodebookEntry(row=2, name="Hallucination", definition="Invents facts")]
    assert set(IGNORED_CODEBOOK_COLUMNS) == set(MODE_COLUMNS) - {"name", "definition"}


@pytest.mark.parametrize(
    ("data", "fmt", "message"),
    [
        (b"", "csv", "the file is empty"),
        (b"  \n\n", "json", "the file is empty"),
        (b"name,definition\n", "csv", "the file lists no failure modes"),
        (b"[]", "json", "the file lists no failure modes"),
        (b"name,defintion\nx,y\n", "csv", "row 1: unknown column “defintion”"),
        (b"name,name\nx,y\n", "csv", "row 1: the column “name” appears more than once"),
        (b"definition\ny\n", "csv", "row 1: there is no “name” column (the header is: definition)"),
        (b"name,definition,\nx,y,\n", "csv", "row 1: column 3 has no name"),
        (b'name,definition\nx,"unterminated\n', "csv", "row 2 (from line 2): malformed CSV: unexpected end of data"),
        (b'name\nok\n"a\nb"x\n', "csv", "row 3 (from line 3): malformed CSV: ',' expected after '\"'"),
        (b"name\ncaf\xe9\n", "csv", "the file is not UTF-8 text (invalid byte at position 9)"),
        (b'[{"name": "x"},\n {"name": }]', "json", "not valid JSON: Expecting value at line 2, column 11"),
        (b'{"name": "x"}', "json", "expected a JSON list of failure modes"),
        (b"name\nx\n", "xml", "unknown format “xml”"),
    ],
)
def test_a_file_that_cannot_be_read_says_why_and_where(data, fmt, message):
    with pytest.raises(TaxonomyFileError) as caught:
        parse(data, fmt)
    assert message in str(caught.value)


def test_json_codebook_reports_bad_items_by_position():
    items = [
        {"name": "Hallucination", "definition": "Invents facts"},
        "not an object",
        {"name": "x", "colour": "red"},
        {"name": 42},
        {"name": "y", "definition": ["a list"]},
        {"name": "nul", "definition": "a\u0000b"},
        {"name": "\ud800"},
        {"definition": "no name"},
        {"name": "hallucination"},
        {"name": "fine", "definition": None, "trace_count": 3},
    ]
    entries, errors = parse(json.dumps(items), "json")
    assert entries == [
        CodebookEntry(row=1, name="Hallucination", definition="Invents facts"),
        CodebookEntry(row=10, name="fine", definition=None),
    ]
    assert errors == [
        RowError(2, 'expected an object like {"name": "…"}, got str'),
        RowError(3, "unknown key “colour”; a failure mode has name, definition"),
        RowError(4, "name: expected text, got int"),
        RowError(5, "definition: expected text, got list"),
        RowError(6, "definition contains a NUL character (\\u0000), which cannot be stored"),
        RowError(7, "name contains an unpaired surrogate at character 1"),
        RowError(8, "the name is missing"),
        RowError(9, "“hallucination” is already named on row 1"),
    ]


# --- a coded project ----------------------------------------------------------------------------------------------


@pytest.fixture
def viewer(project: Project) -> User:
    user = User.objects.create_user(username="viewer", password="pw-for-tests-only")
    add_member(project, user, Role.VIEWER)
    return user


@pytest.fixture
def viewer_client(viewer: User) -> Client:
    client = Client()
    client.force_login(viewer)
    return client


@pytest.fixture
def coded(project: Project, expert: User, teammate: User) -> dict[str, FailureMode]:
    """Four reviewed traces, two failing: hallucination on t1 (twice) and t2, "=tone" on t2 and t3, a merged mode
    still on t4, and an unused mode (listed with zero counts)."""
    modes = {
        name: FailureMode.objects.create(project=project, name=name, definition=f"When {name} shows.")
        for name in ("hallucination", "=tone", "unused")
    }
    modes["old"] = FailureMode.objects.create(
        project=project, name="old", retired_at=T0, merged_into=modes["hallucination"]
    )
    criterion = make_criterion(project=project, name="factual")
    traces = [make_trace(project=project, external_id=f"t{i}", reviewed_at=T0 + timedelta(minutes=i)) for i in range(5)]
    make_label(trace=traces[1], criterion=criterion, verdict="fail")
    make_label(trace=traces[2], criterion=criterion, verdict="fail")
    make_label(trace=traces[3], criterion=criterion, verdict="pass")
    code_note(make_note(trace=traces[1], author=expert, text="a"), modes["hallucination"])
    code_note(make_note(trace=traces[1], author=teammate, text="b"), modes["hallucination"])
    code_note(make_note(trace=traces[2], author=expert, text="c"), modes["hallucination"], modes["=tone"])
    code_note(make_note(trace=traces[3], author=expert, text="d"), modes["=tone"])
    code_note(make_note(trace=traces[4], author=expert, text="e"), modes["old"])
    make_note(trace=traces[0], author=expert, text="uncoded")
    return modes


EXPECTED_MODES = [
    # name, definition, retired, merged_into, traces, notes, share of reviewed (of 5), share of failing (of 2)
    ("=tone", "When =tone shows.", False, None, 2, 2, 2 / 5, 1 / 2),
    ("hallucination", "When hallucination shows.", False, None, 2, 3, 2 / 5, 2 / 2),
    ("old", "", True, "hallucination", 1, 1, 1 / 5, 0.0),
    ("unused", "When unused shows.", False, None, 0, 0, 0.0, 0.0),
]


@uses_db
def test_modes_csv_parses_back_with_the_exact_counts(project, coded):
    frame = read_csv(failure_modes_export(project=project, fmt="csv"))
    assert list(frame.columns) == list(MODE_COLUMNS)
    assert list(frame["id"]) == [coded[row[0]].pk for row in EXPECTED_MODES]
    # The formula-like name and definition carry an apostrophe in the CSV.
    names = [row[0] if not row[0].startswith("=") else "'" + row[0] for row in EXPECTED_MODES]
    assert list(frame["name"]) == names
    assert frame.loc[0, "definition"] == "When =tone shows."
    assert list(frame["retired"]) == [row[2] for row in EXPECTED_MODES]
    assert list(frame["merged_into"]) == [row[3] or "" for row in EXPECTED_MODES]
    assert list(frame["trace_count"]) == [row[4] for row in EXPECTED_MODES]
    assert list(frame["note_count"]) == [row[5] for row in EXPECTED_MODES]
    assert list(frame["share_of_reviewed_traces"]) == pytest.approx([row[6] for row in EXPECTED_MODES])
    assert list(frame["share_of_failing_traces"]) == pytest.approx([row[7] for row in EXPECTED_MODES])


@uses_db
def test_modes_json_parses_back_with_the_exact_counts_and_matches_the_page_numbers(project, coded):
    rows = json.loads(failure_modes_export(project=project, fmt="json"))
    assert rows == [
        {
            "id": coded[name].pk,
            "name": name,
            "definition": definition,
            "retired": retired,
            "merged_into": merged_into,
            "trace_count": traces,
            "note_count": notes,
            "share_of_reviewed_traces": pytest.approx(reviewed),
            "share_of_failing_traces": pytest.approx(failing),
        }
        for name, definition, retired, merged_into, traces, notes, reviewed, failing in EXPECTED_MODES
    ]
    frame = pd.read_json(io.StringIO(json.dumps(rows)))
    page = failure_mode_counts(project=project)
    assert list(frame["trace_count"]) == [count.trace_count for count in page]
    assert list(frame["note_count"]) == [count.note_count for count in page]


@uses_db
def test_an_empty_taxonomy_exports_a_header_and_an_empty_list(project):
    assert read_csv(failure_modes_export(project=project, fmt="csv")).empty
    assert list(read_csv(failure_modes_export(project=project, fmt="csv")).columns) == list(MODE_COLUMNS)
    assert json.loads(failure_modes_export(project=project, fmt="json")) == []
    assert "".join(notes_export_csv(project=project)) == ",".join(NOTE_COLUMNS) + "\n"
    assert json.loads("".join(notes_export_json(project=project))) == []


TRICKY_TEXTS = [
    "comma, inside",
    'double "quotes" inside',
    "two\nlines\r\nand a CRLF",
    "ünïcödé ✓ 漢字 🙂",
    '=HYPERLINK("http://evil","click")',
    "-2+3",
    "@SUM(A1:A9)",
    "NA",
    "  leading and trailing spaces  ",
]


@uses_db
def test_notes_export_keeps_tricky_text_exact_in_json_and_defused_in_csv(project, expert, teammate, coded):
    trace = make_trace(project=project, external_id='t, with "comma"')
    notes = [
        code_note(make_note(trace=trace, author=teammate, text=text), coded["=tone"], coded["hallucination"])
        for text in TRICKY_TEXTS
    ]
    expected_json = {
        note.pk: {
            "note_id": note.pk,
            "trace_external_id": 't, with "comma"',
            "author": "teammate",
            "created_at": note.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "text": note.text,
            "failure_modes": ["=tone", "hallucination"],
        }
        for note in notes
    }

    rows = json.loads("".join(notes_export_json(project=project)))
    all_ids = Note.objects.filter(trace__project=project).values_list("id", flat=True)
    assert [row["note_id"] for row in rows] == sorted(all_ids)
    assert {row["note_id"]: row for row in rows if row["note_id"] in expected_json} == expected_json
    by_id = {row["note_id"]: row for row in rows}
    assert by_id[Note.objects.get(text="c").pk]["failure_modes"] == ["=tone", "hallucination"]
    assert by_id[Note.objects.get(text="uncoded").pk]["failure_modes"] == []

    frame = read_csv("".join(notes_export_csv(project=project)))
    assert list(frame.columns) == list(NOTE_COLUMNS)
    csv_rows = frame.set_index("note_id").loc[[note.pk for note in notes]]
    assert list(csv_rows["text"]) == [csv_safe(text) for text in TRICKY_TEXTS]
    assert [csv_unescape(cell) for cell in csv_rows["text"]] == TRICKY_TEXTS
    assert csv_rows.iloc[4]["text"] == '\'=HYPERLINK("http://evil","click")'
    # The modes share a cell, joined by "; " — and the formula-like first name makes the cell need its apostrophe.
    assert set(csv_rows["failure_modes"]) == {"'=tone; hallucination"}
    assert set(csv_rows["trace_external_id"]) == {'t, with "comma"'}
    assert frame.set_index("note_id").loc[Note.objects.get(text="uncoded").pk, "failure_modes"] == ""


@uses_db
def test_notes_export_reads_in_chunks_with_two_queries_each(project, expert, coded, django_assert_num_queries):
    trace = make_trace(project=project, external_id="many")
    for i in range(8):
        code_note(make_note(trace=trace, author=expert, text=f"n{i}"), coded["unused"])
    total = Note.objects.filter(trace__project=project).count()
    assert total == 14

    # One query for the mode names, then per chunk one for the notes and one for their links; the short last
    # chunk ends it without another read.
    with django_assert_num_queries(1 + 2 * 3):
        chunks = list(notes_export_chunks(project=project, chunk_size=5))
    assert [len(chunk) for chunk in chunks] == [5, 5, 4]
    ids = [row["note_id"] for chunk in chunks for row in chunk]
    assert ids == sorted(ids) and len(set(ids)) == total

    pieces = list(notes_export_csv(project=project, chunk_size=5))
    assert len(pieces) == 3
    assert pieces[0].startswith(",".join(NOTE_COLUMNS) + "\n")
    assert not any(piece.startswith("note_id") for piece in pieces[1:])
    frame = read_csv("".join(pieces))
    assert list(frame["note_id"]) == ids
    assert list(frame.set_index("note_id").loc[ids[-8:], "failure_modes"]) == ["unused"] * 8

    assert [row["note_id"] for row in json.loads("".join(notes_export_json(project=project, chunk_size=5)))] == ids


@uses_db
def test_notes_export_at_one_more_than_the_default_chunk_spans_two_chunks(project, expert):
    mode = FailureMode.objects.create(project=project, name="bulk")
    trace = make_trace(project=project, external_id="bulk")
    notes = Note.objects.bulk_create(
        [Note(trace=trace, author=expert, text=f"note {i}") for i in range(NOTES_CHUNK + 1)]
    )
    code_note(notes[-1], mode)
    chunks = list(notes_export_chunks(project=project))
    assert [len(chunk) for chunk in chunks] == [NOTES_CHUNK, 1]
    assert chunks[1][0]["failure_modes"] == ["bulk"]
    frame = read_csv("".join(notes_export_csv(project=project)))
    assert len(frame) == NOTES_CHUNK + 1
    assert frame["text"].iloc[-1] == f"note {NOTES_CHUNK}"


@uses_db
def test_notes_of_another_project_stay_out_of_the_export(project, expert, coded):
    other = make_project(slug="other", expert=expert)
    other_mode = FailureMode.objects.create(project=other, name="secret mode")
    code_note(make_note(trace=make_trace(project=other, external_id="x"), author=expert, text="secret"), other_mode)
    rows = json.loads("".join(notes_export_json(project=project)))
    assert "secret" not in {row["text"] for row in rows}
    assert all("secret mode" not in row["failure_modes"] for row in rows)
    assert len(rows) == Note.objects.filter(trace__project=project).count()


# --- download views -----------------------------------------------------------------------------------------------


def download_urls(slug: str = "acme") -> list[str]:
    return [
        reverse(name, args=[slug, fmt])
        for name in ("failure_modes_download", "notes_download")
        for fmt in ("csv", "json")
    ]


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@uses_db
@pytest.mark.parametrize(
    ("name", "fmt", "filename", "content_type"),
    [
        ("failure_modes_download", "csv", "acme-failure-modes.csv", "text/csv; charset=utf-8"),
        ("failure_modes_download", "json", "acme-failure-modes.json", "application/json"),
        ("notes_download", "csv", "acme-notes.csv", "text/csv; charset=utf-8"),
        ("notes_download", "json", "acme-notes.json", "application/json"),
    ],
)
def test_a_viewer_downloads_each_export_with_its_filename(viewer_client, coded, name, fmt, filename, content_type):
    response = viewer_client.get(reverse(name, args=["acme", fmt]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert response["Content-Type"] == content_type
    assert response["Cache-Control"] == "private, no-store"
    content = body(response).decode()
    if name == "notes_download":
        assert response.streaming
        rows = read_csv(content) if fmt == "csv" else pd.DataFrame(json.loads(content))
        assert len(rows) == 6
    else:
        rows = read_csv(content) if fmt == "csv" else pd.DataFrame(json.loads(content))
        assert list(rows["trace_count"]) == [row[4] for row in EXPECTED_MODES]


@uses_db
def test_outsiders_get_404_on_every_export_and_on_the_import_page(outsider_client, coded):
    for url in [*download_urls(), reverse("codebook_upload", args=["acme"])]:
        assert outsider_client.get(url).status_code == 404, url
    upload = SimpleUploadedFile("c.csv", b"name\nx\n")
    assert outsider_client.post(reverse("codebook_upload", args=["acme"]), {"file": upload}).status_code == 404
    assert not FailureMode.objects.filter(name="x").exists()


@uses_db
def test_anonymous_visitors_are_sent_to_log_in(client, coded):
    for url in download_urls():
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


@uses_db
def test_an_unknown_export_format_is_404(expert_client, coded):
    assert expert_client.get("/projects/acme/failure-modes/export.xlsx").status_code == 404
    assert expert_client.get("/projects/acme/failure-modes/notes.xml").status_code == 404


@uses_db
def test_the_failure_modes_page_links_the_exports(viewer_client, expert_client, coded):
    page = viewer_client.get(reverse("failure_mode_list", args=["acme"])).content.decode()
    for url in download_urls():
        assert f'href="{url}"' in page
    assert reverse("codebook_upload", args=["acme"]) not in page  # viewers do not change the codebook
    assert (
        reverse("codebook_upload", args=["acme"])
        in expert_client.get(reverse("failure_mode_list", args=["acme"])).content.decode()
    )


# --- REST ---------------------------------------------------------------------------------------------------------


@uses_db
def test_rest_exports_take_the_project_token_and_refuse_other_tokens(client, project, expert, coded):
    _, raw = api_token_create(project=project, name="ci")
    headers = {"Authorization": f"Bearer {raw}"}
    response = client.get("/api/v1/projects/acme/failure-modes/export?format=json", headers=headers)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="acme-failure-modes.json"'
    assert [row["name"] for row in json.loads(response.content)] == [row[0] for row in EXPECTED_MODES]

    response = client.get("/api/v1/projects/acme/notes/export", headers=headers)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="acme-notes.csv"'
    assert len(read_csv(body(response).decode())) == 6

    assert client.get("/api/v1/projects/acme/notes/export?format=xml", headers=headers).status_code == 422
    _, foreign = api_token_create(project=make_project(slug="other", expert=expert), name="ci")
    foreign_headers = {"Authorization": f"Bearer {foreign}"}
    assert (
        client.get("/api/v1/projects/acme/notes/export", headers=foreign_headers).status_code == 404
    )  # as for a missing project
    assert client.get("/api/v1/projects/acme/failure-modes/export").status_code == 401


@uses_db
def test_rest_exports_answer_outsiders_404_and_viewers_200(outsider_client, viewer_client, coded):
    for url in ("/api/v1/projects/acme/failure-modes/export", "/api/v1/projects/acme/notes/export?format=json"):
        assert outsider_client.get(url).status_code == 404
        assert viewer_client.get(url).status_code == 200


# --- the import_taxonomy command ----------------------------------------------------------------------------------


def run(*args: str) -> tuple[str, CommandError | None]:
    out = io.StringIO()
    try:
        call_command("import_taxonomy", *args, stdout=out, stderr=io.StringIO())
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


@uses_db
def test_command_creates_missing_modes_and_redefines_existing_ones_with_history(project, expert, tmp_path):
    existing = FailureMode.objects.create(project=project, name="Hallucination", definition="old words")
    kept = FailureMode.objects.create(project=project, name="Tone", definition="keep me")
    path = write(
        tmp_path / "codebook.csv",
        "name,definition\n"
        "hallucination,Invents facts not in the context\n"  # another case: the same mode
        "tone,\n"  # a blank definition leaves the existing one alone
        "Refusal,Declines a fair request\n"
        "  Wrong   language ,\n",
    )
    output, error = run("--project", "acme", "--actor", "expert", path)
    assert error is None
    assert output.splitlines() == ["created 2, updated 1, unchanged 1, rejected 0"]

    existing.refresh_from_db()
    kept.refresh_from_db()
    assert (existing.name, existing.definition) == ("Hallucination", "Invents facts not in the context")
    assert kept.definition == "keep me"
    created = {mode.name: mode.definition for mode in FailureMode.objects.filter(project=project)}
    assert created["Refusal"] == "Declines a fair request"
    assert created["Wrong language"] == ""

    history = list(FailureModeChange.objects.filter(project=project).order_by("id"))
    assert [(change.failure_mode.name, change.action) for change in history] == [
        ("Hallucination", "redefined"),
        ("Refusal", "created"),
        ("Wrong language", "created"),
    ]
    assert (history[0].detail["from"], history[0].detail["to"]) == ("old words", "Invents facts not in the context")
    assert all(change.actor == expert for change in history)

    # The same file again changes nothing and writes no history.
    output, error = run("--project", "acme", path)
    assert error is None
    assert output.splitlines() == ["created 0, updated 0, unchanged 4, rejected 0"]
    assert FailureModeChange.objects.filter(project=project).count() == 3


@uses_db
def test_command_imports_the_good_rows_reports_each_bad_one_and_exits_1(project, tmp_path):
    long_row = "L" * 201 + ",x\n"
    path = write(tmp_path / "codebook.csv", "name,definition\nA,first\n,nameless\nB,second\na,again\n" + long_row)
    output, error = run("--project", "acme", path)
    assert error is not None and error.returncode == 1
    assert output.splitlines() == [
        "created 2, updated 0, unchanged 0, rejected 3",
        "row 3: the name is missing",
        "row 5: “a” is already named on row 2",
        "row 6: the name is 201 characters long; the limit is 200",
    ]
    assert sorted(FailureMode.objects.filter(project=project).values_list("name", flat=True)) == ["A", "B"]
    assert FailureModeChange.objects.filter(project=project, action="created").count() == 2


@uses_db
def test_strict_writes_nothing_when_any_row_is_bad(project, tmp_path):
    FailureMode.objects.create(project=project, name="A", definition="before")
    path = write(tmp_path / "codebook.json", json.dumps([{"name": "A", "definition": "after"}, {"name": "B"}, {}]))
    output, error = run("--project", "acme", "--strict", path)
    assert error is not None and error.returncode == 1
    assert output.splitlines() == [
        "created 0, updated 0, unchanged 0, rejected 1",
        "row 3: the name is missing",
        "nothing was written (--strict)",
    ]
    assert list(FailureMode.objects.filter(project=project).values_list("name", "definition")) == [("A", "before")]
    assert not FailureModeChange.objects.filter(project=project).exists()


@uses_db
def test_strict_rolls_back_rows_already_written_when_a_later_row_fails_in_the_codebook(project):
    # The file check folds case the Python way; the codebook's own rule is the database's case-insensitive match,
    # under which the dotless "ı" equals "I". The good row before the clash must be rolled back too.
    FailureMode.objects.create(project=project, name="TITLE")
    data = json.dumps([{"name": "new"}, {"name": "tıtle"}]).encode()
    report = codebook_import(project=project, data=data, fmt="json", actor=None, strict=True)
    assert [str(error) for error in report.errors] == [
        "row 2: A failure mode named “tıtle” already exists in this project"
    ]
    assert report.rolled_back and report.created == []
    assert list(FailureMode.objects.filter(project=project).values_list("name", flat=True)) == ["TITLE"]

    # Without --strict the good row stays and the clash is reported.
    report = codebook_import(project=project, data=data, fmt="json", actor=None)
    assert (report.created, len(report.errors), report.rolled_back) == (["new"], 1, False)
    assert sorted(FailureMode.objects.filter(project=project).values_list("name", flat=True)) == ["TITLE", "new"]


@uses_db
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("title,definition\nx,y\n", "row 1: unknown column “title”"),
        ('name\n"open quote\n', "malformed CSV"),
    ],
)
def test_command_names_the_problem_of_an_unreadable_file(project, tmp_path, content, message):
    path = write(tmp_path / "codebook.csv", content)
    _, error = run("--project", "acme", path)
    assert error is not None
    assert str(error).startswith(f"{path}: The codebook file cannot be read: ")
    assert message in str(error)
    assert not FailureMode.objects.filter(project=project).exists()


@uses_db
def test_command_refuses_a_missing_project_file_or_actor(project, tmp_path):
    assert "no project 'nope'" in str(run("--project", "nope", "x.csv")[1])
    assert "No such file or directory" in str(run("--project", "acme", str(tmp_path / "missing.csv"))[1])
    path = write(tmp_path / "c.csv", "name\nx\n")
    assert "no user 'ghost'" in str(run("--project", "acme", "--actor", "ghost", path)[1])


@uses_db
def test_a_codebook_exported_as_csv_imports_into_another_project_unchanged(project, expert, coded, tmp_path):
    path = tmp_path / "acme-failure-modes.csv"
    path.write_text(failure_modes_export(project=project, fmt="csv"), encoding="utf-8")
    other = make_project(slug="other", expert=expert)
    output, error = run("--project", "other", str(path))
    assert error is None, output
    assert output.splitlines() == ["created 4, updated 0, unchanged 0, rejected 0"]
    # Names come back without the formula apostrophe; retirement and counts are not part of a codebook.
    assert dict(FailureMode.objects.filter(project=other).values_list("name", "definition")) == {
        mode.name: mode.definition for mode in coded.values()
    }


# --- the upload page ----------------------------------------------------------------------------------------------


@uses_db
def test_expert_uploads_a_codebook_and_sees_what_happened(expert_client, project):
    upload = SimpleUploadedFile("codebook.csv", b"name,definition\nHallucination,Invents facts\n,oops\n")
    response = expert_client.post(reverse("codebook_upload", args=["acme"]), {"file": upload})
    assert response.status_code == 200
    page = response.content.decode()
    assert "created 1, updated 0, unchanged 0, rejected 1" in page
    assert "row 3: the name is missing" in page
    change = FailureModeChange.objects.get(project=project)
    assert (change.failure_mode.name, change.action, change.actor.username) == ("Hallucination", "created", "expert")


@uses_db
def test_engineer_strict_upload_of_a_bad_file_writes_nothing(teammate_client, project):
    upload = SimpleUploadedFile("codebook.json", b'[{"name": "A"}, {"name": "a"}]')
    response = teammate_client.post(reverse("codebook_upload", args=["acme"]), {"file": upload, "strict": "on"})
    assert response.status_code == 200
    assert "Nothing was imported" in response.content.decode()
    assert "row 2: “a” is already named on row 1" in response.content.decode()
    assert not FailureMode.objects.filter(project=project).exists()


@uses_db
@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("codebook.txt", b"name\nx\n", "is neither a .csv nor a .json file"),
        ("codebook.json", b"{not json", "The codebook file cannot be read: not valid JSON"),
        ("codebook.csv", b"", "The submitted file is empty."),
    ],
)
def test_a_bad_upload_is_refused_with_a_clear_message(expert_client, project, filename, data, message):
    response = expert_client.post(
        reverse("codebook_upload", args=["acme"]), {"file": SimpleUploadedFile(filename, data)}
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not FailureMode.objects.filter(project=project).exists()


@uses_db
def test_untrusted_names_are_escaped_on_the_upload_report(expert_client, project):
    upload = SimpleUploadedFile("c.json", json.dumps([{"name": "<script>alert(1)</script>"}, {"name": 5}]).encode())
    page = expert_client.post(reverse("codebook_upload", args=["acme"]), {"file": upload}).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@uses_db
def test_viewers_see_the_import_page_without_a_form_and_get_403_on_post(viewer_client, project):
    page = viewer_client.get(reverse("codebook_upload", args=["acme"]))
    assert page.status_code == 200
    assert 'type="file"' not in page.content.decode()
    upload = SimpleUploadedFile("c.csv", b"name\nx\n")
    assert viewer_client.post(reverse("codebook_upload", args=["acme"]), {"file": upload}).status_code == 403
    assert not FailureMode.objects.filter(project=project).exists()


@uses_db
def test_the_upload_needs_the_csrf_token(expert, project):
    client = Client(enforce_csrf_checks=True)
    client.force_login(expert)
    upload = SimpleUploadedFile("c.csv", b"name\nx\n")
    assert client.post(reverse("codebook_upload", args=["acme"]), {"file": upload}).status_code == 403
    assert not FailureMode.objects.filter(project=project).exists()


# --- coded notes through import_traces / export_traces ------------------------------------------------------------

CODED_TRACES = [
    {
        "id": "r1",
        "input": "How many reactors?",
        "output": "94.",
        "labels": [{"criterion": "factual", "verdict": "fail", "critique": "There are 92."}],
        "notes": [
            {"text": "Invents a number", "failure_modes": ["hallucination", "overconfident"]},
            "uncoded remark",
        ],
    },
    {
        "id": "r2",
        "input": "Refund?",
        "output": "No.",
        "labels": [{"criterion": "factual", "verdict": "pass"}],
        "notes": [
            {"text": "Curt", "failure_modes": ["tone"]},
            {"text": "Makes up policy", "failure_modes": ["hallucination"]},
        ],
    },
    {
        "id": "r3",
        "input": "Hi",
        "output": "Yo, what, up",
        "labels": [{"criterion": "polite", "verdict": "fail"}],
        "notes": [{"text": 'Slang, "casual"\nand more', "failure_modes": ["tone"]}],
    },
    {"id": "r4", "input": "unreviewed", "output": "nothing to say"},
]


def counts_by_name(project: Project) -> list[tuple]:
    return [
        (c.name, c.trace_count, c.note_count, c.share_of_reviewed_traces, c.share_of_failing_traces)
        for c in failure_mode_counts(project=project)
    ]


def api_counts(client: Client, slug: str) -> list[tuple]:
    response = client.get(f"/api/v1/projects/{slug}/failure-modes")
    assert response.status_code == 200
    return [
        (row["name"], row["trace_count"], row["note_count"], row["share_of_failing_traces"]) for row in response.json()
    ]


@uses_db
def test_coded_notes_survive_export_traces_and_reimport_into_a_new_project(project, expert_client, tmp_path):
    source = tmp_path / "coded.jsonl"
    source.write_text("".join(json.dumps(record) + "\n" for record in CODED_TRACES), encoding="utf-8")
    call_command("import_traces", "--project", "acme", str(source), stdout=io.StringIO(), stderr=io.StringIO())
    expected = [
        ("hallucination", 2, 2, 2 / 3, 1 / 2),
        ("tone", 2, 2, 2 / 3, 1 / 2),
        ("overconfident", 1, 1, 1 / 3, 1 / 2),
    ]
    assert counts_by_name(project) == expected

    exported = tmp_path / "acme.jsonl"
    call_command("export_traces", "--project", "acme", str(exported), stderr=io.StringIO())
    records = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert records[0]["notes"] == [
        {"text": "Invents a number", "failure_modes": ["hallucination", "overconfident"]},
        "uncoded remark",
    ]

    call_command(
        "import_traces",
        "--project",
        "copy",
        "--create-project",
        "--expert",
        "expert",
        str(exported),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    copy = Project.objects.get(slug="copy")
    assert counts_by_name(copy) == expected
    assert Trace.objects.filter(project=copy).count() == 4
    assert api_counts(expert_client, "copy") == api_counts(expert_client, "acme")
    assert api_counts(expert_client, "copy") == [(name, t, n, failing) for name, t, n, _, failing in expected]

    # And the copy exports byte for byte what the original did.
    again = tmp_path / "copy.jsonl"
    call_command("export_traces", "--project", "copy", str(again), stderr=io.StringIO())
    assert again.read_bytes() == exported.read_bytes()


# --- the export_taxonomy command ----------------------------------------------------------------------------------


@uses_db
def test_export_command_writes_the_same_files_as_the_downloads(project, coded, tmp_path):
    for args, expected in [
        (["modes.csv"], failure_modes_export(project=project, fmt="csv")),
        (["modes.json"], failure_modes_export(project=project, fmt="json")),
        (["--notes", "notes.csv"], "".join(notes_export_csv(project=project))),
        (["--notes", "--format", "json", "notes.out"], "".join(notes_export_json(project=project))),
    ]:
        path = tmp_path / args[-1]
        err = io.StringIO()
        call_command("export_taxonomy", "--project", "acme", *args[:-1], str(path), stderr=err)
        assert path.read_text(encoding="utf-8") == expected
        assert f"to {path}" in err.getvalue()
    assert len(read_csv((tmp_path / "notes.csv").read_text(encoding="utf-8"))) == 6
    with pytest.raises(CommandError, match="no project 'nope'"):
        call_command("export_taxonomy", "--project", "nope", str(tmp_path / "x.csv"))


# --- the notes export, imported back ------------------------------------------------------------------------------


def test_a_notes_csv_parses_back_into_entries_and_row_errors():
    data = (
        b"note_id,trace_external_id,author,created_at,text,failure_modes\n"
        b"1,t-1,expert,2026-11-01T12:00:00.5Z,\"'=looks, like a formula\",'=tone; hallucination\n"
        b"2,t-1,expert,,plain,\n"
        b"3,t-2,,2026-11-01T12:00:00Z,no author,\n"
        b"4,t-2,expert,yesterday,bad time,\n"
        b"5,t-2,expert,,   ,x\n"
        b"6,t-1,expert,,plain,tone\n"
        b"7,t-3,teammate,2026-11-01T12:00:00,naive time,a;b; a\n"
    )
    entries, errors = parse_notes_file(data, fmt="csv", max_name_chars=200, max_text_chars=100, max_id_chars=255)
    assert entries == [
        NoteEntry(
            2,
            "t-1",
            "expert",
            "=looks, like a formula",
            ("=tone", "hallucination"),
            datetime(2026, 11, 1, 12, 0, 0, 500000, tzinfo=UTC),
        ),
        NoteEntry(3, "t-1", "expert", "plain", (), None),
        NoteEntry(8, "t-3", "teammate", "naive time", ("a", "b"), datetime(2026, 11, 1, 12, tzinfo=UTC)),
    ]
    assert [str(error) for error in errors] == [
        "row 4: author is missing",
        "row 5: created_at: 'yesterday' is not an ISO 8601 timestamp like 2026-11-01T12:00:00Z",
        "row 6: text is missing",
        "row 7: the same note on the same trace is already on row 3",
    ]


def test_a_notes_json_with_bad_items_names_each():
    items = [
        {"note_id": 1, "trace_external_id": "t-1", "author": "expert", "text": "ok", "failure_modes": ["a"]},
        {"trace_external_id": "t-1", "author": "expert", "text": "modes not a list", "failure_modes": 3},
        {"trace_external_id": 7, "author": "expert", "text": "id not text"},
        {"trace_external_id": "t-1", "author": "expert", "text": "x" * 101},
        {"trace_external_id": "t-1", "author": "expert", "text": "m", "failure_modes": ["y" * 201]},
        {"trace_external_id": "t-1", "author": "expert", "text": "k", "mood": "sad"},
    ]
    entries, errors = parse_notes_file(
        json.dumps(items).encode(), fmt="json", max_name_chars=200, max_text_chars=100, max_id_chars=255
    )
    assert entries == [NoteEntry(1, "t-1", "expert", "ok", ("a",), None)]
    assert [str(error) for error in errors] == [
        "row 2: failure_modes: expected a list of names, got int",
        "row 3: trace_external_id: expected text, got int",
        "row 4: text is 101 characters long; the limit is 100",
        "row 5: failure mode “" + "y" * 40 + "…” is 201 characters long; the limit is 200",
        "row 6: unknown key “mood”; a note has trace_external_id, author, text, failure_modes, created_at",
    ]


def copy_of(project: Project, expert: User, teammate: User) -> Project:
    """A project with the same traces (by external id) and members, and no notes yet."""
    copy = make_project(slug="copy", expert=expert)
    add_member(copy, teammate, Role.ENGINEER)
    for external_id in Trace.objects.filter(project=project).values_list("external_id", flat=True):
        make_trace(project=copy, external_id=external_id)
    return copy


def mode_totals(project: Project) -> list[tuple[str, int, int, float]]:
    return sorted(
        (c.name, c.trace_count, c.note_count, c.share_of_reviewed_traces)
        for c in failure_mode_counts(project=project)
        if c.trace_count
    )


def notes_by_trace(project: Project) -> set[tuple]:
    return {
        (
            note.trace.external_id,
            note.author.username,
            note.text,
            note.created_at,
            tuple(sorted(m.name for m in note.failure_modes.all())),
        )
        for note in Note.objects.filter(trace__project=project)
        .select_related("trace", "author")
        .prefetch_related("failure_modes")
    }


@uses_db
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_the_notes_export_imports_into_a_project_with_the_same_traces(project, expert, teammate, coded, fmt):
    # A note with text a spreadsheet would run, to show the apostrophe comes off again.
    code_note(make_note(trace=Trace.objects.get(external_id="t0"), author=teammate, text="=SUM(A1)"), coded["=tone"])
    data = "".join((notes_export_csv if fmt == "csv" else notes_export_json)(project=project)).encode()
    copy = copy_of(project, expert, teammate)

    report = notes_import(project=copy, data=data, fmt=fmt, actor=expert)
    assert report.errors == []
    assert (report.created, report.coded, report.unchanged) == (7, 7, 0)
    assert sorted(report.modes_created) == ["=tone", "hallucination", "old"]
    assert notes_by_trace(copy) == notes_by_trace(project)
    # Same counts per mode; the expert's notes marked every trace reviewed, as in the original.
    assert mode_totals(copy) == mode_totals(project)
    assert set(FailureModeChange.objects.filter(project=copy).values_list("action", flat=True)) == {"created"}

    again = notes_import(project=copy, data=data, fmt=fmt, actor=expert)
    assert (again.created, again.coded, again.unchanged, again.errors) == (0, 0, 7, [])
    assert Note.objects.filter(trace__project=copy).count() == 7


@uses_db
def test_notes_import_adds_missing_modes_to_a_note_already_there(project, expert):
    trace = make_trace(project=project, external_id="t-1")
    note = code_note(
        make_note(trace=trace, author=expert, text="curt"), FailureMode.objects.create(project=project, name="tone")
    )
    data = json.dumps(
        [{"trace_external_id": "t-1", "author": "expert", "text": "curt", "failure_modes": ["Tone", "rude"]}]
    )
    report = notes_import(project=project, data=data.encode(), fmt="json", actor=None)
    assert (report.created, report.coded, report.unchanged, report.modes_created) == (0, 1, 0, ["rude"])
    assert sorted(note.failure_modes.values_list("name", flat=True)) == ["rude", "tone"]


@uses_db
def test_notes_import_command_reports_unmatched_rows_and_strict_writes_nothing(project, expert, outsider, tmp_path):
    make_trace(project=project, external_id="t-1")
    FailureMode.objects.create(project=project, name="old", retired_at=T0)
    rows = [
        {"trace_external_id": "t-1", "author": "expert", "text": "kept", "failure_modes": ["new mode"]},
        {"trace_external_id": "t-404", "author": "expert", "text": "no trace"},
        {"trace_external_id": "t-1", "author": "outsider", "text": "not a member"},
        {"trace_external_id": "t-1", "author": "expert", "text": "retired", "failure_modes": ["OLD"]},
    ]
    path = write(tmp_path / "notes.json", json.dumps(rows))
    errors = [
        "row 2: no trace “t-404” in this project",
        "row 3: “outsider” is not a member of this project",
        "row 4: failure mode “old” is retired; restore it first",
    ]

    output, error = run("--project", "acme", "--notes", "--strict", path)
    assert error is not None and error.returncode == 1
    assert output.splitlines() == [
        "notes created 0, links coded 0, unchanged 0, failure modes created 0, rejected 3",
        *errors,
        "nothing was written (--strict)",
    ]
    assert not Note.objects.exists()
    assert not FailureMode.objects.filter(name="new mode").exists()

    output, error = run("--project", "acme", "--notes", path)
    assert error is not None and error.returncode == 1
    assert output.splitlines() == [
        "notes created 1, links coded 1, unchanged 0, failure modes created 1, rejected 3",
        *errors,
    ]
    note = Note.objects.get()
    assert (note.text, note.author, list(note.failure_modes.values_list("name", flat=True))) == (
        "kept",
        expert,
        ["new mode"],
    )
    note.trace.refresh_from_db()
    assert note.trace.reviewed_at == note.created_at  # the expert's note marks the trace reviewed


@uses_db
def test_notes_import_refuses_an_unreadable_file(project, tmp_path):
    path = write(tmp_path / "notes.csv", "note_id,text\n1,hello\n")
    _, error = run("--project", "acme", "--notes", path)
    assert str(error) == (
        f"{path}: The notes file cannot be read: row 1: there is no “trace_external_id” column "
        "(the header is: note_id, text)"
    )


@uses_db
def test_a_mode_the_codebook_refuses_during_a_notes_import_names_its_row_and_writes_nothing(project, expert):
    make_trace(project=project, external_id="t-1")
    FailureMode.objects.create(project=project, name="TITLE")
    data = json.dumps(
        [
            {"trace_external_id": "t-1", "author": "expert", "text": "fine", "failure_modes": ["fresh"]},
            {"trace_external_id": "t-1", "author": "expert", "text": "clash", "failure_modes": ["tıtle"]},
        ]
    ).encode()
    with pytest.raises(DomainError, match="^row 2: A failure mode named “tıtle” already exists in this project$"):
        notes_import(project=project, data=data, fmt="json", actor=None)
    assert not Note.objects.exists()
    assert list(FailureMode.objects.filter(project=project).values_list("name", flat=True)) == ["TITLE"]


@uses_db
def test_an_oversized_codebook_upload_is_refused_before_it_is_read(expert_client, project, monkeypatch):
    from annotation.views import taxonomy_io as views

    monkeypatch.setattr(views, "CODEBOOK_MAX_BYTES", 10)
    upload = SimpleUploadedFile("codebook.csv", b"name\nsomething longer\n")
    response = expert_client.post(reverse("codebook_upload", args=["acme"]), {"file": upload})
    assert response.status_code == 400
    assert "a codebook file is limited to 10\xa0bytes" in response.content.decode()
    assert not FailureMode.objects.filter(project=project).exists()
