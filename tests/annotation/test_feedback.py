"""Users' feedback stored with traces: ingestion (JSONL, CSV, API), the feedback API, export, the trace page and
the "negative feedback first" review session."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.test import Client

from annotation import ingest
from annotation.models import Feedback, ReviewSessionTrace, Role, Trace
from annotation.services import api_token_create
from annotation.sessions import review_session_create
from tests.factories import add_member, make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(project) -> str:
    return api_token_create(project=project, name="app")[1]


def jsonl(*items: dict) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(item) + "\n" for item in items).encode())


def post_feedback(client: Client, body: object, *, token: str | None, trace: str = "t1", slug: str = "acme"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(
        f"/api/v1/projects/{slug}/traces/{trace}/feedback",
        data=json.dumps(body),
        content_type="application/json",
        headers=headers,
    )


# Ingestion ---------------------------------------------------------------------------------------------------------


def test_jsonl_import_stores_feedback_and_reimporting_stores_it_once(project):
    item = {
        "id": "t1",
        "input": "q",
        "feedback": [
            {"kind": "thumbs", "value": "down", "at": "2026-12-01T10:00:00Z", "user": "u1"},
            {"kind": "rating", "value": 5},
            {"kind": "comment", "value": "fine"},
        ],
    }
    report = ingest.import_stream(project=project, stream=jsonl(item))
    assert (report.created, report.rejected) == (1, [])
    rows = list(Feedback.objects.order_by("id").values_list("kind", "value", "negative", "end_user"))
    assert rows == [("thumbs", "down", True, "u1"), ("rating", 5.0, False, ""), ("comment", "fine", None, "")]
    assert Trace.objects.get().reviewed_at is None  # users' feedback is not the expert's review
    # Re-imported with on_conflict=update (the trace is written again): the items' content keys store nothing new.
    ingest.import_stream(project=project, stream=jsonl(item), on_conflict="update")
    assert Feedback.objects.count() == 3


def test_a_bad_feedback_item_rejects_its_line_by_index_and_writes_nothing_of_it(project):
    report = ingest.import_stream(
        project=project,
        stream=jsonl(
            {"id": "ok", "input": "q", "feedback": [{"kind": "thumbs", "value": "up"}]},
            {"id": "bad", "input": "q", "feedback": [{"kind": "thumbs", "value": "up"}, {"kind": "stars", "value": 3}]},
        ),
    )
    assert [(r.line, r.error) for r in report.rejected] == [
        (2, 'feedback[1].kind: expected "thumbs", "rating" or "comment", got "stars"')
    ]
    assert list(Trace.objects.values_list("external_id", flat=True)) == ["ok"]
    assert Feedback.objects.count() == 1


def test_csv_import_stores_the_feedback_column(project):
    body = b'id,input,feedback\nt1,q,"[{""kind"": ""rating"", ""value"": 1, ""scale"": 5}]"\n'
    report = ingest.import_stream(project=project, stream=io.BytesIO(body), fmt="csv")
    assert report.rejected == []
    assert Feedback.objects.get().negative is True


def test_trace_api_stores_feedback(client, project, token):
    body = {"traces": [{"id": "t1", "input": "q", "feedback": [{"kind": "thumbs", "value": -1}]}]}
    response = client.post(
        "/api/v1/projects/acme/traces",
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert Feedback.objects.get().value == "down"


def test_export_writes_feedback_and_import_reads_it_back_unchanged(project, tmp_path):
    trace = make_trace(project=project, external_id="t1", input="q", occurred_at=datetime(2026, 12, 1, tzinfo=UTC))
    Feedback.objects.create(trace=trace, kind="thumbs", value="down", negative=True, client_id="f1", end_user="u")
    Feedback.objects.create(
        trace=trace, kind="rating", value=4.0, scale=5.0, negative=False, at=datetime(2026, 12, 1, 9, tzinfo=UTC)
    )
    first = tmp_path / "a.jsonl"
    call_command("export_traces", "--project", "acme", str(first))
    record = json.loads(first.read_text())
    assert record["feedback"] == [
        {"kind": "thumbs", "value": "down", "user": "u", "id": "f1"},
        {"kind": "rating", "value": 4, "scale": 5, "at": "2026-12-01T09:00:00Z"},
    ]
    other = make_project(slug="copy", expert=project.expert)
    with first.open("rb") as stream:
        ingest.import_stream(project=other, stream=stream)
    second = tmp_path / "b.jsonl"
    call_command("export_traces", "--project", "copy", str(second))
    again = json.loads(second.read_text())["feedback"]
    # The keyless rating got its content key as id on import; everything else is byte for byte the same.
    assert again[0] == record["feedback"][0]
    assert {k: v for k, v in again[1].items() if k != "id"} == record["feedback"][1]
    assert again[1]["id"].startswith("fb:")


# The feedback API --------------------------------------------------------------------------------------------------


def test_feedback_api_stores_one_item_or_a_list_and_answers_201_with_the_rows(client, project, token):
    make_trace(project=project, external_id="t1")
    one = post_feedback(client, {"kind": "thumbs", "value": "down", "id": "f1", "user": "u9"}, token=token)
    assert one.status_code == 201
    stored = one.json()["stored"]
    assert [(s["kind"], s["value"], s["negative"], s["client_id"], s["user"]) for s in stored] == [
        ("thumbs", "down", True, "f1", "u9")
    ]
    many = post_feedback(
        client, [{"kind": "rating", "value": 9, "scale": 10}, {"kind": "comment", "value": "ok"}], token=token
    )
    assert many.status_code == 201
    assert [s["kind"] for s in many.json()["stored"]] == ["rating", "comment"]
    assert Feedback.objects.filter(trace__external_id="t1").count() == 3


def test_a_retry_with_the_same_client_id_stores_nothing_new(client, project, token):
    make_trace(project=project, external_id="t1")
    body = [{"kind": "thumbs", "value": "up", "id": "f1"}, {"kind": "comment", "value": "nice", "id": "f2"}]
    assert post_feedback(client, body, token=token).status_code == 201
    retry = post_feedback(client, body, token=token)
    assert retry.status_code == 200
    assert retry.json()["stored"] == [] and retry.json()["duplicates"] == ["f1", "f2"]
    half = post_feedback(client, [*body, {"kind": "thumbs", "value": "down", "id": "f3"}], token=token)
    assert (half.status_code, [s["client_id"] for s in half.json()["stored"]]) == (201, ["f3"])
    assert Feedback.objects.count() == 3
    # Without ids, identical items are distinct users' feedback: both are stored.
    post_feedback(client, {"kind": "thumbs", "value": "up"}, token=token)
    post_feedback(client, {"kind": "thumbs", "value": "up"}, token=token)
    assert Feedback.objects.filter(client_id="").count() == 2


def test_feedback_api_errors_name_what_and_where_and_store_nothing(client, project, token):
    make_trace(project=project, external_id="t1")
    bad = post_feedback(client, [{"kind": "thumbs", "value": "up"}, {"kind": "rating", "value": 7}], token=token)
    assert bad.status_code == 400
    assert bad.json() == {"detail": "feedback[1].value: 7 is outside the scale 0–5"}
    single = post_feedback(client, {"kind": "thumbs", "value": "meh"}, token=token)
    assert single.json()["detail"].startswith('feedback.value: expected "up" or "down"')
    assert post_feedback(client, [], token=token).status_code == 400
    missing = post_feedback(client, {"kind": "thumbs", "value": "up"}, token=token, trace="nope")
    assert (missing.status_code, missing.json()) == (404, {"detail": "No trace 'nope' in this project"})
    wrong_type = client.post(
        "/api/v1/projects/acme/traces/t1/feedback",
        data="x",
        content_type="text/plain",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert wrong_type.status_code == 415
    malformed = client.post(
        "/api/v1/projects/acme/traces/t1/feedback",
        data="{",
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert malformed.status_code == 400 and malformed.json()["detail"].startswith("Malformed JSON")
    assert Feedback.objects.count() == 0


def test_feedback_api_follows_the_auth_contract(client, project, token, expert):
    make_trace(project=project, external_id="t1")
    body = {"kind": "thumbs", "value": "up"}
    anonymous = post_feedback(client, body, token=None)
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    assert post_feedback(client, body, token="nonsense").status_code == 401
    other = make_project(slug="other", expert=make_user())
    other_token = api_token_create(project=other, name="x")[1]
    assert post_feedback(client, body, token=other_token).status_code == 404
    viewer = make_user()
    add_member(project, viewer, role=Role.VIEWER)
    viewer_client = Client(enforce_csrf_checks=False)
    viewer_client.force_login(viewer)
    assert post_feedback(viewer_client, body, token=None).status_code == 403
    assert Feedback.objects.count() == 0


def test_a_trace_id_with_slashes_takes_feedback(client, project, token):
    make_trace(project=project, external_id="conv/42/turn 3")
    response = post_feedback(client, {"kind": "thumbs", "value": "up"}, token=token, trace="conv/42/turn%203")
    assert (response.status_code, response.json()["trace"]) == (201, "conv/42/turn 3")


def test_feedback_route_is_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert "post" in paths["/api/v1/projects/{slug}/traces/{external_id}/feedback"]


# The trace page and the review queue -------------------------------------------------------------------------------


def test_trace_page_shows_feedback_escaped(expert_client, project):
    trace = make_trace(project=project, external_id="t1", input="q")
    Feedback.objects.create(trace=trace, kind="thumbs", value="down", negative=True, end_user="u<1>")
    Feedback.objects.create(trace=trace, kind="comment", value="<script>alert(1)</script>", source="app")
    page = expert_client.get("/projects/acme/traces/t1/").content.decode()
    assert 'id="user-feedback"' in page and "thumbs down" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "u&lt;1&gt;" in page
    plain = make_trace(project=project, external_id="t2", input="q")
    assert 'id="user-feedback"' not in expert_client.get(f"/projects/acme/traces/{plain.external_id}/").content.decode()


def test_negative_feedback_session_takes_traces_with_negative_feedback_first(project, expert):
    base = datetime(2026, 11, 1, tzinfo=UTC)
    traces = [
        make_trace(project=project, external_id=f"n-{i:02d}", occurred_at=base + timedelta(minutes=i))
        for i in range(12)
    ]
    Feedback.objects.create(trace=traces[3], kind="thumbs", value="down", negative=True)
    for _ in range(2):
        Feedback.objects.create(trace=traces[7], kind="rating", value=1.0, scale=5.0, negative=True)
    Feedback.objects.create(trace=traces[5], kind="thumbs", value="up", negative=False)
    Feedback.objects.create(trace=traces[9], kind="comment", value="meh")
    reviewed = traces[11]
    Feedback.objects.create(trace=reviewed, kind="thumbs", value="down", negative=True)
    Trace.objects.filter(pk=reviewed.pk).update(reviewed_at=base)

    created = review_session_create(project=project, created_by=expert, strategy="negative_feedback", size=5, seed="s")
    picked = list(
        ReviewSessionTrace.objects.filter(session=created.session)
        .order_by("position")
        .values_list("trace__external_id", flat=True)
    )
    # Most negative items first, then the next; the rest filled at random among the unreviewed, none twice.
    assert picked[:2] == ["n-07", "n-03"]
    assert len(picked) == 5 == len(set(picked))
    assert "n-11" not in picked
    assert created.session.params["seed"] == "s"


def test_the_sessions_page_offers_the_strategy_and_creates_such_a_session(expert_client, project):
    trace = make_trace(project=project, external_id="bad-one")
    make_trace(project=project, external_id="fine")
    Feedback.objects.create(trace=trace, kind="thumbs", value="down", negative=True)
    page = expert_client.get("/projects/acme/sessions/").content.decode()
    assert 'value="negative_feedback"' in page and "Negative user feedback first" in page
    response = expert_client.post("/projects/acme/sessions/new/", {"strategy": "negative_feedback", "size": 1})
    assert response.status_code == 302
    item = ReviewSessionTrace.objects.get()
    assert (item.session.strategy, item.trace.external_id) == ("negative_feedback", "bad-one")
