"""The Langfuse SDK's score API (`/api/public/scores`, `/api/public/ingestion`): users' scores become feedback on the
trace, also when they arrive before the trace does; what is not a user's feedback is refused by name."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.feedback import FeedbackError
from annotation.feedback_services import feedback_store_by_external_id
from annotation.ingest import import_records
from annotation.langfuse_scores import read_score
from annotation.models import Feedback, PendingFeedback
from annotation.services import api_token_create
from tests.factories import make_project, make_trace

SCORES = "/api/public/scores"
INGESTION = "/api/public/ingestion"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def _basic(secret: str, public: str = "pk-demo") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()}


@pytest.fixture
def token(project) -> str:
    return api_token_create(project=project, name="langfuse")[1]


def post(client, url: str, body: object, token: str, content_type: str = "application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(url, data=data, content_type=content_type, headers=_basic(token))


def thumbs(score_id: str, value: float, trace_id: str = TRACE_ID, **extra: object) -> dict[str, object]:
    return {"id": score_id, "traceId": trace_id, "name": "user-feedback", "value": value, **extra}


# --- reading one score ------------------------------------------------------------------------------------------


def test_a_thumbs_score_and_its_comment_are_two_items():
    trace_id, records = read_score(thumbs("s1", 0, comment="Wrong store hours"), 0)
    assert trace_id == TRACE_ID
    assert [(r.kind, r.negative, r.client_id) for r in records] == [
        ("thumbs", True, "langfuse:s1"),
        ("comment", None, "langfuse:s1:comment"),
    ]


@pytest.mark.parametrize(
    ("score", "reason"),
    [
        (thumbs("s1", 1, source="EVAL"), "score 0 (s1): source EVAL is an evaluator's score, not a user's feedback"),
        (thumbs("s1", 1, source="ANNOTATION"), "source ANNOTATION is a Langfuse annotator's score"),
        ({"id": "s2", "sessionId": "chat-9", "name": "thumbs", "value": 1}, "score 0 (s2): no traceId"),
        (
            {"id": "s3", "traceId": TRACE_ID, "name": "tone", "value": "formal", "dataType": "CATEGORICAL"},
            "a CATEGORICAL score named 'tone' is not read as feedback",
        ),
        ({"traceId": TRACE_ID, "name": "thumbs"}, "score 0 (thumbs): a score needs a name and a value"),
        (["not", "an", "object"], "score 0: expected an object"),
    ],
)
def test_what_is_not_a_users_feedback_is_refused_by_name(score, reason):
    with pytest.raises(FeedbackError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        read_score(score, 0)


def test_an_exports_evaluator_scores_are_not_read_as_users_feedback_either():
    from annotation.feedback import feedback_from_langfuse_scores

    scores = [thumbs("s1", 1, source="API"), thumbs("s2", 0.2, name="accuracy", source="EVAL")]
    assert [item["id"] for item in feedback_from_langfuse_scores(scores)] == ["langfuse:s1"]


# --- POST /api/public/scores --------------------------------------------------------------------------------------


def test_a_score_for_a_stored_trace_is_its_feedback_at_once(client, project, token):
    trace = make_trace(project=project, external_id=TRACE_ID)
    response = post(client, SCORES, [thumbs("s1", 0, comment="Wrong hours")], token)
    assert (response.status_code, response.json()) == (202, {"message": "Accepted"})
    rows = Feedback.objects.filter(trace=trace).order_by("id")
    assert [(row.kind, row.negative, row.source) for row in rows] == [
        ("thumbs", True, "langfuse"),
        ("comment", None, "langfuse"),
    ]
    # The SDK retries a failed upload with the same score ids: nothing is stored twice.
    assert post(client, SCORES, [thumbs("s1", 0, comment="Wrong hours")], token).status_code == 202
    assert Feedback.objects.filter(trace=trace).count() == 2


def test_a_score_ahead_of_its_trace_waits_and_joins_the_trace_when_it_is_stored(client, project, token):
    assert post(client, SCORES, [thumbs("s1", 0), thumbs("s1", 0)], token).status_code == 202
    assert PendingFeedback.objects.filter(project=project, external_id=TRACE_ID).count() == 1
    assert not Feedback.objects.exists()

    report = import_records(project=project, records=[{"id": TRACE_ID, "input": "Open?", "output": "Yes"}])
    assert report.created == 1
    row = Feedback.objects.get(trace__external_id=TRACE_ID)
    assert (row.kind, row.value, row.negative, row.client_id) == ("thumbs", "down", True, "langfuse:s1")
    assert not PendingFeedback.objects.exists()


def test_pending_feedback_of_another_project_stays_with_it(client, project, token):
    other = make_project()
    post(client, SCORES, [thumbs("s1", 1)], token)
    import_records(project=other, records=[{"id": TRACE_ID, "input": "Open?", "output": "Yes"}])
    assert not Feedback.objects.exists()
    assert PendingFeedback.objects.filter(project=project).count() == 1


def test_feedback_waiting_past_its_days_is_dropped(project, settings):
    settings.EVALSTUDIO_PENDING_FEEDBACK_DAYS = 30
    _, records = read_score(thumbs("old", 1, trace_id="a" * 32), 0)
    long_ago = timezone.now() - timedelta(days=31)
    feedback_store_by_external_id(project_id=project.pk, items=[("a" * 32, records[0])], now=long_ago)
    _, records = read_score(thumbs("new", 1), 0)
    feedback_store_by_external_id(project_id=project.pk, items=[(TRACE_ID, records[0])])
    assert list(PendingFeedback.objects.values_list("external_id", flat=True)) == [TRACE_ID]


def test_a_mixed_batch_is_207_naming_each_refused_score(client, project, token):
    make_trace(project=project, external_id=TRACE_ID)
    body = [thumbs("s1", 1), thumbs("s2", 0.9, name="accuracy", source="EVAL"), {"id": "s3", "name": "x"}]
    response = post(client, SCORES, body, token)
    assert response.status_code == 207
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (1, 2)
    assert [error["message"].split(":")[0] for error in result["errors"]] == ["score 1 (s2)", "score 2 (s3)"]
    assert Feedback.objects.count() == 1


def test_the_single_score_form_is_read_too(client, project, token):
    make_trace(project=project, external_id=TRACE_ID)
    response = post(client, SCORES, thumbs("s1", 4, name="stars", dataType="NUMERIC"), token)
    assert response.status_code == 202
    row = Feedback.objects.get()
    assert (row.kind, row.value, row.scale, row.negative) == ("rating", 4, 5.0, False)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Authentication required: HTTP Basic"),
        (_basic("es_not-a-token"), "Invalid token: no such API token"),
    ],
)
def test_without_the_projects_token_it_is_401_with_a_basic_challenge(client, project, headers, message):
    response = client.post(SCORES, data="[]", content_type="application/json", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="langfuse"'
    assert response.json()["message"].startswith(message)


def test_bad_bodies_are_refused_with_the_reason(client, project, token):
    assert post(client, SCORES, b"[{", token).json()["message"].startswith("Malformed JSON")
    assert post(client, SCORES, {"batch": 1}, token).status_code == 207  # one score object, refused by name
    assert post(client, SCORES, "a string", token).json() == {"message": "The body must be a JSON list of scores"}
    wrong_type = post(client, SCORES, b"x=1", token, content_type="application/x-www-form-urlencoded")
    assert wrong_type.status_code == 415
    assert client.get(SCORES, headers=_basic(token)).status_code == 405


def test_scores_are_rate_limited_like_the_api(client, project, token, settings):
    from django.core.cache import cache

    from core.rates import Rate

    cache.clear()
    settings.EVALSTUDIO_API_RATE_PER_TOKEN = Rate(1, 60)
    assert post(client, SCORES, [thumbs("s1", 1)], token).status_code == 202
    limited = post(client, SCORES, [thumbs("s2", 1)], token)
    assert limited.status_code == 429 and int(limited["Retry-After"]) >= 1


# --- POST /api/public/ingestion (the v3 SDK's batch) --------------------------------------------------------------


def test_the_ingestion_batch_stores_score_events_and_refuses_the_rest_by_id(client, project, token):
    make_trace(project=project, external_id=TRACE_ID)
    batch = [
        {"id": "e1", "type": "score-create", "timestamp": "2026-12-04T10:00:00Z", "body": thumbs("s1", 0)},
        {"id": "e2", "type": "trace-create", "timestamp": "2026-12-04T10:00:00Z", "body": {"id": TRACE_ID}},
        {"id": "e3", "type": "score-create", "body": thumbs("s3", 1, source="EVAL")},
    ]
    response = post(client, INGESTION, {"batch": batch}, token)
    assert response.status_code == 207
    result = response.json()
    assert result["successes"] == [{"id": "e1", "status": 201}]
    assert {error["id"]: error["message"].split(";")[0] for error in result["errors"]} == {
        "e2": "event e2: type 'trace-create' is not stored here",
        "e3": "score 1 (s3): source EVAL is an evaluator's score, not a user's feedback",
    }
    assert Feedback.objects.get().negative is True
    assert post(client, INGESTION, [1], token).json() == {"message": 'The body must be {"batch": [events]}'}
