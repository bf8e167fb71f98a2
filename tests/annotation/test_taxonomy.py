"""The failure taxonomy: exact counts per failure mode, the saturation curve, their REST routes and their page."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from annotation.ingest import import_stream
from annotation.models import FailureMode, Label, Note, Project, Role, Trace
from annotation.services import api_token_create, note_create
from annotation.taxonomy import (
    FailureModeCount,
    SaturationPoint,
    failure_mode_counts,
    no_new_mode_streak,
    saturation_curve,
    saturation_points,
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


def naive_counts(project: Project) -> dict[str, tuple[int, int, float, float]]:
    """The definitions, spelled out row by row: an oracle independent of the aggregate SQL."""
    reviewed = set(Trace.objects.filter(project=project, reviewed_at__isnull=False).values_list("id", flat=True))
    failing = set(
        Label.objects.filter(trace__project=project, verdict="fail", author=project.expert).values_list(
            "trace_id", flat=True
        )
    )
    result = {}
    for fm in FailureMode.objects.filter(project=project):
        notes = list(fm.notes.all())
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
def test_taxonomy_routes_with_another_projects_token_are_403(client, project, expert, url):
    _, raw = api_token_create(project=make_project(slug="other", expert=expert), name="ci")
    response = get(client, url, token=raw)
    assert (response.status_code, response.json()) == (403, {"detail": "This token belongs to another project"})


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
