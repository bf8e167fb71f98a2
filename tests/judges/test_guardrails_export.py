"""`manage.py export_guardrails`: a module an application runs without EvalStudio, and a pytest file of the expert's
examples that passes as exported (run in a subprocess, as an application would) and fails when a check is tampered
with."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from judges.guardrails import guardrail_mark, guardrails_check
from judges.guardrails_export import MODULE_FILE, TEST_FILE
from tests.judges.guardrail_fixtures import NO_APOLOGY, NO_PHONE, aligned_judge

pytestmark = pytest.mark.django_db

# A schema check on JSON answers, with a pattern that holds both quote kinds and a backslash: data, never code.
SCHEMA = {
    "check": "json_schema",
    "schema": {
        "type": "object",
        "required": ["answer"],
        "properties": {"answer": {"type": "string", "pattern": "^[^'\"\\\\]*$"}},
    },
}


@pytest.fixture
def marked(project, expert):
    judges = [
        aligned_judge(project, criterion="no_phone", name="phone", config=NO_PHONE, bad_output="Call 555-1234."),
        aligned_judge(project, criterion="no_apology", name="apology", config=NO_APOLOGY, bad_output="Sorry!"),
    ]
    for judge in judges:
        guardrail_mark(version=judge.latest_version(), user=expert)
    return judges


def export(out_dir: Path, slug: str = "acme") -> str:
    out = StringIO()
    call_command("export_guardrails", "--project", slug, str(out_dir), stdout=out, stderr=StringIO())
    return out.getvalue()


def run_pytest(out_dir: Path) -> subprocess.CompletedProcess[str]:
    """The exported tests as an application runs them: a fresh interpreter in the folder, no EvalStudio on the path,
    no Django settings (so the repository's pytest-django plugin stays out of it)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO", "PYTHON"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:django", str(out_dir)],
        capture_output=True,
        text=True,
        cwd=out_dir,
        env=env,
        timeout=300,
        check=False,
    )


def test_the_exported_examples_pass_in_a_fresh_interpreter(marked, tmp_path):
    printed = export(tmp_path)
    assert "(2 checks)" in printed and "84 expert-labelled examples, 0 known disagreements" in printed
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "85 passed" in result.stdout  # 84 examples and the check that every guardrail has some


def test_without_regex_or_jsonschema_installed_the_text_checks_run_on_the_standard_library(marked, tmp_path):
    export(tmp_path)
    # As if neither package were installed: importing either raises ImportError.
    code = (
        "import sys; sys.modules.update(regex=None, jsonschema=None, referencing=None); import pytest; "
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-p', 'no:django', '.']))"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO", "PYTHON"))}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "85 passed" in result.stdout


def test_tampering_with_a_check_makes_the_exported_tests_fail(marked, tmp_path):
    export(tmp_path)
    module = tmp_path / MODULE_FILE
    text = module.read_text()
    assert text.count('"must_match": false') == 1
    module.write_text(text.replace('"must_match": false', '"must_match": true'))
    result = run_pytest(tmp_path)
    assert result.returncode == 1
    assert "42 failed, 43 passed" in result.stdout, result.stdout
    assert "phone now says fail" in result.stdout


def test_the_module_imports_nothing_of_evalstudio_and_holds_user_text_only_as_data(project, expert, tmp_path):
    passes = [('{"answer": "Your card is frozen."}', "pass")] * 10
    judge = aligned_judge(
        project, criterion="json_answer", name="schema", config=SCHEMA, bad_output='{"answer": "it\'s"}', passes=passes
    )
    guardrail_mark(version=judge.latest_version(), user=expert)
    export(tmp_path)
    tree = ast.parse((tmp_path / MODULE_FILE).read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "contextvars", "json", "re", "collections", "dataclasses", "typing"} | {
        "regex",
        "jsonschema",
        "referencing",
    }
    # The pattern appears only inside the one string literal that json.loads parses.
    literals = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and "^[^'" in str(node.value)]
    assert len(literals) == 1 and literals[0].startswith("[{")
    assert (tmp_path / "requirements.txt").read_text().startswith("jsonschema")
    assert run_pytest(tmp_path).returncode == 0


def test_the_exported_module_answers_as_the_route_does(marked, project, tmp_path):
    export(tmp_path)
    code = (
        "import json, sys; import evalstudio_guardrails as g; "
        "print(json.dumps([g.check_answer(o) for o in json.loads(sys.argv[1])]))"
    )
    outputs = ["Sorry, call 555-1234.", "All good.", "sorry"]
    import json

    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO", "PYTHON"))}
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(outputs)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=True,
    )
    assert json.loads(result.stdout) == [guardrails_check(project_id=project.pk, output=o) for o in outputs]


def test_a_project_without_guardrails_exports_a_module_that_allows_everything(project, tmp_path):
    printed = export(tmp_path)
    assert "(0 checks)" in printed
    assert (tmp_path / TEST_FILE).exists()


def test_an_unknown_project_is_an_error_naming_it(tmp_path):
    with pytest.raises(CommandError, match="--project: no project 'nope'"):
        export(tmp_path, slug="nope")
