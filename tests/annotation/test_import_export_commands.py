"""`import_traces`, `export_traces` and `create_api_token`, as a user runs them."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from annotation.models import ApiToken, Label, Note, Project, Trace
from tests.factories import make_user

pytestmark = pytest.mark.django_db

RICH = [
    {
        "id": "t-1",
        "input": "How many reactors?",
        "output": "94 — the most in the world.",
        "messages": [
            {"role": "user", "content": "How many reactors?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "92"},
            {"role": "assistant", "content": "94 — the most in the world."},
        ],
        "context": ["passage, with a comma", 'and "quotes"\nand a newline'],
        "metadata": {"model": "gpt-x", "nested": {"score": 0.25, "flags": [True, None]}},
        "session_id": "s-9",
        "task_id": "task-4",
        "trial": 2,
        "source": "production",
        "timestamp": "2026-11-01T12:00:00.123456Z",
        "labels": [
            {"criterion": "grounded", "verdict": "pass"},
            {"criterion": "factual", "verdict": "fail", "critique": "Claims 94 reactors; there are 92."},
        ],
        "notes": ["Invents a statistic", {"text": "coded", "failure_modes": ["overclaiming", "hallucination"]}],
        "reference": ["92 reactors", {"regex": "\\b92\\b"}],
    },
    {"id": "t-2", "output": "Only an output, ünïcode ✓", "timestamp": "2026-11-02T00:00:00Z", "reference": "Ünï, ✓"},
    {"input": "no id, so a content hash", "context": "one passage"},
]


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def run(*args: str) -> tuple[str, CommandError | None]:
    out = io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=io.StringIO())
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def test_import_prints_counts_and_exits_cleanly(project, tmp_path):
    output, error = run("import_traces", "--project", "acme", str(write_jsonl(tmp_path / "t.jsonl", RICH)))
    assert error is None
    assert output.strip() == "created 3, duplicates 0, rejected 0"
    assert Trace.objects.filter(project=project).count() == 3


def test_rejected_lines_are_printed_and_the_status_is_1(project, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "a", "input": "q"}\n{"id": "b", "trial": "two", "input": "q"}\n{"inptu": "x"}\n')
    output, error = run("import_traces", "--project", "acme", str(path))
    assert output.splitlines() == [
        "created 1, duplicates 0, rejected 2",
        'line 2: trial: expected an integer, got "two"',
        "line 3: unknown field 'inptu' (did you mean 'input'?)",
    ]
    assert error is not None and error.returncode == 1


def test_reimporting_the_same_file_creates_no_duplicates(project, tmp_path):
    path = str(write_jsonl(tmp_path / "t.jsonl", RICH))
    run("import_traces", "--project", "acme", path)
    output, error = run("import_traces", "--project", "acme", path)
    assert (output.strip(), error) == ("created 0, duplicates 3, rejected 0", None)
    assert (Trace.objects.count(), Label.objects.count(), Note.objects.count()) == (3, 2, 2)


def test_strict_writes_nothing_when_a_line_is_bad(project, tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [*RICH, {"id": "bad", "timestamp": "soon", "input": "q"}])
    output, error = run("import_traces", "--project", "acme", "--strict", str(path))
    assert output.splitlines() == [
        "created 0, duplicates 0, rejected 1",
        'line 4: timestamp: not an ISO 8601 date-time: "soon"',
        "nothing was written (--strict)",
    ]
    assert error.returncode == 1
    assert Trace.objects.count() == 0 and Label.objects.count() == 0


def test_on_conflict_update_reports_updates(project, tmp_path):
    path = str(write_jsonl(tmp_path / "t.jsonl", RICH))
    run("import_traces", "--project", "acme", path)
    output, _ = run("import_traces", "--project", "acme", "--on-conflict", "update", path)
    assert output.strip() == "created 0, duplicates 0, rejected 0, updated 3"


def test_stdin_is_read_with_a_dash(project, monkeypatch):
    data = b'{"id": "from-stdin", "input": "q"}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    output, error = run("import_traces", "--project", "acme", "-")
    assert (output.strip(), error) == ("created 1, duplicates 0, rejected 0", None)
    assert Trace.objects.filter(external_id="from-stdin").exists()


def test_csv_is_chosen_by_extension(project, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,input,trial\nc-1,hello,3\n")
    output, _ = run("import_traces", "--project", "acme", str(path))
    assert output.strip() == "created 1, duplicates 0, rejected 0"
    assert Trace.objects.get(external_id="c-1").trial == 3


def test_unknown_project_needs_create_project(db, tmp_path):
    path = str(write_jsonl(tmp_path / "t.jsonl", RICH[1:2]))
    _, error = run("import_traces", "--project", "fresh", path)
    assert str(error) == "no project 'fresh'; pass --create-project to create it"
    output, error = run("import_traces", "--project", "fresh", "--create-project", path)
    assert error is None and output.strip() == "created 1, duplicates 0, rejected 0"
    assert Project.objects.get(slug="fresh").traces.count() == 1


def test_expert_flag_sets_the_expert_so_labels_import(db, tmp_path):
    make_user("ann")
    path = str(write_jsonl(tmp_path / "t.jsonl", RICH[:1]))
    output, error = run("import_traces", "--project", "new", "--create-project", "--expert", "ann", path)
    assert error is None
    assert Project.objects.get(slug="new").expert.username == "ann"
    assert Label.objects.filter(author__username="ann").count() == 2


def test_unknown_expert_is_an_error_naming_them(db, tmp_path):
    path = str(write_jsonl(tmp_path / "t.jsonl", RICH[:1]))
    _, error = run("import_traces", "--project", "new", "--create-project", "--expert", "nobody", path)
    assert str(error) == "--expert: no user named 'nobody'"


def test_labels_without_an_expert_are_rejected_with_advice(db, tmp_path):
    path = str(write_jsonl(tmp_path / "t.jsonl", RICH[:2]))
    output, error = run("import_traces", "--project", "new", "--create-project", path)
    assert output.splitlines() == [
        "created 1, duplicates 0, rejected 1",
        "line 1: labels need a project expert; pass --expert USERNAME or set one",
    ]
    assert error.returncode == 1


def test_empty_file_is_a_clear_error(project, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    _, error = run("import_traces", "--project", "acme", str(path))
    assert str(error) == f"{path}: the file is empty"


def test_missing_file_is_a_clear_error(project, tmp_path):
    _, error = run("import_traces", "--project", "acme", str(tmp_path / "nope.jsonl"))
    assert str(error) == f"{tmp_path / 'nope.jsonl'}: No such file or directory"


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_then_import_then_export_is_byte_identical(project, expert, tmp_path, fmt):
    run("import_traces", "--project", "acme", str(write_jsonl(tmp_path / "in.jsonl", RICH)))
    first, second = tmp_path / f"first.{fmt}", tmp_path / f"second.{fmt}"
    call_command("export_traces", "--project", "acme", str(first), stderr=io.StringIO())
    make_user("bob")
    output, error = run("import_traces", "--project", "copy", "--create-project", "--expert", "bob", str(first))
    assert (output.strip(), error) == ("created 3, duplicates 0, rejected 0", None)
    call_command("export_traces", "--project", "copy", str(second), stderr=io.StringIO())
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes().count(b"hallucination") == 1


def test_export_writes_labels_notes_and_failure_modes(project, tmp_path):
    run("import_traces", "--project", "acme", str(write_jsonl(tmp_path / "in.jsonl", RICH)))
    out = tmp_path / "out.jsonl"
    call_command("export_traces", "--project", "acme", str(out), stderr=io.StringIO())
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert first["labels"] == [
        {"criterion": "factual", "verdict": "fail", "critique": "Claims 94 reactors; there are 92."},
        {"criterion": "grounded", "verdict": "pass"},
    ]
    assert first["notes"] == [
        "Invents a statistic",
        {"text": "coded", "failure_modes": ["hallucination", "overclaiming"]},
    ]
    assert first["timestamp"] == "2026-11-01T12:00:00.123456Z"


def test_export_to_parquet_has_one_row_per_trace(project, tmp_path):
    import pandas as pd

    run("import_traces", "--project", "acme", str(write_jsonl(tmp_path / "in.jsonl", RICH)))
    out = tmp_path / "out.parquet"
    call_command("export_traces", "--project", "acme", str(out), stderr=io.StringIO())
    frame = pd.read_parquet(out)
    assert list(frame["id"])[:2] == ["t-1", "t-2"]
    assert json.loads(frame["labels"][0])[0]["criterion"] == "factual"
    assert frame["trial"][0] == 2


def test_create_api_token_prints_it_once_and_stores_only_the_hash(project):
    out = io.StringIO()
    call_command("create_api_token", "--project", "acme", "--name", "ci", stdout=out, stderr=io.StringIO())
    raw = out.getvalue().strip()
    token = ApiToken.objects.get(project=project)
    assert raw.startswith("es_") and token.name == "ci"
    assert token.token_hash == ApiToken.hash(raw) and raw not in token.token_hash


def test_create_api_token_for_an_unknown_project_is_an_error(db):
    with pytest.raises(CommandError, match="no project 'nope'"):
        call_command("create_api_token", "--project", "nope", "--name", "ci")


@pytest.mark.django_db(transaction=True)
def test_the_real_command_exits_1_and_reads_stdin(tmp_path):
    # A real process: exit status and stdin are what a shell script sees.
    make_user("ann")
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{connection.settings_dict['USER']}@{connection.settings_dict['HOST']}:"
            f"{connection.settings_dict['PORT']}/{connection.settings_dict['NAME']}"
        ),
    }
    data = b'{"id": "ok", "input": "q"}\n{"id": "bad"}\n'
    result = subprocess.run(
        [sys.executable, "manage.py", "import_traces", "--project", "cli", "--create-project", "-"],
        input=data,
        capture_output=True,
        cwd=settings.BASE_DIR,
        env=env,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout.decode().splitlines() == [
        "created 1, duplicates 0, rejected 1",
        "line 2: at least one of input, output or messages is required",
    ]
    assert Trace.objects.filter(project__slug="cli").count() == 1
