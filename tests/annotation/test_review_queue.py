"""The review queue (orders, filters, j/k, done state, sitting) and the keyset-paginated trace list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from annotation.models import FailureMode, Trace
from annotation.queue import QueueParams, decode_cursor, queue_next, trace_page
from annotation.services import trace_mark_reviewed
from tests.factories import code_note, make_criterion, make_label, make_note, make_trace, make_user

pytestmark = pytest.mark.django_db

BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _traces(project, count: int, **fields) -> list[Trace]:
    return [
        make_trace(project=project, external_id=f"q-{i:03d}", occurred_at=BASE + timedelta(minutes=i), **fields)
        for i in range(count)
    ]


def _target(response) -> str:
    """The external id a redirect points at."""
    assert response.status_code == 302, response.status_code
    path = urlsplit(response["Location"]).path
    return path.rstrip("/").split("/traces/", 1)[1]


def _walk_with_j(client, project_slug: str, start: Trace, steps: int, query: str = "") -> list[str]:
    seen = []
    current = start
    for _ in range(steps):
        response = client.get(reverse("trace_next", args=[project_slug, current.pk]) + query)
        if "/traces/" not in response["Location"]:
            seen.append("<queue>")
            break
        external_id = _target(response)
        seen.append(external_id)
        current = Trace.objects.get(project__slug=project_slug, external_id=external_id)
    return seen


def test_queue_redirects_to_the_first_unreviewed_trace_in_random_order(project, expert_client):
    traces = _traces(project, 5)
    expected = min(traces, key=lambda t: (t.shuffle_key, t.pk))
    response = expert_client.get(reverse("review_queue", args=["acme"]))
    assert _target(response) == expected.external_id
    assert response["Location"].endswith("?order=random")


def test_queue_orders_newest_and_oldest_by_occurred_at(project, expert_client):
    _traces(project, 4)
    newest = expert_client.get(reverse("review_queue", args=["acme"]) + "?order=newest")
    oldest = expert_client.get(reverse("review_queue", args=["acme"]) + "?order=oldest")
    assert _target(newest) == "q-003"
    assert _target(oldest) == "q-000"


def test_j_walks_the_random_order_by_shuffle_key_and_wraps(project, expert_client):
    traces = _traces(project, 6)
    ordered = [t.external_id for t in sorted(traces, key=lambda t: (t.shuffle_key, t.pk))]
    start = Trace.objects.get(external_id=ordered[2])
    walked = _walk_with_j(expert_client, "acme", start, 6, "?order=random")
    # After the current one, around the end back to the start, and to the current one's predecessor.
    assert walked[:5] == ordered[3:] + ordered[:2]


def test_j_in_oldest_order_skips_reviewed_traces(project, expert, expert_client):
    traces = _traces(project, 5)
    trace_mark_reviewed(trace=traces[2], user=expert)
    walked = _walk_with_j(expert_client, "acme", traces[0], 3, "?order=oldest")
    assert walked == ["q-001", "q-003", "q-004"]


def test_j_from_a_trace_just_reviewed_continues_after_it(project, expert, expert_client):
    traces = _traces(project, 4)
    trace_mark_reviewed(trace=traces[1], user=expert)
    walked = _walk_with_j(expert_client, "acme", traces[1], 1, "?order=newest")
    assert walked == ["q-000"]


def test_queue_is_done_when_everything_is_reviewed(project, expert, expert_client):
    traces = _traces(project, 2)
    for trace in traces:
        trace_mark_reviewed(trace=trace, user=expert)
    response = expert_client.get(reverse("review_queue", args=["acme"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Queue done" in html
    assert "<strong>2</strong> of 2 reviewed" in html
    # j from the last trace leads to the done state too.
    response = expert_client.get(reverse("trace_next", args=["acme", traces[1].pk]) + "?order=oldest")
    assert response["Location"] == reverse("review_queue", args=["acme"]) + "?order=oldest"


def test_mark_reviewed_on_the_last_trace_leads_to_queue_done(project, expert_client):
    (trace,) = _traces(project, 1)
    response = expert_client.post(reverse("trace_mark_reviewed", args=["acme", trace.pk]))
    assert response["Location"] == reverse("review_queue", args=["acme"]) + "?order=random"
    assert "Queue done" in expert_client.get(response["Location"]).content.decode()


def test_source_filter_keeps_only_that_source_and_travels_in_links(project, expert_client):
    make_trace(project=project, external_id="prod-1", source="production", occurred_at=BASE)
    make_trace(project=project, external_id="syn-1", source="synthetic", occurred_at=BASE + timedelta(minutes=1))
    make_trace(project=project, external_id="prod-2", source="production", occurred_at=BASE + timedelta(minutes=2))
    query = "?order=oldest&source=production"
    response = expert_client.get(reverse("review_queue", args=["acme"]) + query)
    assert _target(response) == "prod-1"
    assert response["Location"].endswith(query)
    start = Trace.objects.get(external_id="prod-1")
    assert _walk_with_j(expert_client, "acme", start, 1, query) == ["prod-2"]
    page = expert_client.get(response["Location"]).content.decode()
    next_url = reverse("trace_next", args=["acme", start.pk]) + query.replace("&", "&amp;")
    assert f'data-next-url="{next_url}"' in page
    assert "<strong>0</strong> of 2 reviewed" in page


def test_the_source_filter_suggests_the_projects_sources_wherever_it_is_drawn(project, expert_client):
    """The filter's input names a datalist of sources; the trace list and the trace page drew the input without the
    list, so nothing was suggested there (found by the demo crawl, tests/test_crawl.py)."""
    make_trace(project=project, external_id="prod-1", source="production", occurred_at=BASE)
    make_trace(project=project, external_id="syn-1", source="synthetic", occurred_at=BASE + timedelta(minutes=1))
    for url in (
        reverse("trace_list", args=["acme"]),
        reverse("trace_detail", args=["acme", "prod-1"]),
        reverse("trace_detail", args=["acme", "prod-1"]) + "?order=newest&source=synthetic",
    ):
        page = expert_client.get(url).content.decode()
        assert 'list="known-sources"' in page, url
        datalist = page.split('<datalist id="known-sources">')[1].split("</datalist>")[0]
        assert datalist == '<option value="production"><option value="synthetic">', url


def test_a_project_without_sources_has_an_empty_suggestion_list_not_a_missing_one(project, expert_client):
    for url in (reverse("trace_list", args=["acme"]), reverse("review_queue", args=["acme"])):
        assert '<datalist id="known-sources"></datalist>' in expert_client.get(url).content.decode(), url


def test_metadata_filter_matches_key_value_including_numbers(project, expert_client):
    make_trace(project=project, external_id="en", metadata={"locale": "en", "retries": 2}, occurred_at=BASE)
    make_trace(project=project, external_id="de", metadata={"locale": "de"}, occurred_at=BASE + timedelta(minutes=1))
    make_trace(project=project, external_id="none", occurred_at=BASE + timedelta(minutes=2))
    queue = reverse("review_queue", args=["acme"])
    assert _target(expert_client.get(queue + "?order=newest&meta=locale=de")) == "de"
    assert _target(expert_client.get(queue + "?order=newest&meta=locale%3Den")) == "en"
    assert _target(expert_client.get(queue + "?order=newest&meta=retries=2")) == "en"
    done = expert_client.get(queue + "?order=newest&meta=locale=fr")
    assert done.status_code == 200 and "Queue done" in done.content.decode()


def test_metadata_filter_uses_containment_on_postgresql(project):
    params = QueueParams.from_query({"meta": "locale=en"})
    trace = make_trace(project=project, metadata={"locale": "en"})
    with CaptureQueriesContext(connection) as queries:
        assert queue_next(project=project, params=params, current=trace) is None
    assert "@>" in queries[0]["sql"]


def test_k_steps_back_through_the_review_log(project, expert, expert_client):
    traces = _traces(project, 4)
    now = timezone.now()
    # Reviewed in the order 2, 0, 3 (not the queue order): k follows the review log.
    for offset, index in enumerate([2, 0, 3]):
        Trace.objects.filter(pk=traces[index].pk).update(reviewed_at=now + timedelta(seconds=offset))
    unreviewed = traces[1]
    back = []
    current = unreviewed
    for _ in range(3):
        external_id = _target(expert_client.get(reverse("trace_previous", args=["acme", current.pk])))
        back.append(external_id)
        current = Trace.objects.get(external_id=external_id)
    assert back == ["q-003", "q-000", "q-002"]
    # At the start of the log, k stays put and says why.
    response = expert_client.get(reverse("trace_previous", args=["acme", current.pk]), follow=True)
    assert "Nothing was reviewed before this trace." in response.content.decode()


def test_queue_params_are_normalised_and_round_trip():
    params = QueueParams.from_query({"order": "bogus", "source": " production ", "meta": "locale=en"})
    assert params.order == "random"
    assert params.querystring == "?order=random&source=production&meta=locale%3Den"
    again = QueueParams.from_query({k: v[0] for k, v in parse_qs(params.querystring[1:]).items()})
    assert again == params


def test_queue_queries_do_not_use_offset(project, expert_client):
    traces = _traces(project, 3)
    with CaptureQueriesContext(connection) as queries:
        expert_client.get(reverse("review_queue", args=["acme"]))
        expert_client.get(reverse("trace_next", args=["acme", traces[0].pk]))
        expert_client.get(reverse("trace_previous", args=["acme", traces[0].pk]))
        expert_client.get(reverse("trace_list", args=["acme"]))
    assert queries.captured_queries
    assert not [q["sql"] for q in queries if "OFFSET" in q["sql"].upper()]


def test_sitting_target_is_changeable_and_counts_reviews_since_the_start(project, expert, expert_client):
    traces = _traces(project, 3)
    page_url = reverse("trace_detail", args=["acme", traces[0].external_id])
    html = expert_client.get(page_url).content.decode()
    assert "This sitting <strong>0</strong> / 100" in html
    response = expert_client.post(reverse("review_queue", args=["acme"]), {"target": "25", "next": page_url})
    assert response["Location"] == page_url
    trace_mark_reviewed(trace=traces[1], user=expert)
    html = expert_client.get(page_url).content.decode()
    assert "This sitting <strong>1</strong> / 25" in html
    expert_client.post(reverse("review_queue", args=["acme"]), {"restart": "1", "next": "https://evil.example/"})
    html = expert_client.get(page_url).content.decode()
    assert "This sitting <strong>0</strong> / 25" in html


def test_bad_sitting_target_is_rejected_with_a_message(project, expert_client):
    _traces(project, 1)
    response = expert_client.post(reverse("review_queue", args=["acme"]), {"target": "0"}, follow=True)
    assert "The sitting target must be a whole number" in response.content.decode()


# The trace list ------------------------------------------------------------------------------------------------


def test_trace_list_pages_by_cursor_without_gaps_or_duplicates(project, expert_client):
    _traces(project, 7)
    # Two traces at the same moment: the id breaks the tie so neither is skipped at a page boundary.
    make_trace(project=project, external_id="tie-a", occurred_at=BASE + timedelta(minutes=3))
    make_trace(project=project, external_id="tie-b", occurred_at=BASE + timedelta(minutes=3))
    expected = list(
        Trace.objects.filter(project=project).order_by("-occurred_at", "-id").values_list("external_id", flat=True)
    )
    params = QueueParams.from_query({}, default_order="newest")
    seen, cursor, pages = [], "", 0
    while True:
        page = trace_page(project=project, params=params, after=cursor, size=2)
        seen += [t.external_id for t in page.traces]
        pages += 1
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert pages == 5


def test_trace_list_previous_cursor_returns_the_page_before(project):
    _traces(project, 6)
    params = QueueParams.from_query({"order": "oldest"}, default_order="newest")
    first = trace_page(project=project, params=params, size=2)
    second = trace_page(project=project, params=params, after=first.next_cursor, size=2)
    back = trace_page(project=project, params=params, before=second.previous_cursor, size=2)
    assert [t.external_id for t in first.traces] == ["q-000", "q-001"]
    assert [t.external_id for t in second.traces] == ["q-002", "q-003"]
    assert [t.external_id for t in back.traces] == ["q-000", "q-001"]
    assert back.previous_cursor is None


def test_trace_list_shows_titles_sources_review_state_and_labels(project, expert_client):
    trace = make_trace(project=project, external_id="l-1", input="Why is the sky blue?", source="production")
    make_trace(project=project, external_id="l-2", source="synthetic")
    make_label(trace=trace, criterion=make_criterion(project=project, name="factual"), verdict="fail")
    Trace.objects.filter(pk=trace.pk).update(reviewed_at=timezone.now())
    response = expert_client.get(reverse("trace_list", args=["acme"]) + "?source=production")
    html = response.content.decode()
    assert "Why is the sky blue?" in html
    assert "factual: fail" in html
    assert '<span class="badge badge-reviewed">yes</span>' in html
    assert "l-2" not in html
    assert [t.external_id for t in response.context["page"].traces] == ["l-1"]


def test_trace_list_filters_by_review_state(project, expert, expert_client):
    traces = _traces(project, 3)
    trace_mark_reviewed(trace=traces[0], user=expert)
    response = expert_client.get(reverse("trace_list", args=["acme"]) + "?reviewed=no")
    assert [t.external_id for t in response.context["page"].traces] == ["q-002", "q-001"]


def test_trace_list_ignores_a_tampered_cursor(project, expert_client):
    _traces(project, 2)
    response = expert_client.get(reverse("trace_list", args=["acme"]) + "?after=garbage~x")
    assert response.status_code == 200
    assert len(response.context["page"].traces) == 2
    assert decode_cursor("2026-11-01T12:00:00~12") is None  # naive timestamps are refused too


def test_trace_list_htmx_request_renders_only_the_results(project, expert_client):
    _traces(project, 1)
    response = expert_client.get(reverse("trace_list", args=["acme"]), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="trace-results">')
    assert "<html" not in html


def test_filtered_progress_stays_exact_as_reviews_come_in(project, expert, expert_client):
    prod = [
        make_trace(project=project, external_id=f"p-{i}", source="production", metadata={"locale": "en"})
        for i in range(3)
    ]
    make_trace(project=project, external_id="s-0", source="synthetic", metadata={"locale": "en"})
    query = "?order=random&source=production&meta=locale=en"

    def progress() -> tuple[int, int]:
        response = expert_client.get(reverse("trace_detail", args=["acme", "p-0"]) + query)
        value = response.context["progress"]
        return value.reviewed, value.total

    assert progress() == (0, 3)
    trace_mark_reviewed(trace=prod[1], user=expert)
    assert progress() == (1, 3)
    trace_mark_reviewed(trace=Trace.objects.get(external_id="s-0"), user=expert)
    trace_mark_reviewed(trace=prod[2], user=expert)
    assert progress() == (2, 3)


def test_trace_list_filters_by_failure_mode_listing_each_trace_once(project, expert, expert_client):
    traces = _traces(project, 3)
    mode = FailureMode.objects.create(project=project, name="invents fees")
    other = FailureMode.objects.create(project=project, name="wrong tone")
    for text in ("Invents a $35 fee", "Invents a card fee too"):
        code_note(make_note(trace=traces[0], author=expert, text=text), mode)
    code_note(make_note(trace=traces[1], author=expert), other)
    code_note(make_note(trace=traces[2], author=expert), mode, other)
    response = expert_client.get(reverse("trace_list", args=["acme"]) + f"?mode={mode.pk}")
    assert [t.external_id for t in response.context["page"].traces] == ["q-002", "q-000"]
    assert response.context["failure_mode"] == mode
    html = response.content.decode()
    assert "invents fees" in html
    assert f'name="mode" value="{mode.pk}"' in html  # the filter form keeps the mode


def test_failure_mode_filter_travels_in_the_queue_and_ignores_garbage():
    params = QueueParams.from_query({"mode": "42", "order": "oldest"})
    assert params.failure_mode == 42
    assert QueueParams.from_query({k: v[0] for k, v in parse_qs(params.querystring[1:]).items()}) == params
    for garbage in ("x", "-1", "1.5", "٣", "9" * 30, ""):
        assert QueueParams.from_query({"mode": garbage}).failure_mode is None


def test_queue_with_a_failure_mode_filter_visits_only_coded_traces(project, expert, expert_client):
    traces = _traces(project, 4)
    mode = FailureMode.objects.create(project=project, name="invents fees")
    for trace in (traces[1], traces[3]):
        code_note(make_note(trace=trace, author=make_user(), text="coded"), mode)
    response = expert_client.get(reverse("review_queue", args=["acme"]) + f"?order=oldest&mode={mode.pk}")
    assert _target(response) == "q-001"
    assert _walk_with_j(expert_client, "acme", traces[1], 2, f"?order=oldest&mode={mode.pk}") == ["q-003", "q-001"]
