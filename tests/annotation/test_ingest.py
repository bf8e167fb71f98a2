"""The ingestion service: batches, conflicts, labels and notes, strict mode — on both write paths."""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from annotation import ingest, ingest_batches
from annotation.ingest import NO_EXPERT_ERROR, IngestError, import_records, import_stream
from annotation.models import Criterion, FailureMode, Label, LabelChange, Note, Trace
from annotation.trace_format import from_binarized
from tests.factories import make_criterion, make_project

pytestmark = pytest.mark.django_db

DATA = Path("/work/shared/data")


@pytest.fixture(params=["copy", "orm"])
def write_path(request, monkeypatch) -> str:
    """Run a test on PostgreSQL's COPY path and on the portable bulk_create path (what SQLite uses)."""
    if request.param == "orm":
        monkeypatch.setattr(ingest, "_use_copy", lambda: False)
    return request.param


def lines(*records: object) -> io.BytesIO:
    return io.BytesIO(b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records))


def labelled(external_id: str, verdict: str = "fail", critique: str = "wrong", **extra: object) -> dict:
    return {
        "id": external_id,
        "input": f"q {external_id}",
        "output": f"a {external_id}",
        "labels": [{"criterion": "factual", "verdict": verdict, "critique": critique}],
        **extra,
    }


def test_import_writes_every_field_of_a_trace(project, write_path):
    record = {
        "id": "t-1",
        "input": "q",
        "output": "a",
        "messages": [{"role": "user", "content": "q"}],
        "context": "passage",
        "metadata": {"model": "gpt-x"},
        "session_id": "s-9",
        "task_id": "task-4",
        "trial": 2,
        "source": "production",
        "timestamp": "2026-11-01T12:00:00Z",
    }
    report = import_stream(project=project, stream=lines(record))
    assert (report.created, report.duplicates, report.rejected) == (1, 0, [])
    trace = Trace.objects.get(project=project, external_id="t-1")
    assert (trace.input, trace.output, trace.context, trace.metadata) == ("q", "a", ["passage"], {"model": "gpt-x"})
    assert trace.messages == [{"role": "user", "content": "q"}]
    assert (trace.session_id, trace.task_id, trace.trial, trace.source) == ("s-9", "task-4", 2, "production")
    assert trace.occurred_at == datetime(2026, 11, 1, 12, tzinfo=UTC)
    assert trace.shuffle_key == project.shuffle_key("t-1")
    assert trace.reviewed_at is None


def test_a_trace_without_timestamp_happened_at_import_time(project, write_path):
    before = datetime.now(UTC)
    import_stream(project=project, stream=lines({"id": "t", "input": "q"}))
    assert Trace.objects.get(external_id="t").occurred_at >= before


def test_labels_and_notes_land_with_the_trace(project, expert, write_path):
    make_criterion(project=project, name="existing", position=4)
    record = labelled("t-1", notes=["Invents a statistic", {"text": "coded", "failure_modes": ["hallucination"]}])
    import_stream(project=project, stream=lines(record))
    trace = Trace.objects.get(external_id="t-1")
    label = Label.objects.get(trace=trace)
    assert (label.criterion.name, label.verdict, label.critique, label.author) == ("factual", "fail", "wrong", expert)
    assert label.criterion.position == 5  # created after the existing criteria
    assert list(label.changes.values_list("verdict", "critique")) == [("fail", "wrong")]
    notes = list(trace.notes.all())
    assert [(n.text, n.author) for n in notes] == [("Invents a statistic", expert), ("coded", expert)]
    assert [m.name for m in notes[1].failure_modes.all()] == ["hallucination"]
    assert trace.reviewed_at is not None


def test_reimporting_the_same_file_changes_nothing(project, write_path):
    data = lines(labelled("t-1", notes=[{"text": "n", "failure_modes": ["m"]}]), {"input": "no id"})
    first = import_stream(project=project, stream=io.BytesIO(data.getvalue()))
    reviewed_at = Trace.objects.get(external_id="t-1").reviewed_at
    second = import_stream(project=project, stream=io.BytesIO(data.getvalue()))
    assert (first.created, first.duplicates) == (2, 0)
    assert (second.created, second.duplicates, second.updated) == (0, 2, 0)
    assert Trace.objects.filter(project=project).count() == 2
    assert Note.objects.count() == 1
    assert LabelChange.objects.count() == 1
    assert FailureMode.objects.filter(project=project).count() == 1
    assert Trace.objects.get(external_id="t-1").reviewed_at == reviewed_at


def test_update_changes_fields_and_labels_and_adds_only_new_notes(project, write_path):
    import_stream(project=project, stream=lines(labelled("t-1", notes=["first"], timestamp="2026-01-01T00:00:00Z")))
    changed = labelled("t-1", verdict="pass", critique="fine after all", notes=["first", "second"])
    changed["output"] = "better answer"
    report = import_stream(project=project, stream=lines(changed), on_conflict="update")
    assert (report.created, report.updated, report.duplicates) == (0, 1, 0)
    trace = Trace.objects.get(external_id="t-1")
    assert trace.output == "better answer"
    assert trace.occurred_at == datetime(2026, 1, 1, tzinfo=UTC)  # no timestamp in the update: unchanged
    label = Label.objects.get(trace=trace)
    assert (label.verdict, label.critique) == ("pass", "fine after all")
    assert list(label.changes.order_by("id").values_list("verdict", flat=True)) == ["fail", "pass"]
    assert list(trace.notes.values_list("text", flat=True)) == ["first", "second"]


def test_update_with_an_unchanged_label_adds_no_history(project, write_path):
    import_stream(project=project, stream=lines(labelled("t-1")))
    report = import_stream(project=project, stream=lines(labelled("t-1")), on_conflict="update")
    assert report.updated == 1
    assert LabelChange.objects.count() == 1


def test_labels_without_a_project_expert_are_rejected_per_line(write_path):
    project = make_project(slug="no-expert")
    report = import_stream(project=project, stream=lines({"id": "plain", "input": "q"}, labelled("t-1")))
    assert report.created == 1
    assert [(r.line, r.id, r.error) for r in report.rejected] == [(2, "t-1", NO_EXPERT_ERROR)]
    assert not Trace.objects.filter(external_id="t-1").exists()


def test_a_bad_line_never_stops_the_others(project, write_path):
    report = import_stream(
        project=project,
        stream=lines(
            {"id": "a", "input": "q"}, {"id": "b", "trial": "two", "input": "q"}, b"{", {"id": "c", "input": "q"}
        ),
    )
    assert report.created == 2
    assert [str(r) for r in report.rejected] == [
        'line 2: trial: expected an integer, got "two"',
        "line 3: invalid JSON: Expecting property name enclosed in double quotes at column 2",
    ]


def test_strict_writes_nothing_when_any_line_is_bad(project, write_path):
    report = import_stream(
        project=project, stream=lines(labelled("a"), {"id": "b", "inptu": "q"}, labelled("c")), strict=True
    )
    assert report.rolled_back
    assert (report.created, len(report.rejected)) == (0, 1)
    assert Trace.objects.count() == 0
    assert Criterion.objects.filter(project=project).count() == 0


def test_strict_with_only_good_lines_writes_everything(project, write_path):
    report = import_stream(project=project, stream=lines(labelled("a"), labelled("b")), strict=True)
    assert (report.created, report.rolled_back) == (2, False)
    assert Label.objects.count() == 2


def test_the_same_id_twice_in_a_file_is_a_duplicate(project, write_path):
    report = import_stream(project=project, stream=lines({"id": "a", "input": "1"}, {"id": "a", "input": "2"}))
    assert (report.created, report.duplicates) == (1, 1)
    assert Trace.objects.get(external_id="a").input == "1"


def test_many_batches_keep_file_order_of_review_and_report_progress(project, write_path, monkeypatch):
    monkeypatch.setattr(ingest, "PG_BATCH_SIZE", 3)
    monkeypatch.setattr(ingest, "ORM_BATCH_SIZE", 3)
    seen: list[int] = []
    data = lines(*(labelled(f"t-{i}") for i in range(10)))
    report = import_stream(project=project, stream=data, progress=seen.append)
    assert report.created == 10
    assert seen == sorted(seen) and len(seen) == 4 and seen[-1] == len(data.getvalue())
    order = list(Trace.objects.order_by("reviewed_at").values_list("external_id", flat=True))
    assert order == [f"t-{i}" for i in range(10)]
    assert Criterion.objects.filter(project=project).count() == 1


def test_csv_imports_the_same_as_jsonl(project, write_path):
    csv_text = 'id,input,labels\nt-1,q,"[{""criterion"": ""c"", ""verdict"": ""pass""}]"\n'
    report = import_stream(project=project, stream=io.BytesIO(csv_text.encode()), fmt="csv")
    assert report.created == 1
    assert Label.objects.get(trace__external_id="t-1").verdict == "pass"


def test_notes_by_an_importing_user_are_theirs_and_do_not_mark_review(project, teammate, write_path):
    import_stream(project=project, stream=lines({"id": "t", "input": "q", "notes": ["looks off"]}), user=teammate)
    trace = Trace.objects.get(external_id="t")
    assert trace.notes.get().author == teammate
    assert trace.reviewed_at is None


def test_an_empty_file_is_a_clear_error(project):
    with pytest.raises(IngestError, match="the file is empty"):
        import_stream(project=project, stream=io.BytesIO(b""))
    with pytest.raises(IngestError, match="the file contains no traces"):
        import_stream(project=project, stream=io.BytesIO(b"\n\n"))


def test_unknown_on_conflict_is_refused(project):
    with pytest.raises(IngestError, match="on_conflict must be one of skip, update"):
        import_stream(project=project, stream=lines({"input": "q"}), on_conflict="merge")


def test_import_records_reports_index_and_id(project, write_path):
    report = import_records(project=project, records=[{"id": "a", "input": "q"}, {"id": "b"}, "nope"])
    assert report.created == 1
    assert [r.as_dict() for r in report.rejected] == [
        {"index": 1, "id": "b", "error": "at least one of input, output or messages is required"},
        {"index": 2, "id": None, "error": 'expected a JSON object, got "nope"'},
    ]


def test_oversize_record_is_rejected_with_its_size(project, settings):
    settings.EVALSTUDIO_MAX_TRACE_BYTES = 50
    report = import_records(project=project, records=[{"id": "a", "input": "x" * 100}])
    assert report.rejected[0].error == "record is 124 bytes, over the limit of 50 bytes"


@pytest.mark.parametrize(("name", "criterion"), [("felm", "factual"), ("faithbench", "faithful")])
def test_published_datasets_import_through_the_binarized_converter(project, name, criterion):
    path = DATA / name / "binarized.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    with path.open("rb") as handle:
        raw_lines = [line for line in handle if line.strip()]
    # These files use NaN for missing values, which is not JSON; Python's lenient parser reads it.
    rows = [from_binarized(json.loads(line), criterion=criterion) for line in raw_lines]
    report = import_records(project=project, records=rows)
    assert report.rejected == []
    assert report.created == len(raw_lines)
    assert Label.objects.filter(criterion__name=criterion).count() == len(raw_lines)
    assert Trace.objects.filter(project=project, reviewed_at__isnull=False).count() == len(raw_lines)


@pytest.mark.django_db(transaction=True)
def test_strict_import_outside_a_transaction_rolls_back_every_batch(project, monkeypatch):
    # transaction=True: the import's own transactions are real ones here, not savepoints inside the test's.
    monkeypatch.setattr(ingest, "PG_BATCH_SIZE", 2)
    report = import_stream(
        project=project, stream=lines(*(labelled(f"t-{i}") for i in range(7)), {"id": "bad"}), strict=True
    )
    assert report.rolled_back and report.created == 0
    assert [str(r) for r in report.rejected] == ["line 8: at least one of input, output or messages is required"]
    assert Trace.objects.count() == 0 and Label.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_batches_are_committed_one_by_one_outside_a_transaction(project, monkeypatch):
    monkeypatch.setattr(ingest, "PG_BATCH_SIZE", 4)
    report = import_stream(project=project, stream=lines(*(labelled(f"t-{i}") for i in range(10)), {"id": "x"}))
    assert (report.created, len(report.rejected)) == (10, 1)
    assert list(Trace.objects.order_by("id").values_list("external_id", flat=True)) == [f"t-{i}" for i in range(10)]
    assert LabelChange.objects.count() == 10


def test_a_batch_with_an_existing_id_falls_back_to_on_conflict(project):
    # The fast path COPYs the batch straight into the table; an id already there makes that COPY fail, and the
    # batch is then written through INSERT … ON CONFLICT, with "a" counted as a duplicate and "b" created.
    import_stream(project=project, stream=lines({"id": "a", "input": "first"}))
    report = import_stream(project=project, stream=lines(labelled("b"), {"id": "a", "input": "second"}, labelled("c")))
    assert (report.created, report.duplicates) == (2, 1)
    assert Trace.objects.get(external_id="a").input == "first"
    assert sorted(Label.objects.values_list("trace__external_id", flat=True)) == ["b", "c"]


# --- files: parsed in a second process on PostgreSQL -------------------------------------------------------------

AWKWARD = 'tab\there, newline\nthere, cr\r, backslash \\ and \\N, \\t literally, quote " and é 中文 🙂'


def awkward_record(external_id: str) -> dict:
    """Every character COPY's text format escapes, in every kind of column."""
    return {
        "id": f"{external_id}\t\\N",
        "input": AWKWARD,
        "output": AWKWARD + "\n",
        "messages": [{"role": "user", "content": AWKWARD}],
        "context": [AWKWARD],
        "metadata": {"k\tey": AWKWARD, "n": 12345678901234567890123},
        "session_id": "s\\1",
        "source": "prod\\uction",
    }


def write_file(path: Path, *records: object) -> Path:
    path.write_bytes(lines(*records).getvalue())
    return path


def snapshot(project) -> list[tuple]:
    # occurred_at defaults to the import time for traces without a timestamp, so it differs between two imports.
    fields = ("external_id", *(f for f in Trace.CONTENT_FIELDS if f != "occurred_at"), "reviewed_at")
    traces = Trace.objects.filter(project=project).order_by("external_id").values_list(*fields)
    labels = Label.objects.filter(trace__project=project).order_by("trace__external_id")
    notes = Note.objects.filter(trace__project=project).order_by("trace__external_id", "text")
    return [
        *[tuple(t[:-1]) + (t[-1] is not None,) for t in traces],
        *labels.values_list("trace__external_id", "criterion__name", "verdict", "critique"),
        *[(n.trace.external_id, n.text, sorted(m.name for m in n.failure_modes.all())) for n in notes],
    ]


@pytest.mark.parametrize("subprocess", [False, True], ids=["in-process", "subprocess"])
def test_awkward_text_survives_the_copy_text_format(project, tmp_path, subprocess):
    path = write_file(tmp_path / "awkward.jsonl", awkward_record("a"), awkward_record("b"))
    report = ingest.import_path(project=project, path=path, subprocess=subprocess)
    assert (report.created, report.rejected) == (2, [])
    trace = Trace.objects.get(project=project, external_id="a\t\\N")
    assert (trace.input, trace.output) == (AWKWARD, AWKWARD + "\n")
    assert trace.messages == [{"role": "user", "content": AWKWARD}]
    assert trace.context == [AWKWARD]
    assert trace.metadata == {"k\tey": AWKWARD, "n": 12345678901234567890123}
    assert (trace.session_id, trace.source) == ("s\\1", "prod\\uction")


def test_a_file_parsed_in_a_subprocess_lands_exactly_like_one_parsed_in_process(project, tmp_path, monkeypatch):
    # Small batches, so that batch boundaries, a repeated id inside a batch and rejections between batches all
    # happen in a small file.
    monkeypatch.setattr(ingest, "PG_BATCH_SIZE", 3)
    records = [
        {"id": "t-0", "input": "q", "timestamp": "2026-01-01T00:00:00Z"},
        b"{not json",
        labelled("t-1", notes=[{"text": "invents a fee", "failure_modes": ["invented fee"]}]),
        {"id": "t-0", "input": "again"},
        {"id": "t-2", "input": "q", "trial": "x"},
        *[{"id": f"t-{i}", "output": f"a{i}", "metadata": {"i": i}} for i in range(3, 11)],
        labelled("t-11", verdict="pass", critique=""),
    ]
    path = write_file(tmp_path / "mixed.jsonl", *records)
    other = make_project(slug="other", expert=project.expert)
    progress_in, progress_sub = [], []
    in_process = ingest.import_path(project=project, path=path, subprocess=False, progress=progress_in.append)
    in_subprocess = ingest.import_path(project=other, path=path, subprocess=True, progress=progress_sub.append)
    assert in_subprocess == in_process
    assert (in_process.created, in_process.duplicates, len(in_process.rejected)) == (11, 1, 2)
    assert [r.line for r in in_subprocess.rejected] == [2, 5]
    assert snapshot(other) == snapshot(project)
    assert progress_sub == progress_in and progress_sub[-1] == path.stat().st_size


def test_gzip_and_csv_files_go_through_the_subprocess_too(project, tmp_path):
    path = tmp_path / "traces.jsonl.gz"
    path.write_bytes(gzip.compress(lines({"id": "z", "input": "q"}).getvalue()))
    assert ingest.import_path(project=project, path=path, subprocess=True).created == 1
    csv_path = tmp_path / "traces.csv"
    csv_path.write_text('id,input,metadata\nc1,"q, with comma","{""a"": 1}"\n', encoding="utf-8")
    assert ingest.import_path(project=project, path=csv_path, subprocess=True).created == 1
    assert Trace.objects.get(project=project, external_id="c1").metadata == {"a": 1}


@pytest.mark.parametrize("subprocess", [False, True], ids=["in-process", "subprocess"])
def test_whole_file_errors_from_the_subprocess_are_ingest_errors(project, tmp_path, subprocess):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(IngestError, match="the file is empty"):
        ingest.import_path(project=project, path=empty, subprocess=subprocess)
    with pytest.raises(IngestError, match="cannot read the file: Is a directory"):
        ingest.import_path(project=project, path=tmp_path, subprocess=subprocess)
    with pytest.raises(IngestError, match="cannot read the file: No such file or directory"):
        ingest.import_path(project=project, path=tmp_path / "missing.jsonl", subprocess=subprocess)
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("id,nonsense\n1,2\n", encoding="utf-8")
    with pytest.raises(IngestError):
        ingest.import_path(project=project, path=bad_header, subprocess=subprocess)
    assert not Trace.objects.filter(project=project).exists()


def test_strict_mode_through_the_subprocess_writes_nothing(project, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "PG_BATCH_SIZE", 2)
    path = write_file(
        tmp_path / "strict.jsonl", *[{"id": f"s{i}", "input": "q"} for i in range(5)], {"id": 1.5, "input": "q"}
    )
    report = ingest.import_path(project=project, path=path, strict=True, subprocess=True)
    assert report.rolled_back and report.created == 0
    assert [str(r) for r in report.rejected] == ["line 6: id: expected a string, got 1.5"]
    assert not Trace.objects.filter(project=project).exists()


def test_a_crashed_parser_is_reported_and_nothing_after_it_is_written(project, tmp_path, monkeypatch):
    """A parser that dies mid-file (killed, out of memory) must surface as an error, never as a short import."""
    monkeypatch.setattr(ingest, "PG_BATCH_SIZE", 2)
    path = write_file(tmp_path / "many.jsonl", *[{"id": f"m{i}", "input": "q"} for i in range(10)])
    batches = ingest_batches.batches_in_subprocess(str(path), fmt="jsonl", options=_options(project))
    first = next(batches)
    assert first.external_ids == ["m0", "m1"]
    batches.close()  # the writer gave up: the child is stopped, not left running
    crashing = _options(project, batch_size=None)  # a nonsense option makes the child fail inside
    with pytest.raises(ingest_batches.ParserCrashed, match="TypeError"):
        list(ingest_batches.batches_in_subprocess(str(path), fmt="jsonl", options=crashing))


def _options(project, **overrides):
    importer = ingest._Importer(
        project=project, on_conflict="skip", strict=False, user=None, by_line=True, max_bytes=1 << 20
    )
    return replace(importer.options, **{"batch_size": 2, **overrides})
