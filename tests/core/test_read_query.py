"""The REST read routes check their query strings one way (core.read_query): an unknown parameter, a page's `limit`
and `cursor` are a 400 whose message names the parameter, in the words each route has always used."""

from __future__ import annotations

import pytest

from annotation.services import api_token_create
from core.read_query import QueryError, decode_cursor, encode_cursor, page_after, page_limit, refuse_unknown
from judges.services import judge_create, judge_run_create, judge_run_execute
from tests.factories import make_criterion, make_label, make_trace


@pytest.fixture
def token(project) -> str:
    return api_token_create(project=project, name="notebook")[1]


@pytest.fixture
def run(project):
    criterion = make_criterion(project=project, name="no_apology")
    trace = make_trace(project=project, external_id="j-0", output="Sorry.")
    make_label(trace=trace, criterion=criterion, verdict="fail", critique="Apologises.")
    config = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=config)
    return judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))


def detail(client, url: str, token: str, **params: str) -> tuple[int, str]:
    response = client.get(url, params, headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.json().get("detail", "")


@pytest.mark.django_db
def test_each_read_route_names_an_unknown_parameter_and_what_it_takes_as_it_always_has(client, token, run):
    assert detail(client, "/api/v1/projects/acme/traces", token, sort="id") == (
        400,
        "Unknown query parameter 'sort'; expected cursor, limit, meta, mode, reviewed, source",
    )
    assert detail(client, f"/api/v1/judge-runs/{run.pk}/judgments", token, sort="id", zeta="1") == (
        400,
        "Unknown query parameter 'sort'; expected agrees, cursor and limit",
    )
    assert detail(client, "/api/v1/projects/acme/monitoring/series", token, criterion="x", sort="id") == (
        400,
        "Unknown query parameter 'sort'; expected criterion, bucket and window",
    )


def test_refuse_unknown_names_the_first_unknown_parameter_alphabetically():
    refuse_unknown({"b": "1"}, ("b", "a"))
    with pytest.raises(QueryError, match=r"^Unknown query parameter 'c'; expected b, a and d$"):
        refuse_unknown({"d": "", "z": "", "c": ""}, ("b", "a", "d"))
    with pytest.raises(QueryError, match=r"^Unknown query parameter 'c'; expected a$"):
        refuse_unknown({"c": ""}, ("a",))
    with pytest.raises(QueryError, match=r"^Unknown query parameter 'c'; expected a or b$"):
        refuse_unknown({"c": ""}, ("a", "b"), expected="a or b")


def test_a_cursor_round_trips_and_no_cursor_is_the_first_page():
    assert page_after({}) == 0 and page_after({"cursor": ""}) == 0
    assert page_after({"cursor": encode_cursor(123456)}) == 123456 == decode_cursor(encode_cursor(123456))
    assert page_limit({}) == 100 and page_limit({"limit": "500"}) == 500


@pytest.mark.django_db
@pytest.mark.parametrize("digits", ["1" * 5000, "0" * 5000 + "5", "9" * 10])
def test_a_limit_of_too_many_digits_is_a_400_naming_it_not_a_server_error(client, token, run, digits):
    shown = repr(digits[:40])
    for url in ("/api/v1/projects/acme/traces", f"/api/v1/judge-runs/{run.pk}/judgments"):
        assert detail(client, url, token, limit=digits) == (
            400,
            f"Query parameter 'limit' must be a whole number from 1 to 500; got {shown}",
        )
