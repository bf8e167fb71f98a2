"""The OTLP/HTTP receiver answers as the OTLP specification says, and stores what it acknowledges."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from annotation.access import PERMISSIONS, TEAM, Permission, Rule
from annotation.models import ApiToken, Span, SpanAssembly
from annotation.services import api_token_create
from core.counters import SPANS_ACCEPTED, SPANS_REJECTED, counter_values
from tests.annotation.otlp_helpers import export_request, llm_trace, new_span_id, new_trace_id, otlp_json, span
from tests.factories import make_project

pytestmark = pytest.mark.django_db

URL = "/v1/traces"
LANGFUSE_URL = "/api/public/otel/v1/traces"
PROTOBUF = "application/x-protobuf"


@pytest.fixture
def token(project) -> str:
    _, raw = api_token_create(project=project, name="otel")
    return raw


def status_message(response) -> str:
    """An error answer's message: a google.rpc.Status, protobuf for a protobuf request, its JSON mapping otherwise."""
    if response["Content-Type"] == "application/x-protobuf":
        return Status.FromString(response.content).message
    body = response.json()
    assert set(body) == {"code", "message"}
    return body["message"]


def post(
    client: Client,
    body: bytes,
    *,
    token: str | None,
    content_type: str = PROTOBUF,
    url: str = URL,
    headers_extra: dict[str, str] | None = None,
):
    headers = dict(headers_extra or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(url, data=body, content_type=content_type, headers=headers)


def test_protobuf_export_is_stored_and_answered_with_an_empty_protobuf_response(client, project, token):
    trace_id = new_trace_id()
    response = post(client, export_request(*llm_trace(trace_id)).SerializeToString(), token=token)
    assert response.status_code == 200
    assert response["Content-Type"] == PROTOBUF
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert not answer.HasField("partial_success")
    stored = Span.objects.filter(project=project, trace_id=trace_id)
    assert sorted(stored.values_list("name", flat=True)) == ["chat", "llm", "retrieve"]
    root = stored.get(name="chat")
    assert (root.parent_span_id, root.attributes["input.value"], root.resource["service.name"]) == (
        "",
        "Where is my order?",
        "checkout-bot",
    )
    assert root.end_ns - root.start_ns == 120_000_000
    assert list(SpanAssembly.objects.values_list("trace_id", flat=True)) == [trace_id]


def test_otlp_json_export_with_hex_ids_is_answered_in_json(client, project, token):
    trace_id = new_trace_id()
    body = json.dumps(otlp_json(export_request(*llm_trace(trace_id)))).encode()
    response = post(client, body, token=token, content_type="application/json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {}
    assert Span.objects.filter(project=project, trace_id=trace_id).count() == 3


def test_gzip_body_is_inflated(client, project, token):
    trace_id = new_trace_id()
    body = gzip.compress(export_request(*llm_trace(trace_id)).SerializeToString())
    response = post(client, body, token=token, headers_extra={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.content
    assert Span.objects.filter(trace_id=trace_id).count() == 3


def test_a_resent_export_changes_nothing(client, project, token):
    trace_id = new_trace_id()
    body = export_request(*llm_trace(trace_id)).SerializeToString()
    assert post(client, body, token=token).status_code == 200
    before = list(Span.objects.order_by("id").values_list("id", "span_id", "received_at"))
    assert post(client, body, token=token).status_code == 200
    assert list(Span.objects.order_by("id").values_list("id", "span_id", "received_at")) == before
    assert SpanAssembly.objects.count() == 1


def test_bad_spans_are_rejected_in_partial_success_and_the_good_ones_stored(client, project, token):
    trace_id = new_trace_id()
    good = span(trace_id, new_span_id(), name="good")
    zero_id = span(trace_id, new_span_id(), name="zero id")
    zero_id.span_id = b"\0" * 8
    backwards = span(trace_id, new_span_id(), name="backwards", start_ms=50, end_ms=10)
    counted = {name: counter_values(name, [project.pk])[project.pk] for name in (SPANS_ACCEPTED, SPANS_REJECTED)}
    response = post(client, export_request(good, zero_id, backwards).SerializeToString(), token=token)
    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 2
    assert answer.partial_success.error_message == (
        "span 1: span_id must be 8 bytes and not all zero; span 2: end_time_unix_nano is before start_time_unix_nano"
    )
    assert list(Span.objects.values_list("name", flat=True)) == ["good"]
    # /metrics reads these: one span accepted, two rejected.
    assert counter_values(SPANS_ACCEPTED, [project.pk])[project.pk] == counted[SPANS_ACCEPTED] + 1
    assert counter_values(SPANS_REJECTED, [project.pk])[project.pk] == counted[SPANS_REJECTED] + 2


def test_partial_success_in_json_for_a_json_request(client, project, token):
    trace_id = new_trace_id()
    document = otlp_json(export_request(span(trace_id, new_span_id()), span(trace_id, new_span_id())))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = "00" * 16
    response = post(client, json.dumps(document).encode(), token=token, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {
        "partialSuccess": {"rejectedSpans": "1", "errorMessage": "span 1: trace_id must be 16 bytes and not all zero"}
    }


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"\xff\xff\xff", PROTOBUF, "not an OTLP protobuf ExportTraceServiceRequest"),
        (b"{not json", "application/json", "not JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}', "application/json", "not hex"),
    ],
)
def test_an_undecodable_body_is_400_with_the_reason(client, project, token, body, content_type, message):
    response = post(client, body, token=token, content_type=content_type)
    assert response.status_code == 400
    assert message in status_message(response)
    assert Span.objects.count() == 0


def test_a_broken_gzip_stream_is_400(client, project, token):
    body = gzip.compress(export_request(*llm_trace(new_trace_id())).SerializeToString())[:-12]
    response = post(client, body, token=token, headers_extra={"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "gzip" in status_message(response)


def test_another_content_type_is_415(client, project, token):
    response = post(client, b"hello", token=token, content_type="text/plain")
    assert response.status_code == 415
    assert "application/x-protobuf or application/json" in status_message(response)


def test_a_body_over_the_limit_is_413(client, project, token, settings):
    settings.EVALSTUDIO_MAX_REQUEST_BYTES = 1000
    response = post(client, b"\0" * 1001, token=token)
    assert response.status_code == 413
    # The OTLP specification's error body: a protobuf Status for a protobuf request, with the gRPC code.
    status = Status.FromString(response.content)
    assert (status.code, status.message) == (8, "The body is 1,001 bytes; the limit is 1,000 bytes")


def test_a_gzip_bomb_is_413_without_inflating_it_whole(client, project, token, settings):
    settings.EVALSTUDIO_MAX_REQUEST_BYTES = 100_000
    bomb = gzip.compress(b"\0" * 50_000_000)  # ~50 KB that inflate to 50 MB
    assert len(bomb) < 100_000
    response = post(client, bomb, token=token, headers_extra={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "inflates past the limit of 100,000 bytes" in status_message(response)
    assert Span.objects.count() == 0


def test_missing_token_is_401_with_a_bearer_challenge(client, project):
    response = post(client, export_request(*llm_trace(new_trace_id())).SerializeToString(), token=None)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("state", ["unknown", "expired", "revoked"])
def test_an_unusable_token_is_401_invalid_token(client, project, token, state):
    raw = token
    if state == "unknown":
        raw = "es_not-a-token"
    elif state == "expired":
        ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    else:
        ApiToken.objects.update(revoked_at=timezone.now())
    response = post(client, export_request(*llm_trace(new_trace_id())).SerializeToString(), token=raw)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'
    assert Span.objects.count() == 0


def test_a_token_without_the_add_traces_right_is_403(client, project, token, monkeypatch):
    # No token lacks ADD_TRACES today; the rule is what the receiver consults, so it is changed here.
    monkeypatch.setitem(PERMISSIONS, Permission.ADD_TRACES, Rule(TEAM, "no", token=False))
    response = post(client, export_request(*llm_trace(new_trace_id())).SerializeToString(), token=token)
    assert response.status_code == 403
    assert Span.objects.count() == 0


def test_spans_go_to_the_tokens_project(client, project, token):
    other = make_project(slug="other")
    _, other_token = api_token_create(project=other, name="otel")
    post(client, export_request(*llm_trace(new_trace_id())).SerializeToString(), token=other_token)
    assert set(Span.objects.values_list("project__slug", flat=True)) == {"other"}


def test_get_is_405(client, token):
    response = client.get(URL, headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response["Allow"]) == (405, "POST")


def _basic(public: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()


def test_langfuse_path_takes_basic_auth_with_the_token_as_secret_key_and_any_public_key(client, project, token):
    trace_id = new_trace_id()
    body = export_request(*llm_trace(trace_id)).SerializeToString()
    response = client.post(
        LANGFUSE_URL, data=body, content_type=PROTOBUF, headers={"Authorization": _basic("pk-anything", token)}
    )
    assert response.status_code == 200
    assert Span.objects.filter(project=project, trace_id=trace_id).count() == 3


@pytest.mark.parametrize("authorization", [None, "Basic !!!", "Bearer es_x"])
def test_langfuse_path_without_a_valid_secret_key_is_401_with_a_basic_challenge(client, project, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.post(LANGFUSE_URL, data=b"", content_type=PROTOBUF, headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="otlp"'


def test_langfuse_path_with_a_wrong_secret_key_is_401(client, project):
    response = client.post(
        LANGFUSE_URL, data=b"", content_type=PROTOBUF, headers={"Authorization": _basic("pk", "es_wrong")}
    )
    assert response.status_code == 401
    assert status_message(response) == "Invalid token: no such API token"


def test_too_many_exports_are_429_with_retry_after(client, project, token, settings):
    from django.core.cache import cache

    from core.rates import Rate

    cache.clear()
    settings.EVALSTUDIO_API_RATE_PER_TOKEN = Rate(2, 60)
    body = export_request(*llm_trace(new_trace_id())).SerializeToString()
    codes = [post(client, body, token=token).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    response = post(client, body, token=token)
    assert int(response["Retry-After"]) >= 1
    # Refused before the receiver runs, yet in OTLP's error form: a google.rpc.Status (RESOURCE_EXHAUSTED).
    assert response["Content-Type"] == "application/x-protobuf"
    status = Status.FromString(response.content)
    assert status.code == 8 and status.message.startswith("Too many API requests with this token")


def test_the_rate_limit_answers_an_otlp_json_export_in_json(client, project, token, settings):
    from django.core.cache import cache

    from core.rates import Rate

    cache.clear()
    settings.EVALSTUDIO_API_RATE_PER_TOKEN = Rate(1, 60)
    body = json.dumps(otlp_json(export_request(*llm_trace(new_trace_id())))).encode()
    first = post(client, body, token=token, content_type="application/json")
    second = post(client, body, token=token, content_type="application/json")
    assert (first.status_code, second.status_code) == (200, 429)
    assert second.json()["code"] == 8 and "retry in" in second.json()["message"]


def test_an_export_mixing_stored_and_new_spans_stores_the_new_ones_once(client, project, token):
    trace_id = new_trace_id()
    first = llm_trace(trace_id)
    assert post(client, export_request(*first[:2]).SerializeToString(), token=token).status_code == 200
    stored = dict(Span.objects.values_list("span_id", "received_at"))
    assert post(client, export_request(*first).SerializeToString(), token=token).status_code == 200
    after = dict(Span.objects.values_list("span_id", "received_at"))
    assert len(after) == 3 and all(after[span_id] == received for span_id, received in stored.items())


@pytest.mark.django_db(transaction=True)
def test_the_database_away_is_503_with_retry_after(client, project, token):
    from django.db import connection

    from tests.chaos.processes import free_port

    body = export_request(*llm_trace(new_trace_id())).SerializeToString()
    connection.close()
    port = connection.settings_dict["PORT"]
    connection.settings_dict["PORT"] = str(free_port())  # nothing listens there: the connection is refused
    try:
        response = post(client, body, token=token)
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert Span.objects.count() == 0
