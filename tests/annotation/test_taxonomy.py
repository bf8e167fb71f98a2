"""The failure taxonomy: exact counts per failure mode, the saturation curve, their REST routes and their page."""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from annotation.count_filters import CountFilters, FilterError, parse_bounded_int, parse_count_filters
from annotation.ingest import import_stream
from annotation.models import FailureMode, Label, Note, Project, Role, Trace
from annotation.services import api_token_create, label_submit, note_create
from annotation.taxonomy import (
    FailureModeCount,
    ModePair,
    SaturationPoint,
    SaturationSummary,
    failure_mode_counts,
    failure_mode_table,
    mode_co_occurrence,
    no_new_mode_streak,
    saturation_curve,
    saturation_points,
    saturation_summary,
)
from tests.factories import (
    add_member,
    code_note,
    make_criterion,
    make_label,
    make_note,
    make_project,
    make_trace,
    make_user,
)

# The pure saturation pass is tested without a database; everything else marks its use of one.
uses_db = pytest.mark.django_db

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def mode(project: Project, name: str, *, retired: bool = False) -> FailureMode:
    return FailureMode.objects.create(
        project=project, name=name, definition=f"When {name} shows.", retired_at=T0 if retired else None
    )


def coded_note(trace: Trace, author: User, *modes: FailureMode) -> Note:
    return code_note(make_note(trace=trace, author=author), *modes)


def reviewed_trace(project: Project, minutes: int, external_id: str | None = None) -> Trace:
    return make_trace(project=project, external_id=external_id, reviewed_at=at(minutes))


def curve(*distinct: int) -> list[SaturationPoint]:
    return [SaturationPoint(reviewed=n, distinct_failure_modes=m) for n, m in enumerate(distinct, start=1)]


def naive_counts(project: Project, keep: Callable[[Trace], bool] = lambda trace: True) -> dict[str, tuple]:
    """The definitions, spelled out row by row: an oracle independent of the aggregate SQL. `keep` is a filter
    written in Python: only the traces it keeps count, for the counts and for the totals of the shares."""
    kept = {t.id for t in Trace.objects.filter(project=project) if keep(t)}
    reviewed = set(Trace.objects.filter(project=project, reviewed_at__isnull=False).values_list("id", flat=True))
    reviewed &= kept
    failing = set(
        Label.objects.filter(trace__project=project, verdict="fail", author=project.expert).values_list(
            "trace_id", flat=True
        )
    )
    failing &= kept
    result = {}
    for fm in FailureMode.objects.filter(project=project):
        notes = [note for note in fm.notes.all() if note.trace_id in kept]
        traces = {note.trace_id for note in notes}
        if fm.retired_at and not notes:
            continue
        result[fm.name] = (
            len(traces),
            len(notes),
            len(traces & reviewed) / len(reviewed) if reviewed else 0.0,
            len(traces & failing) / len(failing) if failing else 0.0,
        )
    return result


def as_table(counts: list[FailureModeCount]) -> dict[str, tuple[int, int, float, float]]:
    return {
        c.name: (c.trace_count, c.note_count, c.share_of_reviewed_traces, c.share_of_failing_traces) for c in counts
    }


# --- the pure saturation pass (no database) ------------------------------------------------------------------


def test_saturation_pass_adds_each_mode_at_the_trace_where_it_first_appeared():
    assert saturation_points(["a", "b", "c", "d"], ["a", "c", "c"]) == curve(1, 1, 3, 3)


def test_saturation_pass_ignores_a_first_appearance_outside_the_review_order():
    assert saturation_points(["a", "b"], ["zz"]) == curve(0, 0)


def test_saturation_pass_of_no_reviewed_traces_is_empty():
    assert saturation_points([], ["a"]) == []


def test_streak_counts_the_latest_traces_that_brought_no_new_mode():
    assert no_new_mode_streak(curve(1, 1, 2, 3, 3, 3)) == 2


def test_streak_is_zero_when_the_latest_trace_brought_a_new_mode():
    assert no_new_mode_streak(curve(1, 1, 2)) == 0


def test_streak_covers_every_trace_when_no_mode_ever_appeared():
    assert no_new_mode_streak(curve(0, 0, 0)) == 3


def test_streak_of_no_reviewed_traces_is_zero():
    assert no_new_mode_streak([]) == 0


# --- a hand-built project -------------------------------------------------------------------------------------


@dataclass
class Scenario:
    project: Project
    modes: dict[str, FailureMode]
    traces: dict[str, Trace]


@pytest.fixture
def scenario(project: Project, expert: User, teammate: User) -> Scenario:
    """Five reviewed traces (t1, t3, t5 failing; t2 passing; t6 unlabelled) and one unreviewed (t4)."""
    factual = make_criterion(project=project, name="factual")
    modes = {
        name: mode(project, name)
        for name in ("hallucination", "tone", "format", "unused")  # "unused" has no notes at all
    }
    modes["old-mode"] = mode(project, "old-mode", retired=True)
    modes["forgotten"] = mode(project, "forgotten", retired=True)  # retired and without notes: not listed
    t = {name: reviewed_trace(project, minutes, name) for name, minutes in [("t1", 1), ("t2", 2), ("t3", 3)]}
    t["t4"] = make_trace(project=project, external_id="t4")
    t["t5"] = reviewed_trace(project, 5, "t5")
    t["t6"] = reviewed_trace(project, 6, "t6")
    # t1: one note with two modes, and a second note repeating hallucination (t1 still counts once for it).
    coded_note(t["t1"], expert, modes["hallucination"], modes["tone"])
    coded_note(t["t1"], expert, modes["hallucination"])
    coded_note(t["t2"], teammate, modes["hallucination"])
    coded_note(t["t3"], expert, modes["format"])
    coded_note(t["t4"], teammate, modes["tone"])
    coded_note(t["t6"], expert, modes["old-mode"])
    make_note(trace=t["t5"], author=expert, text="Uncoded observation")
    make_label(trace=t["t1"], criterion=factual, verdict="fail")
    make_label(trace=t["t2"], criterion=factual, verdict="pass")
    make_label(trace=t["t3"], criterion=factual, verdict="fail")
    make_label(trace=t["t5"], criterion=factual, verdict="fail")
    # A teammate's "fail" is not ground truth, so it does not make t2 a failing trace.
    Label.objects.create(trace=t["t2"], criterion=make_criterion(project=project), verdict="fail", author=teammate)
    return Scenario(project=project, modes=modes, traces=t)


@uses_db
def test_counts_on_a_hand_built_project_are_exact_and_most_frequent_first(scenario):
    counts = failure_mode_counts(project=scenario.project)
    m = scenario.modes
    assert counts == [
        FailureModeCount(m["hallucination"].pk, "hallucination", "When hallucination shows.", 2, 3, 2 / 5, 1 / 3),
        FailureModeCount(m["tone"].pk, "tone", "When tone shows.", 2, 2, 1 / 5, 1 / 3),
        FailureModeCount(m["format"].pk, "format", "When format shows.", 1, 1, 1 / 5, 1 / 3),
        FailureModeCount(m["old-mode"].pk, "old-mode", "When old-mode shows.", 1, 1, 1 / 5, 0.0, retired=True),
        FailureModeCount(m["unused"].pk, "unused", "When unused shows.", 0, 0, 0.0, 0.0),
    ]


@uses_db
def test_counts_agree_with_the_definitions_spelled_out_row_by_row(scenario):
    assert as_table(failure_mode_counts(project=scenario.project)) == naive_counts(scenario.project)


@uses_db
def test_a_retired_mode_is_listed_only_while_notes_carry_it(scenario):
    names = [c.name for c in failure_mode_counts(project=scenario.project)]
    assert "old-mode" in names
    assert "forgotten" not in names
    Note.objects.filter(failure_modes=scenario.modes["old-mode"]).delete()
    assert "old-mode" not in [c.name for c in failure_mode_counts(project=scenario.project)]


@uses_db
def test_counts_ignore_other_projects(scenario, expert):
    other = make_project(slug="other", expert=expert)
    coded_note(reviewed_trace(other, 1), expert, mode(other, "hallucination"))
    assert failure_mode_counts(project=scenario.project)[0].trace_count == 2
    assert as_table(failure_mode_counts(project=other)) == {"hallucination": (1, 1, 1.0, 0.0)}


@uses_db
def test_an_empty_project_has_no_counts_and_no_curve(project):
    assert failure_mode_counts(project=project) == []
    assert saturation_curve(project=project) == []


@uses_db
def test_modes_without_any_note_are_listed_with_zero_counts(project):
    fm = mode(project, "unused")
    make_trace(project=project, reviewed_at=at(1))
    assert failure_mode_counts(project=project) == [
        FailureModeCount(fm.pk, "unused", "When unused shows.", 0, 0, 0.0, 0.0)
    ]


@uses_db
def test_a_project_with_one_coded_note(project, expert):
    trace = make_trace(project=project)
    note = note_create(trace=trace, author=expert, text="Made up a number")  # the expert's note marks it reviewed
    code_note(note, fm := mode(project, "hallucination"))
    assert failure_mode_counts(project=project) == [
        FailureModeCount(fm.pk, "hallucination", "When hallucination shows.", 1, 1, 1.0, 0.0)
    ]
    assert saturation_curve(project=project) == curve(1)


JSONL = [
    {
        "id": "a",
        "input": "How many reactors?",
        "labels": [{"criterion": "factual", "verdict": "fail", "critique": "Claims 94; there are 92."}],
        "notes": [
            {"text": "Invents a statistic", "failure_modes": ["hallucination"]},
            {"text": "Condescending and wrong", "failure_modes": ["tone", "hallucination"]},
        ],
    },
    {
        "id": "b",
        "input": "Hi",
        "labels": [{"criterion": "factual", "verdict": "pass"}],
        "notes": [{"text": "Curt", "failure_modes": ["tone"]}],
    },
    {"id": "c", "input": "Refund?", "labels": [{"criterion": "factual", "verdict": "fail"}], "notes": ["Odd"]},
    {"id": "d", "input": "Not looked at yet"},
]


@uses_db
def test_counts_equal_what_was_imported_from_jsonl(project):
    data = "".join(json.dumps(record) + "\n" for record in JSONL).encode()
    report = import_stream(project=project, stream=io.BytesIO(data))
    assert (report.created, report.rejected) == (4, [])
    # Reviewed: a, b, c (labelled by the expert). Failing: a and c.
    expected = {"tone": (2, 2, 2 / 3, 1 / 2), "hallucination": (1, 2, 1 / 3, 1 / 2)}
    counts = failure_mode_counts(project=project)
    assert [c.name for c in counts] == ["tone", "hallucination"]
    assert as_table(counts) == expected == naive_counts(project)
    # The import keeps file order as review order: a brings both modes, b and c nothing new.
    assert saturation_curve(project=project) == curve(2, 2, 2)


# --- saturation -------------------------------------------------------------------------------------------------


@uses_db
def test_saturation_curve_follows_review_order_and_counts_each_mode_once(project, expert, teammate):
    a, b, c, d = (mode(project, name) for name in "abcd")
    # Created out of review order, so the curve must follow reviewed_at, not the primary key.
    r4 = reviewed_trace(project, 4)
    r1 = reviewed_trace(project, 1)
    reviewed_trace(project, 2)  # reviewed, no notes
    r3 = reviewed_trace(project, 3)
    r5 = reviewed_trace(project, 5)
    reviewed_trace(project, 6)  # reviewed, no notes
    coded_note(r1, expert, a)
    coded_note(r3, expert, a)  # reappears: nothing new
    coded_note(r3, teammate, b)  # a teammate's note on a reviewed trace: the mode was seen
    coded_note(r4, expert, a, c)
    coded_note(r5, expert, b)
    coded_note(make_trace(project=project), teammate, d)  # never reviewed: never on the curve
    assert saturation_curve(project=project) == curve(1, 1, 2, 3, 3, 3)
    assert no_new_mode_streak(saturation_curve(project=project)) == 2


@uses_db
def test_saturation_curve_breaks_a_tie_in_review_time_by_trace_id(project, expert):
    first, second, third = (make_trace(project=project, reviewed_at=at(1)) for _ in range(3))
    later = reviewed_trace(project, 2)
    shared, only_second, only_later = mode(project, "shared"), mode(project, "only-second"), mode(project, "later")
    coded_note(second, expert, only_second, shared)
    coded_note(third, expert, shared)
    coded_note(later, expert, only_later, shared)
    assert first.pk < second.pk < third.pk
    assert saturation_curve(project=project) == curve(0, 2, 2, 3)


@uses_db
def test_saturation_curve_with_reviewed_traces_but_no_modes_is_flat_at_zero(project, expert):
    reviewed_trace(project, 1)
    make_note(trace=reviewed_trace(project, 2), author=expert)
    assert saturation_curve(project=project) == curve(0, 0)


# --- REST -------------------------------------------------------------------------------------------------------

FAILURE_MODES_URL = "/api/v1/projects/acme/failure-modes"
SATURATION_URL = "/api/v1/projects/acme/saturation"


@pytest.fixture
def token(project) -> str:
    _, raw = api_token_create(project=project, name="ci")
    return raw


def get(client: Client, url: str, *, token: str | None = None):
    return client.get(url, headers={"Authorization": f"Bearer {token}"} if token else {})


@uses_db
def test_failure_modes_route_answers_the_exact_json_with_a_token(client, scenario, token):
    m = scenario.modes
    response = get(client, FAILURE_MODES_URL, token=token)
    assert response.status_code == 200
    assert response.json() == [
        {
            "id": m["hallucination"].pk,
            "name": "hallucination",
            "definition": "When hallucination shows.",
            "trace_count": 2,
            "note_count": 3,
            "share_of_reviewed_traces": 0.4,
            "share_of_failing_traces": 1 / 3,
        },
        {
            "id": m["tone"].pk,
            "name": "tone",
            "definition": "When tone shows.",
            "trace_count": 2,
            "note_count": 2,
            "share_of_reviewed_traces": 0.2,
            "share_of_failing_traces": 1 / 3,
        },
        {
            "id": m["format"].pk,
            "name": "format",
            "definition": "When format shows.",
            "trace_count": 1,
            "note_count": 1,
            "share_of_reviewed_traces": 0.2,
            "share_of_failing_traces": 1 / 3,
        },
        {
            "id": m["old-mode"].pk,
            "name": "old-mode",
            "definition": "When old-mode shows.",
            "trace_count": 1,
            "note_count": 1,
            "share_of_reviewed_traces": 0.2,
            "share_of_failing_traces": 0.0,
        },
        {
            "id": m["unused"].pk,
            "name": "unused",
            "definition": "When unused shows.",
            "trace_count": 0,
            "note_count": 0,
            "share_of_reviewed_traces": 0.0,
            "share_of_failing_traces": 0.0,
        },
    ]


@uses_db
def test_saturation_route_answers_one_point_per_reviewed_trace_in_review_order(client, scenario, token):
    # t1 brings hallucination and tone, t3 format, t6 old-mode; t2 and t5 nothing new.
    response = get(client, SATURATION_URL, token=token)
    assert response.status_code == 200
    assert response.json() == [
        {"reviewed": 1, "distinct_failure_modes": 2},
        {"reviewed": 2, "distinct_failure_modes": 2},
        {"reviewed": 3, "distinct_failure_modes": 3},
        {"reviewed": 4, "distinct_failure_modes": 3},
        {"reviewed": 5, "distinct_failure_modes": 4},
    ]


@uses_db
@pytest.mark.parametrize("url", [FAILURE_MODES_URL, SATURATION_URL])
def test_taxonomy_routes_of_an_empty_project_answer_an_empty_list(client, project, token, url):
    response = get(client, url, token=token)
    assert (response.status_code, response.json()) == (200, [])


@uses_db
@pytest.mark.parametrize("url", [FAILURE_MODES_URL, SATURATION_URL])
def test_a_logged_in_member_reads_taxonomy_routes_with_the_session(teammate_client, scenario, url):
    response = get(teammate_client, url)
    assert response.status_code == 200
    assert len(response.json()) == 5


@uses_db
def test_a_viewer_may_read_the_failure_modes(project):
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    assert (get(client, FAILURE_MODES_URL).status_code, get(client, SATURATION_URL).status_code) == (200, 200)


@uses_db
@pytest.mark.parametrize("url", [FAILURE_MODES_URL, SATURATION_URL])
def test_taxonomy_routes_without_a_token_are_401(client, project, url):
    assert get(client, url).status_code == 401


@uses_db
@pytest.mark.parametrize("url", [FAILURE_MODES_URL, SATURATION_URL])
def test_taxonomy_routes_with_a_bad_token_are_401(client, project, url):
    assert get(client, url, token="es_not-a-real-token").status_code == 401


@uses_db
@pytest.mark.parametrize("url", [FAILURE_MODES_URL, SATURATION_URL])
def test_taxonomy_routes_with_another_projects_token_are_404_as_for_a_missing_project(client, project, expert, url):
    _, raw = api_token_create(project=make_project(slug="other", expert=expert), name="ci")
    response = get(client, url, token=raw)
    assert (response.status_code, response.json()) == (404, {"detail": "No such project"})


@uses_db
@pytest.mark.parametrize("url", [FAILURE_MODES_URL, SATURATION_URL])
def test_taxonomy_routes_answer_404_to_a_logged_in_outsider(outsider_client, scenario, url):
    response = get(outsider_client, url)
    assert (response.status_code, response.json()) == (404, {"detail": "No such project"})


@uses_db
@pytest.mark.parametrize("path", ["failure-modes", "saturation"])
def test_taxonomy_routes_of_an_unknown_project_are_404(client, token, path):
    assert get(client, f"/api/v1/projects/nope/{path}", token=token).status_code == 404


@uses_db
def test_openapi_document_describes_both_taxonomy_routes_with_their_schemas(client):
    document = client.get("/api/v1/openapi.json").json()
    modes = document["paths"]["/api/v1/projects/{slug}/failure-modes"]["get"]["responses"]["200"]
    points = document["paths"]["/api/v1/projects/{slug}/saturation"]["get"]["responses"]["200"]
    assert modes["content"]["application/json"]["schema"]["items"] == {"$ref": "#/components/schemas/FailureModeOut"}
    assert points["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/SaturationPointOut"
    }
    schemas = document["components"]["schemas"]
    assert set(schemas["FailureModeOut"]["properties"]) == {
        "id",
        "name",
        "definition",
        "trace_count",
        "note_count",
        "share_of_reviewed_traces",
        "share_of_failing_traces",
    }
    assert set(schemas["SaturationPointOut"]["properties"]) == {"reviewed", "distinct_failure_modes"}


# --- the page -------------------------------------------------------------------------------------------------

PAGE = "/projects/acme/failure-modes/"


@uses_db
def test_page_shows_the_counts_and_the_saturation_statement(expert_client, scenario):
    response = expert_client.get(PAGE)
    assert response.status_code == 200
    assert [c.name for c in response.context["counts"]] == ["hallucination", "tone", "format", "old-mode", "unused"]
    content = response.content.decode()
    start = content.index(">hallucination</a>")  # each name links to its mode's page
    row = content[start : content.index("</tr>", start)]
    hallucination = response.context["counts"][0]
    # The trace count links to those traces in the trace list.
    assert f'<a href="/projects/acme/traces/?mode={hallucination.id}">2</a>' in row
    assert "<td>3</td>" in row and "40.0%" in row and "33.3%" in row
    assert "(retired)" in content
    # t6, the latest reviewed trace, brought old-mode.
    assert "The latest reviewed trace brought a new failure mode" in content
    assert f'href="{reverse("failure_mode_list", args=["acme"])}"' in content  # the project nav links here


@uses_db
def test_page_says_how_many_latest_traces_brought_nothing_new(expert_client, project, expert):
    coded_note(reviewed_trace(project, 1), expert, mode(project, "hallucination"))
    reviewed_trace(project, 2)
    reviewed_trace(project, 3)
    assert "No new failure mode in the last 2 reviewed traces." in expert_client.get(PAGE).content.decode()


@uses_db
def test_page_says_one_trace_when_only_the_latest_brought_nothing_new(expert_client, project, expert):
    coded_note(reviewed_trace(project, 1), expert, mode(project, "hallucination"))
    reviewed_trace(project, 2)
    assert "No new failure mode in the last 1 reviewed trace." in expert_client.get(PAGE).content.decode()


@uses_db
def test_page_of_an_empty_project_explains_where_failure_modes_come_from(expert_client, project):
    content = expert_client.get(PAGE).content.decode()
    assert "No traces have been reviewed yet" in content
    assert "No failure modes yet." in content
    assert "<table" not in content


@uses_db
def test_page_with_reviews_but_no_modes_says_none_appeared(expert_client, project):
    reviewed_trace(project, 1)
    reviewed_trace(project, 2)
    assert "No failure mode has appeared in the 2 reviewed traces so far." in expert_client.get(PAGE).content.decode()


@uses_db
def test_outsider_gets_404_for_the_failure_modes_page(outsider_client, scenario):
    assert outsider_client.get(PAGE).status_code == 404


@uses_db
def test_login_is_required_for_the_failure_modes_page(client, project):
    response = client.get(PAGE)
    assert (response.status_code, response["Location"].startswith("/accounts/login/")) == (302, True)


# --- filters: parsing (no database) -------------------------------------------------------------------------

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_no_filter_parameters_mean_every_trace():
    filters = parse_count_filters({}, now=NOW)
    assert filters == CountFilters()
    assert not filters.is_filtered


def test_source_and_metadata_are_read_like_the_trace_lists():
    filters = parse_count_filters({"source": " production ", "meta": " locale = de "}, now=NOW)
    assert (filters.source, filters.meta_key, filters.meta_value, filters.is_filtered) == (
        "production",
        "locale",
        "de",
        True,
    )


def test_a_metadata_value_may_contain_an_equals_sign_and_may_be_empty():
    assert parse_count_filters({"meta": "query=a=b"}, now=NOW).meta_value == "a=b"
    assert parse_count_filters({"meta": "flag="}, now=NOW).meta == "flag="


def test_dates_cover_whole_utc_days_both_inclusive():
    filters = parse_count_filters({"from": "2026-11-01", "to": "2026-11-03"}, now=NOW)
    assert filters.occurred_from == datetime(2026, 11, 1, tzinfo=UTC)
    assert filters.occurred_before == datetime(2026, 11, 4, tzinfo=UTC)
    assert filters.query_items() == [("from", "2026-11-01"), ("to", "2026-11-03")]


@pytest.mark.parametrize(("period", "hours"), [("24h", 24), ("7d", 7 * 24), ("30d", 30 * 24)])
def test_a_period_preset_counts_back_from_now(period, hours):
    filters = parse_count_filters({"period": period}, now=NOW)
    assert (filters.occurred_from, filters.occurred_before) == (NOW - timedelta(hours=hours), None)
    assert filters.period_label.startswith("last ")


@pytest.mark.parametrize(
    ("query", "parameter", "words"),
    [
        ({"source": "x" * 65}, "source", "at most 64"),
        ({"meta": "locale"}, "meta", "not key=value"),
        ({"meta": "=de"}, "meta", "not key=value"),
        ({"meta": "k" * 201 + "=v"}, "meta", "at most 200"),
        ({"from": "2026-13-01"}, "from", "not a date"),
        ({"to": "yesterday"}, "to", "not a date"),
        ({"from": "2026-11-05", "to": "2026-11-01"}, "from", "is after to"),
        ({"period": "1y"}, "period", "not one of 24h, 7d, 30d"),
        ({"period": "7d", "from": "2026-11-01"}, "period", "not both"),
    ],
)
def test_each_bad_filter_value_is_named_with_what_is_wrong(query, parameter, words):
    with pytest.raises(FilterError) as caught:
        parse_count_filters(query, now=NOW)
    assert list(caught.value.errors) == [parameter]
    assert words in caught.value.errors[parameter]
    assert str(caught.value).startswith(f"{parameter}: ")


def test_every_bad_filter_is_reported_at_once():
    with pytest.raises(FilterError) as caught:
        parse_count_filters({"meta": "nokey", "from": "soon", "period": "2w"}, now=NOW)
    assert set(caught.value.errors) == {"meta", "from", "period"}


@pytest.mark.parametrize("raw", ["0", "-3", "abc", "1.5", "100001", "9" * 5000, "²"])
def test_a_window_must_be_a_whole_number_in_range(raw):
    with pytest.raises(FilterError) as caught:
        parse_bounded_int(raw, name="window", default=20, maximum=100_000)
    assert "window" in caught.value.errors


def test_a_missing_window_takes_the_default_and_a_valid_one_is_read():
    assert parse_bounded_int(None, name="window", default=20, maximum=100) == 20
    assert parse_bounded_int(" 7 ", name="window", default=20, maximum=100) == 7


# --- filters: counts against the oracle ---------------------------------------------------------------------

SOURCES = ("production", "staging", "synthetic", "")
LOCALES = ("en", "de", "fr")


@pytest.fixture
def varied(project: Project, expert: User, teammate: User) -> Scenario:
    """A seeded random project: 60 traces over 40 days with sources, metadata, reviews, labels and notes coded
    to six modes (one retired), so every filter keeps a different, non-trivial subset."""
    rng = random.Random(7)
    criterion = make_criterion(project=project, name="factual")
    modes = {name: mode(project, name) for name in ("alpha", "beta", "gamma", "delta", "epsilon")}
    modes["retired"] = mode(project, "retired", retired=True)
    now = datetime.now(UTC)
    traces = {}
    for i in range(60):
        trace = make_trace(
            project=project,
            external_id=f"v{i}",
            source=rng.choice(SOURCES),
            metadata={"locale": rng.choice(LOCALES), "retries": rng.randint(0, 2)},
            occurred_at=now - timedelta(days=rng.uniform(0, 40)),
            reviewed_at=at(i) if rng.random() < 0.7 else None,
        )
        traces[trace.external_id] = trace
        for _ in range(rng.randint(0, 3)):
            author = rng.choice([expert, teammate])
            coded_note(trace, author, *rng.sample(list(modes.values()), rng.randint(0, 3)))
        if trace.reviewed_at and rng.random() < 0.8:
            make_label(trace=trace, criterion=criterion, verdict=rng.choice(["pass", "fail"]))
    return Scenario(project=project, modes=modes, traces=traces)


def _days_ago(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


FILTER_CASES = {
    "source": ({"source": "production"}, lambda t: t.source == "production"),
    "metadata text": ({"meta": "locale=de"}, lambda t: t.metadata.get("locale") == "de"),
    "metadata number": ({"meta": "retries=2"}, lambda t: t.metadata.get("retries") == 2),
    "period 7d": ({"period": "7d"}, lambda t: t.occurred_at >= _days_ago(7)),
    "period 30d": ({"period": "30d"}, lambda t: t.occurred_at >= _days_ago(30)),
    "combined": (
        {"source": "staging", "meta": "locale=en", "period": "30d"},
        lambda t: t.source == "staging" and t.metadata.get("locale") == "en" and t.occurred_at >= _days_ago(30),
    ),
    "nothing matches": ({"source": "nowhere"}, lambda t: False),
}


@uses_db
@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_filtered_counts_agree_with_the_definitions_on_the_kept_traces(varied, case):
    query, keep = FILTER_CASES[case]
    filters = parse_count_filters(query, now=datetime.now(UTC))
    table = failure_mode_table(project=varied.project, filters=filters)
    expected = naive_counts(varied.project, keep)
    assert as_table(table.counts) == expected
    kept = [t for t in Trace.objects.filter(project=varied.project) if keep(t)]
    assert table.reviewed_total == sum(1 for t in kept if t.reviewed_at)
    if case != "nothing matches":
        # The oracle is not vacuous: the filter keeps some traces and some counts, and drops others.
        assert 0 < len(kept) < 60 and any(row[0] for row in expected.values())


@uses_db
def test_filtered_counts_by_date_range_agree_with_the_oracle(varied):
    start, end = _days_ago(20).date(), _days_ago(5).date()
    filters = parse_count_filters({"from": start.isoformat(), "to": end.isoformat()}, now=datetime.now(UTC))
    expected = naive_counts(varied.project, lambda t: start <= t.occurred_at.date() <= end)
    assert as_table(failure_mode_counts(project=varied.project, filters=filters)) == expected


@uses_db
def test_unfiltered_counts_of_the_varied_project_agree_with_the_oracle(varied):
    assert as_table(failure_mode_counts(project=varied.project)) == naive_counts(varied.project)


@uses_db
def test_filtered_shares_are_fractions_of_the_filtered_reviewed_and_failing_traces(project, expert):
    factual = make_criterion(project=project, name="factual")
    fm = mode(project, "hallucination")
    prod = [make_trace(project=project, source="production", reviewed_at=at(i)) for i in range(4)]
    staging = [make_trace(project=project, source="staging", reviewed_at=at(10 + i)) for i in range(6)]
    coded_note(prod[0], expert, fm)
    coded_note(staging[0], expert, fm)
    make_label(trace=prod[0], criterion=factual, verdict="fail")
    make_label(trace=prod[1], criterion=factual, verdict="fail")
    make_label(trace=staging[1], criterion=factual, verdict="fail")
    production = parse_count_filters({"source": "production"}, now=NOW)
    # 1 of the 4 production traces, and 1 of their 2 failing ones; unfiltered: 2 of 10 and 1 of 3.
    assert failure_mode_counts(project=project, filters=production) == [
        FailureModeCount(fm.pk, "hallucination", "When hallucination shows.", 1, 1, 1 / 4, 1 / 2)
    ]
    assert failure_mode_counts(project=project) == [
        FailureModeCount(fm.pk, "hallucination", "When hallucination shows.", 2, 2, 2 / 10, 1 / 3)
    ]


JSONL_WITH_CONTEXT = [
    {
        "id": "p1",
        "input": "Q1",
        "source": "production",
        "metadata": {"locale": "de"},
        "timestamp": "2026-11-02T10:00:00Z",
        "labels": [{"criterion": "factual", "verdict": "fail"}],
        "notes": [{"text": "Made up", "failure_modes": ["hallucination", "tone"]}],
    },
    {
        "id": "p2",
        "input": "Q2",
        "source": "production",
        "metadata": {"locale": "en"},
        "timestamp": "2026-11-03T23:59:59Z",
        "labels": [{"criterion": "factual", "verdict": "pass"}],
        "notes": [{"text": "Rude", "failure_modes": ["tone"]}],
    },
    {
        "id": "s1",
        "input": "Q3",
        "source": "staging",
        "metadata": {"locale": "de"},
        "timestamp": "2026-11-04T00:00:00Z",
        "labels": [{"criterion": "factual", "verdict": "fail"}],
        "notes": [{"text": "Made up again", "failure_modes": ["hallucination"]}],
    },
]


@uses_db
def test_counts_after_an_import_are_exact_under_each_filter(project):
    data = "".join(json.dumps(record) + "\n" for record in JSONL_WITH_CONTEXT).encode()
    report = import_stream(project=project, stream=io.BytesIO(data))
    assert (report.created, report.rejected) == (3, [])

    def table(**query: str) -> dict[str, tuple]:
        return as_table(failure_mode_counts(project=project, filters=parse_count_filters(query, now=NOW)))

    # Production: p1 (failing) and p2; German: p1 and s1 (both failing); Nov 2–3: p1 and p2 (the 4th starts s1).
    assert table(source="production") == {"tone": (2, 2, 1.0, 1.0), "hallucination": (1, 1, 0.5, 1.0)}
    assert table(meta="locale=de") == {"hallucination": (2, 2, 1.0, 1.0), "tone": (1, 1, 0.5, 0.5)}
    assert table(**{"from": "2026-11-02", "to": "2026-11-03"}) == table(source="production")
    assert table(**{"from": "2026-11-04"}) == {"hallucination": (1, 1, 1.0, 1.0), "tone": (0, 0, 0.0, 0.0)}
    assert table(source="staging", meta="locale=en") == {"hallucination": (0, 0, 0.0, 0.0), "tone": (0, 0, 0.0, 0.0)}


# --- co-occurrence -------------------------------------------------------------------------------------------


def naive_pairs(project: Project, keep: Callable[[Trace], bool] = lambda trace: True, limit: int = 20) -> list:
    """Pairs of modes on the same kept traces, counted trace by trace in Python."""
    modes_on: dict[int, set[int]] = {}
    for trace in Trace.objects.filter(project=project).prefetch_related("notes__failure_modes"):
        if keep(trace):
            modes_on[trace.pk] = {fm.pk for note in trace.notes.all() for fm in note.failure_modes.all()}
    names = dict(FailureMode.objects.filter(project=project).values_list("id", "name"))
    per_mode = Counter(m for modes in modes_on.values() for m in modes)
    together = Counter((a, b) for modes in modes_on.values() for a in modes for b in modes if a < b)
    rows = [(names[a], names[b], n, round(n / min(per_mode[a], per_mode[b]), 9)) for (a, b), n in together.items()]
    rows.sort(key=lambda r: (-r[2], -r[3], r[0], r[1]))
    return rows[:limit]


def as_pairs(pairs: list[ModePair]) -> list:
    return [(p.first_name, p.second_name, p.trace_count, round(p.share_of_rarer, 9)) for p in pairs]


@uses_db
def test_co_occurrence_on_the_hand_built_project(scenario):
    m = scenario.modes
    # Only t1 carries two modes: hallucination (2 traces) and tone (2 traces).
    assert mode_co_occurrence(project=scenario.project) == [
        ModePair(m["hallucination"].pk, "hallucination", m["tone"].pk, "tone", 1, 0.5)
    ]


@uses_db
@pytest.mark.parametrize("case", ["none", "source", "metadata text", "combined", "nothing matches"])
def test_co_occurrence_agrees_with_pairs_counted_trace_by_trace(varied, case):
    query, keep = FILTER_CASES[case] if case != "none" else ({}, lambda t: True)
    filters = parse_count_filters(query, now=datetime.now(UTC))
    expected = naive_pairs(varied.project, keep, limit=100)
    assert as_pairs(mode_co_occurrence(project=varied.project, filters=filters, limit=100)) == expected
    if case == "none":
        assert len(expected) >= 10  # not vacuous: most of the 15 pairs occur


@uses_db
def test_co_occurrence_lists_the_top_pairs_only(varied):
    top = mode_co_occurrence(project=varied.project, limit=3)
    assert as_pairs(top) == naive_pairs(varied.project, limit=3)
    assert len(top) == 3


@uses_db
def test_co_occurrence_counts_a_trace_once_however_many_notes_repeat_the_pair(project, expert):
    a, b = mode(project, "a"), mode(project, "b")
    trace = reviewed_trace(project, 1)
    coded_note(trace, expert, a, b)
    coded_note(trace, expert, a, b)
    coded_note(trace, expert, b)
    coded_note(reviewed_trace(project, 2), expert, b)
    assert as_pairs(mode_co_occurrence(project=project)) == [("a", "b", 1, 1.0)]


@uses_db
def test_co_occurrence_ignores_other_projects(scenario, expert):
    other = make_project(slug="other", expert=expert)
    x, y = mode(other, "x"), mode(other, "y")
    coded_note(reviewed_trace(other, 1), expert, x, y)
    assert [p.trace_count for p in mode_co_occurrence(project=scenario.project)] == [1]
    assert as_pairs(mode_co_occurrence(project=other)) == [("x", "y", 1, 1.0)]


# --- the saturation statement ---------------------------------------------------------------------------------


def window_oracle(points: list[SaturationPoint], window: int) -> int:
    """New modes in the last `window` points, read off the whole curve."""
    if not points:
        return 0
    before = points[-window - 1].distinct_failure_modes if len(points) > window else 0
    return points[-1].distinct_failure_modes - before


@uses_db
def test_saturation_summary_agrees_with_the_curve_for_every_window(varied):
    points = saturation_curve(project=varied.project)
    assert len(points) > 20 and points[-1].distinct_failure_modes >= 5
    for window in range(1, len(points) + 3):
        summary = saturation_summary(project=varied.project, window=window)
        assert (summary.reviewed, summary.distinct_failure_modes) == (len(points), points[-1].distinct_failure_modes)
        assert summary.new_in_window == window_oracle(points, window), window
        assert summary.no_new_mode_streak == no_new_mode_streak(points)
        assert summary.saturated == (window <= len(points) and summary.new_in_window == 0)


@uses_db
def test_saturation_summary_of_the_hand_built_project(scenario):
    # Review order t1 (2 new), t2, t3 (format), t5, t6 (old-mode).
    assert saturation_summary(project=scenario.project, window=2) == SaturationSummary(
        reviewed=5, distinct_failure_modes=4, window=2, new_in_window=1, no_new_mode_streak=0
    )
    assert saturation_summary(project=scenario.project, window=20).new_in_window == 4


@uses_db
def test_saturation_summary_breaks_a_tie_in_review_time_by_trace_id(project, expert):
    first, second = (make_trace(project=project, reviewed_at=at(1)) for _ in range(2))
    coded_note(second, expert, mode(project, "only-second"))
    summary = saturation_summary(project=project, window=1)
    assert (summary.new_in_window, summary.no_new_mode_streak, summary.saturated) == (1, 0, False)
    assert first.pk < second.pk


@uses_db
def test_saturation_summary_of_an_empty_project(project):
    summary = saturation_summary(project=project)
    assert (summary.reviewed, summary.new_in_window, summary.no_new_mode_streak, summary.saturated) == (0, 0, 0, False)


@uses_db
def test_a_project_with_reviews_and_no_modes_is_saturated_once_the_window_is_full(project):
    for minutes in range(3):
        reviewed_trace(project, minutes)
    assert saturation_summary(project=project, window=3).saturated
    assert not saturation_summary(project=project, window=4).saturated


# --- REST: filters, co-occurrence, the saturation statement ---------------------------------------------------

CO_OCCURRENCE_URL = "/api/v1/projects/acme/failure-modes/co-occurrence"
SUMMARY_URL = "/api/v1/projects/acme/saturation/summary"
ALL_ROUTES = [FAILURE_MODES_URL, SATURATION_URL, CO_OCCURRENCE_URL, SUMMARY_URL]


@uses_db
def test_failure_modes_route_filters_by_source_metadata_and_dates(client, project, token):
    data = "".join(json.dumps(record) + "\n" for record in JSONL_WITH_CONTEXT).encode()
    import_stream(project=project, stream=io.BytesIO(data))
    response = get(
        client, f"{FAILURE_MODES_URL}?source=production&meta=locale%3Dde&from=2026-11-01&to=2026-11-02", token=token
    )
    assert response.status_code == 200
    rows = {row["name"]: (row["trace_count"], row["share_of_reviewed_traces"]) for row in response.json()}
    assert rows == {"hallucination": (1, 1.0), "tone": (1, 1.0)}
    assert set(response.json()[0]) == {
        "id",
        "name",
        "definition",
        "trace_count",
        "note_count",
        "share_of_reviewed_traces",
        "share_of_failing_traces",
    }


@uses_db
@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("source=" + "x" * 65, "source"),
        ("meta=locale", "meta"),
        ("from=2026-02-30", "from"),
        ("to=tomorrow", "to"),
        ("from=2026-11-05&to=2026-11-01", "from"),
        ("period=week", "period"),
        ("period=7d&to=2026-11-01", "period"),
    ],
)
@pytest.mark.parametrize("url", [FAILURE_MODES_URL, CO_OCCURRENCE_URL])
def test_a_bad_filter_is_a_400_naming_the_parameter(client, scenario, token, url, query, parameter):
    response = get(client, f"{url}?{query}", token=token)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{parameter}: ")


@uses_db
@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        (f"{CO_OCCURRENCE_URL}?limit=0", "limit"),
        (f"{CO_OCCURRENCE_URL}?limit=201", "limit"),
        (f"{SUMMARY_URL}?window=abc", "window"),
        (f"{SUMMARY_URL}?window=0", "window"),
        (f"{SATURATION_URL}?window=-1", "window"),
        (f"{SATURATION_URL}?window=100001", "window"),
    ],
)
def test_a_bad_limit_or_window_is_a_400_naming_it(client, scenario, token, url, parameter):
    response = get(client, url, token=token)
    assert (response.status_code, response.json()["detail"].split(":")[0]) == (400, parameter)


@uses_db
def test_co_occurrence_route_answers_the_exact_json(client, scenario, token):
    m = scenario.modes
    response = get(client, CO_OCCURRENCE_URL, token=token)
    assert response.status_code == 200
    assert response.json() == [
        {
            "first_id": m["hallucination"].pk,
            "first_name": "hallucination",
            "second_id": m["tone"].pk,
            "second_name": "tone",
            "trace_count": 1,
            "share_of_rarer": 0.5,
        }
    ]
    assert get(client, f"{CO_OCCURRENCE_URL}?source=nowhere", token=token).json() == []


@uses_db
def test_co_occurrence_route_honours_the_limit(client, varied, token):
    response = get(client, f"{CO_OCCURRENCE_URL}?limit=2", token=token)
    assert [(p["first_name"], p["second_name"], p["trace_count"]) for p in response.json()] == [
        row[:3] for row in naive_pairs(varied.project, limit=2)
    ]


@uses_db
def test_saturation_summary_route_answers_the_statement(client, scenario, token):
    response = get(client, SUMMARY_URL, token=token)
    assert (response.status_code, response.json()) == (
        200,
        {
            "reviewed": 5,
            "distinct_failure_modes": 4,
            "window": 20,
            "new_in_window": 4,
            "no_new_mode_streak": 0,
            "saturated": False,
        },
    )
    assert get(client, f"{SUMMARY_URL}?window=3", token=token).json()["new_in_window"] == 2


@uses_db
def test_saturation_summary_route_says_saturated_after_a_quiet_window(client, project, expert, token):
    coded_note(reviewed_trace(project, 1), expert, mode(project, "hallucination"))
    for minutes in range(2, 5):
        reviewed_trace(project, minutes)
    body = get(client, f"{SUMMARY_URL}?window=3", token=token).json()
    assert (body["saturated"], body["new_in_window"], body["no_new_mode_streak"]) == (True, 0, 3)
    assert get(client, f"{SUMMARY_URL}?window=4", token=token).json()["saturated"] is False


@uses_db
def test_saturation_route_with_a_window_answers_the_last_points_only(client, scenario, token):
    response = get(client, f"{SATURATION_URL}?window=2", token=token)
    assert response.json() == [
        {"reviewed": 4, "distinct_failure_modes": 3},
        {"reviewed": 5, "distinct_failure_modes": 4},
    ]
    assert len(get(client, f"{SATURATION_URL}?window=50", token=token).json()) == 5


@uses_db
@pytest.mark.parametrize("url", [CO_OCCURRENCE_URL, SUMMARY_URL])
def test_new_taxonomy_routes_answer_404_to_a_logged_in_outsider(outsider_client, scenario, url):
    response = get(outsider_client, url)
    assert (response.status_code, response.json()) == (404, {"detail": "No such project"})


@uses_db
@pytest.mark.parametrize("url", [CO_OCCURRENCE_URL, SUMMARY_URL])
def test_new_taxonomy_routes_need_a_token_or_a_session_and_refuse_other_projects_tokens(client, project, expert, url):
    assert get(client, url).status_code == 401
    _, raw = api_token_create(project=make_project(slug="other", expert=expert), name="ci")
    assert get(client, url, token=raw).status_code == 404


@uses_db
def test_a_viewer_may_read_co_occurrence_and_the_statement(project):
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    assert [get(client, url).status_code for url in ALL_ROUTES] == [200, 200, 200, 200]


@uses_db
def test_openapi_document_describes_the_filters_and_the_new_routes(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    parameters = {p["name"] for p in paths["/api/v1/projects/{slug}/failure-modes"]["get"]["parameters"]}
    assert {"source", "meta", "from", "to", "period"} <= parameters
    assert "/api/v1/projects/{slug}/failure-modes/co-occurrence" in paths
    summary = paths["/api/v1/projects/{slug}/saturation/summary"]["get"]
    assert {p["name"] for p in summary["parameters"]} == {"slug", "window"}


# --- the page: filters, co-occurrence, window -------------------------------------------------------------------


@uses_db
def test_page_filters_the_counts_and_says_which_traces_it_counts(expert_client, project):
    data = "".join(json.dumps(record) + "\n" for record in JSONL_WITH_CONTEXT).encode()
    import_stream(project=project, stream=io.BytesIO(data))
    response = expert_client.get(PAGE, {"source": "production", "meta": "locale=de"})
    assert response.status_code == 200
    assert as_table(response.context["counts"]) == {"hallucination": (1, 1, 1.0, 1.0), "tone": (1, 1, 1.0, 1.0)}
    content = response.content.decode()
    assert "Counting only traces from source <code>production</code> with metadata <code>locale=de</code>" in content
    assert "1 reviewed, 1 failing." in content
    assert "not the time window" not in content
    # The trace list filters by source and metadata too, so the count links keep them.
    hallucination = response.context["counts"][0]
    assert f"?mode={hallucination.id}&amp;source=production&amp;meta=locale%3Dde" in content
    # The form shows what is applied.
    assert 'name="source" value="production"' in content and 'name="meta" value="locale=de"' in content


@uses_db
def test_page_with_a_period_preset_selects_it_in_the_form(expert_client, scenario):
    response = expert_client.get(PAGE, {"period": "30d"})
    assert response.status_code == 200
    assert '<option value="30d" selected>last 30 days</option>' in response.content.decode()
    assert "that occurred in the last 30 days" in response.content.decode()
    assert "keeps the source and metadata filters, not the time window" in response.content.decode()


@uses_db
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"meta": "locale"}, "Metadata: &#x27;locale&#x27; is not key=value"),
        ({"from": "2026-02-30"}, "From: &#x27;2026-02-30&#x27; is not a date"),
        ({"period": "forever"}, "Period: &#x27;forever&#x27; is not one of 24h, 7d, 30d"),
        ({"window": "0"}, "Window: &#x27;0&#x27; is not a whole number from 1 to 100,000"),
    ],
)
def test_page_shows_a_bad_filter_beside_its_field(expert_client, scenario, query, message):
    response = expert_client.get(PAGE, query)
    assert response.status_code == 400
    content = response.content.decode()
    assert message in content
    if "period" not in query:  # a select cannot show a value it does not offer
        assert f'value="{next(iter(query.values()))}"' in content  # the bad value stays in its field
    if "window" not in query:
        assert "Correct the filters above to see the counts." in content and "<table" not in content


@uses_db
def test_page_escapes_filter_values_it_echoes(expert_client, scenario):
    content = expert_client.get(PAGE, {"meta": "<script>alert(1)</script>"}).content.decode()
    assert "<script>alert(1)</script>" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content


@uses_db
def test_page_shows_the_co_occurring_modes(expert_client, scenario):
    response = expert_client.get(PAGE)
    assert as_pairs(response.context["pairs"]) == [("hallucination", "tone", 1, 0.5)]
    content = response.content.decode()
    table = content[content.index("Failure modes that occur together") :]
    assert "<td>hallucination</td>" in table and "<td>tone</td>" in table and "50.0%" in table


@uses_db
def test_page_says_no_new_mode_in_the_last_window_traces(expert_client, project, expert):
    coded_note(reviewed_trace(project, 1), expert, mode(project, "hallucination"))
    for minutes in range(2, 7):
        reviewed_trace(project, minutes)
    content = expert_client.get(PAGE, {"window": "5"}).content.decode()
    assert "No new failure mode in the last 5 reviewed traces." in content
    assert "The taxonomy looks saturated." in content
    content = expert_client.get(PAGE, {"window": "3"}).content.decode()
    assert "No new failure mode in the last 3 reviewed traces." in content and "Nor in the last 5." in content


@uses_db
def test_page_counts_new_modes_in_a_full_window(expert_client, scenario):
    content = expert_client.get(PAGE, {"window": "3"}).content.decode()
    assert "2 new failure modes in the last 3 reviewed traces" in content
    assert "still growing" in content


@uses_db
def test_page_says_it_is_too_early_when_fewer_traces_than_the_window_were_reviewed(expert_client, project, expert):
    coded_note(reviewed_trace(project, 1), expert, mode(project, "hallucination"))
    reviewed_trace(project, 2)
    content = expert_client.get(PAGE).content.decode()
    assert "Too early to call saturation: fewer than 20 traces reviewed." in content


@uses_db
def test_outsider_gets_404_for_the_filtered_page(outsider_client, scenario):
    assert outsider_client.get(PAGE, {"source": "production", "window": "5"}).status_code == 404


# --- the fast paths agree with the plain ones -------------------------------------------------------------------


@uses_db
def test_first_appearances_found_beyond_the_review_log_walk_give_the_same_curve(varied, monkeypatch):
    from annotation import taxonomy

    walked = saturation_curve(project=varied.project)
    # A walk of one review finds at most the first trace's modes; every other mode falls back to the aggregate.
    monkeypatch.setattr(taxonomy, "FIRST_APPEARANCE_WALK", 1)
    assert saturation_curve(project=varied.project) == walked
    monkeypatch.setattr(taxonomy, "FIRST_APPEARANCE_WALK", 0)
    assert saturation_curve(project=varied.project) == walked
    assert walked[-1].distinct_failure_modes == 6


@uses_db
def test_the_aggregate_alone_breaks_ties_in_review_time_like_the_walk(project, expert, monkeypatch):
    from annotation import taxonomy

    first, second, third = (make_trace(project=project, reviewed_at=at(1)) for _ in range(3))
    shared = mode(project, "shared")
    coded_note(third, expert, shared)
    coded_note(second, expert, shared)
    monkeypatch.setattr(taxonomy, "FIRST_APPEARANCE_WALK", 0)
    assert saturation_curve(project=project) == curve(0, 1, 1)
    assert first.pk < second.pk < third.pk


@pytest.fixture
def large(monkeypatch):
    """Treat every project as large, so the taxonomy cache is used."""
    from annotation import taxonomy

    monkeypatch.setattr(taxonomy, "EXACT_COUNT_LIMIT", 0)
    return taxonomy


@uses_db
def test_cached_counts_show_a_new_coding_review_or_label_at_once(large, scenario, expert):
    project = scenario.project
    before = as_table(failure_mode_counts(project=project))
    assert before == naive_counts(project)
    coded_note(scenario.traces["t5"], expert, scenario.modes["format"])  # a new link
    assert as_table(failure_mode_counts(project=project)) == naive_counts(project) != before
    reviewed_trace(project, 9)  # a new review changes every share of reviewed traces
    assert as_table(failure_mode_counts(project=project)) == naive_counts(project)
    label = Label.objects.get(trace=scenario.traces["t2"], author=expert)
    label_submit(trace=label.trace, criterion=label.criterion, verdict="fail", critique="Wrong", user=expert)
    assert as_table(failure_mode_counts(project=project)) == naive_counts(project)


@uses_db
def test_cached_numbers_never_hide_a_rename(large, scenario):
    failure_mode_counts(project=scenario.project)
    mode_co_occurrence(project=scenario.project)
    FailureMode.objects.filter(pk=scenario.modes["tone"].pk).update(name="curtness")
    assert "curtness" in [c.name for c in failure_mode_counts(project=scenario.project)]
    assert mode_co_occurrence(project=scenario.project)[0].second_name == "curtness"


@uses_db
def test_a_removal_shows_when_the_cache_expires_on_a_large_project_and_at_once_on_a_small_one(
    large, scenario, monkeypatch
):
    from django.core.cache import cache

    first = as_table(failure_mode_counts(project=scenario.project))
    Note.objects.filter(trace=scenario.traces["t3"]).delete()  # removals do not move the data state
    assert as_table(failure_mode_counts(project=scenario.project)) == first  # served from the cache
    cache.clear()
    assert as_table(failure_mode_counts(project=scenario.project)) == naive_counts(scenario.project) != first
    # Small projects are never cached.
    monkeypatch.setattr(large, "EXACT_COUNT_LIMIT", 10_000)
    Note.objects.filter(trace=scenario.traces["t2"]).delete()
    assert as_table(failure_mode_counts(project=scenario.project)) == naive_counts(scenario.project)


@uses_db
def test_cached_curve_and_pairs_follow_new_codings(large, project, expert):
    a, b = mode(project, "a"), mode(project, "b")
    trace = reviewed_trace(project, 1)
    coded_note(trace, expert, a)
    assert saturation_curve(project=project) == curve(1)
    assert mode_co_occurrence(project=project) == []
    coded_note(trace, expert, b)
    assert saturation_curve(project=project) == curve(2)
    assert as_pairs(mode_co_occurrence(project=project)) == [("a", "b", 1, 1.0)]
