"""The read API for notebooks: the project's traces with labels, critiques, notes and failure modes, cursor-paged
and filtered like the trace list, in a fixed number of queries; and a judge run's verdicts beside the expert's
labels. Both in the OpenAPI document (the auth contract test walks them like every route)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.api import api
from annotation.models import FailureMode, Trace
from annotation.services import api_token_create
from judges.models import Judgment
from judges.services import judge_create, judge_run_create, judge_run_execute
from tests.factories import code_note, make_criterion, make_label, make_note, make_trace

pytestmark = pytest.mark.django_db
TRACES = "/api/v1/projects/acme/traces"


@pytest.fixture
def token(project) -> str:
    return api_token_create(project=project, name="notebook")[1]


def get(client, url: str, token: str, **params):
    return client.get(url, params, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def reviewed(project, expert, teammate):
    """Five traces: t-1 labelled fail with a critique and a coded note, t-2 labelled pass, the rest bare."""
    criterion = make_criterion(project=project, name="factual")
    tone = make_criterion(project=project, name="tone")
    mode = FailureMode.objects.create(
        project=project, name="invented statistic", definition="A number not in the source"
    )
    traces = [
        make_trace(
            project=project,
            external_id=f"t-{i}",
            input=f"q{i}",
            source="production" if i % 2 else "dev",
            metadata={"locale": "fr" if i == 3 else "en"},
        )  # fmt: skip
        for i in range(1, 6)
    ]
    make_label(trace=traces[0], criterion=criterion, verdict="fail", critique="Claims 94 reactors; there are 92.")
    make_label(trace=traces[0], criterion=tone, verdict="pass")
    make_label(trace=traces[1], criterion=criterion, verdict="pass")
    code_note(make_note(trace=traces[0], author=expert, text="Invents a statistic"), mode)
    make_note(trace=traces[0], author=teammate, text="Also too long")
    Trace.objects.filter(pk__in=[traces[0].pk, traces[1].pk]).update(reviewed_at=traces[0].created_at)
    return {"traces": traces, "criterion": criterion, "mode": mode}


def test_each_trace_comes_with_its_labels_critiques_notes_and_failure_modes(client, reviewed, token):
    response = get(client, TRACES, token)
    assert response.status_code == 200, response.content
    body = response.json()
    assert [t["id"] for t in body["traces"]] == ["t-1", "t-2", "t-3", "t-4", "t-5"]
    assert body["next_cursor"] is None
    first = body["traces"][0]
    assert [(lab["criterion"], lab["verdict"], lab["critique"], lab["author"]) for lab in first["labels"]] == [
        ("factual", "fail", "Claims 94 reactors; there are 92.", "expert"),
        ("tone", "pass", "", "expert"),
    ]
    assert [(n["text"], n["author"], n["failure_modes"]) for n in first["notes"]] == [
        ("Invents a statistic", "expert", ["invented statistic"]),
        ("Also too long", "teammate", []),
    ]
    assert first["failure_modes"] == ["invented statistic"]
    assert (first["input"], first["source"], first["metadata"]) == ("q1", "production", {"locale": "en"})
    assert body["traces"][4]["labels"] == [] and body["traces"][4]["reviewed_at"] is None


def test_pages_follow_the_cursor_without_gaps_or_repeats(client, reviewed, token):
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = get(client, TRACES, token, **params).json()
        seen += [t["id"] for t in body["traces"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["t-1", "t-2", "t-3", "t-4", "t-5"]


def test_a_page_costs_the_same_queries_whatever_its_size(client, project, expert, reviewed, token):
    def queries(limit: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert get(client, TRACES, token, limit=limit).status_code == 200
        return len(captured)

    queries(1)  # the token's first use is written (last_used_at); later uses within a minute are not
    small = queries(1)
    for i in range(30):
        trace = make_trace(project=project, external_id=f"more-{i}")
        make_label(trace=trace, criterion=reviewed["criterion"], verdict="pass", critique="fine")
        code_note(make_note(trace=trace, author=expert), reviewed["mode"])
    assert queries(35) == small


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        ({"source": "production"}, ["t-1", "t-3", "t-5"]),
        ({"meta": "locale=fr"}, ["t-3"]),
        ({"reviewed": "yes"}, ["t-1", "t-2"]),
        ({"reviewed": "no"}, ["t-3", "t-4", "t-5"]),
        ({"source": "production", "reviewed": "no"}, ["t-3", "t-5"]),
    ],
)
def test_the_trace_lists_filters_apply(client, reviewed, token, params, ids):
    assert [t["id"] for t in get(client, TRACES, token, **params).json()["traces"]] == ids


def test_the_failure_mode_filter_takes_the_modes_id(client, reviewed, token):
    body = get(client, TRACES, token, mode=reviewed["mode"].pk).json()
    assert [t["id"] for t in body["traces"]] == ["t-1"]


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"limit": "501"}, "Query parameter 'limit' must be a whole number from 1 to 500; got '501'"),
        ({"limit": "0"}, "Query parameter 'limit' must be a whole number from 1 to 500; got '0'"),
        ({"cursor": "not-a-cursor"}, "Query parameter 'cursor' is not a cursor this API gave"),
        ({"cursor": "dDk5OTk5OTk5OTk5OTk5OTk5OTk5OTk"}, "Query parameter 'cursor' is not a cursor this API gave"),
        ({"mode": "99999999999999999999"}, "Query parameter 'mode' must be a failure mode's id"),
        ({"reviewed": "maybe"}, "Query parameter 'reviewed' must be yes or no; got 'maybe'"),
        ({"mode": "x"}, "Query parameter 'mode' must be a failure mode's id"),
        ({"meta": "locale"}, "Query parameter 'meta' must be key=value"),
        ({"sort": "id"}, "Unknown query parameter 'sort'"),
    ],
)
def test_a_bad_parameter_is_400_naming_it(client, project, token, params, detail):
    response = get(client, TRACES, token, **params)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail), response.json()


def test_an_outsider_sees_404_and_a_member_session_reads(outsider_client, teammate_client, reviewed):
    assert outsider_client.get(TRACES).status_code == 404
    assert len(teammate_client.get(TRACES).json()["traces"]) == 5


def test_both_read_routes_are_in_the_openapi_document():
    paths = api.get_openapi_schema()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/projects/{slug}/traces"])
    assert "get" in paths["/api/v1/judge-runs/{run_id}/judgments"]


# --- judgments of a run ----------------------------------------------------------------------------------------


@pytest.fixture
def run(project):
    criterion = make_criterion(project=project, name="no_apology")
    for i, (output, verdict) in enumerate([("Sorry.", "fail"), ("Done.", "pass"), ("Sorry!", "pass"), ("Ok", "pass")]):
        trace = make_trace(project=project, external_id=f"j-{i}", output=output)
        make_label(trace=trace, criterion=criterion, verdict=verdict, critique=f"why {i}")
    config = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=config)
    return judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))


def test_judgments_come_beside_the_experts_label_and_page(client, run, token):
    url = f"/api/v1/judge-runs/{run.pk}/judgments"
    first = get(client, url, token, limit=3).json()
    rest = get(client, url, token, limit=3, cursor=first["next_cursor"]).json()
    assert rest["next_cursor"] is None and first["criterion"] == "no_apology"
    rows = {j["trace"]: j for j in first["judgments"] + rest["judgments"]}
    assert len(rows) == Judgment.objects.filter(run=run).count() == 4
    assert (rows["j-0"]["verdict"], rows["j-0"]["expert_verdict"], rows["j-0"]["agrees"]) == ("fail", "fail", True)
    assert (rows["j-2"]["verdict"], rows["j-2"]["expert_verdict"], rows["j-2"]["agrees"]) == ("fail", "pass", False)
    assert rows["j-2"]["expert_critique"] == "why 2" and rows["j-2"]["reasoning"]
    disagreements = get(client, url, token, agrees="no").json()["judgments"]
    assert [j["trace"] for j in disagreements] == ["j-2"]


def test_judgments_of_a_run_the_caller_cannot_see_are_404(client, run):
    from tests.factories import make_project, make_user

    other = api_token_create(project=make_project(slug="other", expert=make_user("o")), name="x")[1]
    response = get(client, f"/api/v1/judge-runs/{run.pk}/judgments", other)
    assert (response.status_code, response.json()) == (404, {"detail": f"No judge run {run.pk}"})
    assert get(client, f"/api/v1/judge-runs/{run.pk}/judgments", other, agrees="x").status_code == 404


def test_a_bad_judgments_parameter_is_400_naming_it(client, run, token):
    response = get(client, f"/api/v1/judge-runs/{run.pk}/judgments", token, agrees="maybe")
    assert (response.status_code, response.json()["detail"]) == (
        400,
        "Query parameter 'agrees' must be yes or no; got 'maybe'",
    )
