"""Review sessions: the strategies, their errors, the session list and detail pages, and the queue within a session."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import (
    FailureMode,
    FailureModeChange,
    NoteFailureMode,
    ReviewSession,
    ReviewSessionTrace,
    Role,
    Trace,
)
from annotation.queue import QueueParams
from annotation.sampling import allocate_equal, allocate_proportional, circular_distance, seeded_start
from annotation.services import DomainError, trace_mark_reviewed
from annotation.sessions import review_session_create, session_summaries
from tests.factories import add_member, code_note, make_note, make_project, make_trace, make_user

BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


# Allocation (no database) ---------------------------------------------------------------------------------------


def test_equal_shares_give_a_small_stratum_all_it_has_and_share_the_rest():
    quotas = allocate_equal({"fr": 3, "de": 10, "en": 40}, 21, ["fr", "de", "en"])
    assert quotas == {"fr": 3, "de": 9, "en": 9}


def test_equal_shares_give_the_leftover_to_the_first_strata_in_order():
    assert allocate_equal({"a": 10, "b": 10, "c": 10}, 10, ["b", "a", "c"]) == {"b": 4, "a": 3, "c": 3}
    assert allocate_equal({"a": 10, "b": 10, "c": 10}, 2, ["c", "b", "a"]) == {"c": 1, "b": 1, "a": 0}


def test_equal_shares_never_exceed_what_exists():
    assert allocate_equal({"a": 2, "b": 1}, 100, ["a", "b"]) == {"a": 2, "b": 1}


def test_proportional_shares_follow_sizes_by_largest_remainder():
    assert allocate_proportional({"a": 60, "b": 30, "c": 10}, 10, ["a", "b", "c"]) == {"a": 6, "b": 3, "c": 1}
    # 7 × (5, 3, 2) / 10 = 3.5, 2.1, 1.4: the largest remainder (a's) gets the leftover one.
    assert allocate_proportional({"a": 5, "b": 3, "c": 2}, 7, ["c", "b", "a"]) == {"a": 4, "b": 2, "c": 1}
    assert sum(allocate_proportional({"a": 1, "b": 1, "c": 1}, 2, ["a", "b", "c"]).values()) == 2


def test_circular_distance_wraps_around_the_key_space():
    assert circular_distance(10, 5) == 5
    assert circular_distance(5, 10) == (1 << 63) - 5
    assert circular_distance(7, 7) == 0


# Strategies ------------------------------------------------------------------------------------------------------


def _traces(project, count: int, prefix: str = "s", **fields) -> list[Trace]:
    return [
        make_trace(project=project, external_id=f"{prefix}-{i:03d}", occurred_at=BASE + timedelta(minutes=i), **fields)
        for i in range(count)
    ]


def _create(project, user, **kwargs):
    return review_session_create(project=project, created_by=user, **kwargs)


def _session_ids(session: ReviewSession) -> list[str]:
    return list(
        ReviewSessionTrace.objects.filter(session=session)
        .order_by("position")
        .values_list("trace__external_id", flat=True)
    )


@pytest.mark.django_db
def test_random_session_takes_n_unreviewed_traces_in_circular_shuffle_order_from_the_seeded_start(project, expert):
    traces = _traces(project, 40)
    for trace in traces[:5]:
        trace_mark_reviewed(trace=trace, user=expert)
    session = _create(project, expert, strategy="random", size=12, seed="alpha").session
    start = seeded_start(project.queue_seed, "session", "alpha")
    expected = sorted(traces[5:], key=lambda t: (circular_distance(t.shuffle_key, start), t.pk))[:12]
    assert _session_ids(session) == [t.external_id for t in expected]
    assert session.size == 12
    assert session.params == {"requested": 12, "seed": "alpha"}


@pytest.mark.django_db
def test_random_session_is_determined_by_its_seed(project, expert):
    _traces(project, 60)
    first = _session_ids(_create(project, expert, strategy="random", size=10, seed="s1").session)
    again = _session_ids(_create(project, expert, strategy="random", size=10, seed="s1").session)
    other = _session_ids(_create(project, expert, strategy="random", size=10, seed="s2").session)
    assert first == again
    assert first != other


@pytest.mark.django_db
def test_random_session_without_a_seed_draws_and_records_one(project, expert):
    _traces(project, 5)
    session = _create(project, expert, strategy="random", size=5).session
    assert len(session.params["seed"]) == 8
    assert _session_ids(_create(project, expert, strategy="random", size=5, seed=session.params["seed"]).session) == (
        _session_ids(session)
    )


@pytest.mark.django_db
def test_random_session_can_include_reviewed_traces(project, expert):
    traces = _traces(project, 10)
    for trace in traces[:6]:
        trace_mark_reviewed(trace=trace, user=expert)
    only_open = _create(project, expert, strategy="random", size=10, seed="x")
    assert sorted(_session_ids(only_open.session)) == [t.external_id for t in traces[6:]]
    assert "Only 4 eligible traces" in only_open.shortfall_message
    everything = _create(project, expert, strategy="random", size=10, seed="x", include_reviewed=True).session
    assert sorted(_session_ids(everything)) == [t.external_id for t in traces]
    start = seeded_start(project.queue_seed, "session", "x")
    assert _session_ids(everything) == [
        t.external_id for t in sorted(traces, key=lambda t: (circular_distance(t.shuffle_key, start), t.pk))
    ]


@pytest.mark.django_db
def test_random_session_respects_source_and_metadata_filters(project, expert):
    _traces(project, 10, prefix="prod", source="production", metadata={"locale": "de"})
    _traces(project, 10, prefix="syn", source="synthetic", metadata={"locale": "de"})
    _traces(project, 10, prefix="en", source="production", metadata={"locale": "en"})
    filters = QueueParams.from_query({"source": "production", "meta": "locale=de"})
    session = _create(project, expert, strategy="random", size=50, filters=filters).session
    assert sorted(_session_ids(session)) == [f"prod-{i:03d}" for i in range(10)]
    assert session.params["source"] == "production" and session.params["meta"] == "locale=de"


def _locales(session: ReviewSession) -> Counter:
    return Counter(ReviewSessionTrace.objects.filter(session=session).values_list("trace__metadata__locale", flat=True))


@pytest.mark.django_db
def test_stratified_session_gives_each_value_an_equal_share_when_it_can(project, expert):
    _traces(project, 40, prefix="en", metadata={"locale": "en"})
    _traces(project, 10, prefix="de", metadata={"locale": "de"})
    _traces(project, 3, prefix="fr", metadata={"locale": "fr"})
    _traces(project, 5, prefix="none", metadata={})
    session = _create(project, expert, strategy="stratified", size=21, metadata_key="locale", seed="k").session
    assert _locales(session) == {"en": 9, "de": 9, "fr": 3}
    assert session.size == 21


@pytest.mark.django_db
def test_stratified_session_with_proportional_shares_follows_value_sizes(project, expert):
    _traces(project, 60, prefix="en", metadata={"locale": "en"})
    _traces(project, 30, prefix="de", metadata={"locale": "de"})
    _traces(project, 10, prefix="fr", metadata={"locale": "fr"})
    session = _create(
        project, expert, strategy="stratified", size=10, metadata_key="locale", proportional=True, seed="p"
    ).session
    assert _locales(session) == {"en": 6, "de": 3, "fr": 1}


@pytest.mark.django_db
def test_stratified_session_is_deterministic_and_only_unreviewed(project, expert):
    english = _traces(project, 30, prefix="en", metadata={"locale": "en"})
    _traces(project, 30, prefix="de", metadata={"locale": "de"})
    for trace in english[:25]:
        trace_mark_reviewed(trace=trace, user=expert)
    one = _create(project, expert, strategy="stratified", size=10, metadata_key="locale", seed="z").session
    two = _create(project, expert, strategy="stratified", size=10, metadata_key="locale", seed="z").session
    assert _session_ids(one) == _session_ids(two)
    assert _locales(one) == {"en": 5, "de": 5}
    assert not ReviewSessionTrace.objects.filter(session=one, trace__reviewed_at__isnull=False).exists()


@pytest.mark.django_db
def test_stratified_session_handles_numeric_values(project, expert):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's json_extract returns the number 2 and the string '2' alike; jsonb keeps them apart")
    _traces(project, 8, prefix="one", metadata={"retries": 1})
    _traces(project, 8, prefix="two", metadata={"retries": 2})
    _traces(project, 8, prefix="txt", metadata={"retries": "2"})
    session = _create(project, expert, strategy="stratified", size=6, metadata_key="retries", seed="n").session
    prefixes = Counter(external_id.split("-")[0] for external_id in _session_ids(session))
    assert prefixes == {"one": 2, "two": 2, "txt": 2}


@pytest.mark.django_db
def test_rare_metadata_session_takes_the_rarest_values_first(project, expert):
    _traces(project, 1, prefix="a", metadata={"model": "a"})
    _traces(project, 2, prefix="b", metadata={"model": "b"})
    _traces(project, 5, prefix="c", metadata={"model": "c"})
    _traces(project, 20, prefix="d", metadata={"model": "d"})
    session = _create(project, expert, strategy="rare_metadata", size=5, metadata_key="model", seed="r").session
    ids = _session_ids(session)
    assert ids[:3] == ["a-000", "b-000", "b-001"] or ids[:3] == ["a-000", "b-001", "b-000"]
    assert Counter(i.split("-")[0] for i in ids) == {"a": 1, "b": 2, "c": 2}


@pytest.mark.django_db
def test_longest_session_really_takes_the_longest_traces(project, expert):
    _traces(project, 10)  # short ones, ~30 bytes each
    make_trace(project=project, external_id="long-input", input="x" * 3000)
    make_trace(project=project, external_id="long-output", output="y" * 2000)
    # Multi-byte text counts in bytes: 900 characters, 2,700 bytes.
    make_trace(project=project, external_id="long-utf8", input="é€" * 450)
    make_trace(
        project=project,
        external_id="long-messages",
        input="",
        output="",
        messages=[{"role": "user", "content": "m" * 5000}, {"role": "assistant", "content": "ok"}],
    )
    reviewed = make_trace(project=project, external_id="long-but-reviewed", input="z" * 9000)
    trace_mark_reviewed(trace=reviewed, user=expert)
    session = _create(project, expert, strategy="longest", size=4).session
    assert _session_ids(session) == ["long-messages", "long-input", "long-utf8", "long-output"]


@pytest.mark.django_db
def test_newest_production_session_takes_the_newest_unreviewed_production_traces(project, expert):
    production = _traces(project, 6, prefix="p", source="production")
    _traces(project, 6, prefix="x", source="synthetic")
    trace_mark_reviewed(trace=production[5], user=expert)
    session = _create(project, expert, strategy="newest_production", size=3).session
    assert _session_ids(session) == ["p-004", "p-003", "p-002"]


@pytest.mark.django_db
def test_newest_production_refuses_a_contradicting_source_filter(project, expert):
    _traces(project, 3, source="production")
    with pytest.raises(DomainError, match="source filter “synthetic” contradicts it"):
        _create(project, expert, strategy="newest_production", filters=QueueParams(source="synthetic"))


@pytest.mark.django_db
def test_disagreement_sessions_are_sent_to_a_judge_run(project, expert):
    _traces(project, 3)
    with pytest.raises(DomainError, match="A session of judge–expert disagreements starts from a judge run"):
        _create(project, expert, strategy="disagreements")
    assert not ReviewSession.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "shuffle"}, "Unknown strategy “shuffle”; choose one of: random, stratified"),
        ({"strategy": "random", "size": 0}, "from 1 to 1000 traces; got 0"),
        ({"strategy": "random", "size": 1001}, "from 1 to 1000 traces; got 1001"),
        ({"strategy": "stratified"}, "needs a metadata key"),
        ({"strategy": "stratified", "metadata_key": "nope"}, "No trace in this project has the metadata key “nope”"),
        ({"strategy": "rare_metadata", "metadata_key": "nope"}, "No trace in this project has the metadata key “nope”"),
        ({"strategy": "longest", "include_reviewed": True}, "option of the random strategy only"),
        ({"strategy": "random", "proportional": True}, "option of the stratified strategy only"),
        ({"strategy": "random", "metadata_key": "locale"}, "takes no metadata key"),
        ({"strategy": "random", "seed": "s" * 65}, "seed is limited to 64 characters"),
    ],
)
def test_bad_parameters_are_refused_with_a_clear_error_and_nothing_is_created(project, expert, kwargs, message):
    _traces(project, 3, metadata={"locale": "en"})
    with pytest.raises(DomainError, match=message):
        _create(project, expert, **kwargs)
    assert not ReviewSession.objects.exists()


@pytest.mark.django_db
def test_a_key_whose_traces_are_all_reviewed_gets_its_own_explanation(project, expert):
    for trace in _traces(project, 3, metadata={"locale": "en"}):
        trace_mark_reviewed(trace=trace, user=expert)
    _traces(project, 3, prefix="o")
    with pytest.raises(DomainError, match="No eligible trace has a value for the metadata key “locale”"):
        _create(project, expert, strategy="stratified", metadata_key="locale")


@pytest.mark.django_db
def test_too_few_traces_make_a_smaller_session_with_a_message(project, expert):
    _traces(project, 3)
    created = _create(project, expert, strategy="random", size=10)
    assert created.session.size == 3
    assert ReviewSessionTrace.objects.filter(session=created.session).count() == 3
    assert created.shortfall_message == (
        "Only 3 eligible traces for this strategy, so the session holds 3 instead of 10."
    )
    assert created.session.params["requested"] == 10


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ["random", "longest", "newest_production"])
def test_zero_eligible_traces_is_an_error_and_creates_nothing(project, expert, strategy):
    for trace in _traces(project, 3, source="production"):
        trace_mark_reviewed(trace=trace, user=expert)
    with pytest.raises(DomainError, match="no session was created"):
        _create(project, expert, strategy=strategy)
    assert not ReviewSession.objects.exists()


# New failure modes found -----------------------------------------------------------------------------------------


def _coded_review(trace: Trace, author, *modes: FailureMode) -> None:
    """A note by `author` coded to the modes, then the expert marks the trace reviewed."""
    note = make_note(trace=trace, author=author, text="off")
    code_note(note, *modes)
    trace_mark_reviewed(trace=trace, user=trace.project.expert)


@pytest.mark.django_db
def test_new_failure_modes_count_where_each_mode_first_appeared_in_review_order(project, expert, teammate):
    in_first = _traces(project, 4, prefix="a", metadata={"batch": "a"})
    second_traces = _traces(project, 4, prefix="b", metadata={"batch": "b"})
    first = _create(project, expert, strategy="random", filters=QueueParams(meta_key="batch", meta_value="a")).session
    second = _create(project, expert, strategy="random", filters=QueueParams(meta_key="batch", meta_value="b")).session
    hallucination = FailureMode.objects.create(project=project, name="Hallucination")
    tone = FailureMode.objects.create(project=project, name="Tone")
    never_reviewed = FailureMode.objects.create(project=project, name="Unreviewed only")
    _coded_review(in_first[0], expert, hallucination)
    _coded_review(second_traces[0], teammate, hallucination, tone)  # hallucination is not new any more
    _coded_review(in_first[1], expert, tone)  # nor is tone
    code_note(make_note(trace=in_first[2], author=expert), never_reviewed)
    summaries = {s.session.pk: s for s in session_summaries(project=project, sessions=[first, second])}
    assert (summaries[first.pk].reviewed, summaries[first.pk].new_failure_modes) == (2, 1)
    assert (summaries[second.pk].reviewed, summaries[second.pk].new_failure_modes) == (1, 1)


@pytest.mark.django_db
def test_new_failure_mode_counts_follow_reviews_and_coding_at_once(project, expert):
    """The first-trace map is cached; a review, a new link or a removed link must not leave a stale count."""
    in_session = _traces(project, 3, prefix="a", metadata={"batch": "a"})
    earlier = _traces(project, 1, prefix="b", metadata={"batch": "b"})[0]
    session = _create(project, expert, strategy="random", filters=QueueParams(meta_key="batch", meta_value="a")).session

    def new_modes() -> int:
        return session_summaries(project=project, sessions=[session])[0].new_failure_modes

    tone = FailureMode.objects.create(project=project, name="Tone")
    assert new_modes() == 0
    trace_mark_reviewed(trace=in_session[0], user=expert)
    assert new_modes() == 0
    note = code_note(make_note(trace=in_session[0], author=expert), tone)
    assert new_modes() == 1
    # Tone seen earlier on a trace outside the session: no longer new here.
    code_note(make_note(trace=earlier, author=expert), tone)
    trace_mark_reviewed(trace=earlier, user=expert)
    assert new_modes() == 1  # reviewed after the session's trace, so the session still saw it first
    Trace.objects.filter(pk=earlier.pk).update(reviewed_at=BASE)
    trace_mark_reviewed(trace=in_session[1], user=expert)  # any review refreshes the map
    assert new_modes() == 0
    # Uncoding the earlier note makes the session's trace the first again; uncoding that one leaves nothing new.
    NoteFailureMode.objects.filter(note__trace=earlier).delete()
    assert new_modes() == 1
    note.mode_links.all().delete()
    assert new_modes() == 0


@pytest.mark.django_db
def test_new_failure_mode_counts_follow_a_merge_that_moves_links(project, expert):
    """The codebook merges by moving links with an UPDATE (same count, same ids) and records the change."""
    first = _traces(project, 1, prefix="a", metadata={"batch": "a"})[0]
    second = _traces(project, 1, prefix="b", metadata={"batch": "b"})[0]
    session = _create(project, expert, strategy="random", filters=QueueParams(meta_key="batch", meta_value="b")).session
    vague = FailureMode.objects.create(project=project, name="Vague")
    evasive = FailureMode.objects.create(project=project, name="Evasive")
    _coded_review(first, expert, vague)
    _coded_review(second, expert, evasive)
    assert session_summaries(project=project, sessions=[session])[0].new_failure_modes == 1
    NoteFailureMode.objects.filter(failure_mode=evasive).update(failure_mode=vague)
    FailureModeChange.objects.create(
        project=project, failure_mode=evasive, action=FailureModeChange.Action.MERGED, actor=expert
    )
    assert session_summaries(project=project, sessions=[session])[0].new_failure_modes == 0


@pytest.mark.django_db
def test_session_list_shows_counts_in_a_fixed_number_of_queries(project, expert, expert_client):
    traces = _traces(project, 30)
    mode = FailureMode.objects.create(project=project, name="Wrong total")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = expert_client.get(reverse("session_list", args=["acme"]))
        assert response.status_code == 200
        return len(captured)

    for seed in ("a", "b"):
        _create(project, expert, strategy="random", size=5, seed=seed)
    _coded_review(traces[0], expert, mode)
    queries()  # fills the first-trace cache, which more sessions do not invalidate
    few = queries()
    for seed in ("c", "d", "e", "f", "g"):
        _create(project, expert, strategy="random", size=5, seed=seed)
    assert queries() == few


@pytest.mark.django_db
def test_session_list_shows_date_name_strategy_size_reviewed_and_new_modes(project, expert, expert_client):
    traces = _traces(project, 6, metadata={"locale": "en"})
    session = _create(
        project, expert, strategy="stratified", size=4, metadata_key="locale", seed="q", name="Monday <b>sitting</b>"
    ).session
    in_session = ReviewSessionTrace.objects.filter(session=session).order_by("position").first().trace
    _coded_review(in_session, expert, FailureMode.objects.create(project=project, name="Refuses"))
    assert traces  # the project has more traces than the session
    html = expert_client.get(reverse("session_list", args=["acme"])).content.decode()
    assert "Monday &lt;b&gt;sitting&lt;/b&gt;" in html  # escaped
    assert "Stratified by a metadata key" in html and "key locale · seed q" in html
    assert "1 / 4" in html
    assert "<td>1</td>" in html  # new failure modes


@pytest.mark.django_db
def test_session_list_pages_by_keyset(project, expert, expert_client):
    _traces(project, 3)
    for index in range(27):
        _create(project, expert, strategy="random", size=1, seed=str(index), name=f"session {index:02d}")
    first = expert_client.get(reverse("session_list", args=["acme"])).content.decode()
    assert "session 26" in first and "session 02" in first and "session 01" not in first
    older = first.split("?before=", 1)[1].split('"', 1)[0].replace("&amp;", "&")
    second = expert_client.get(reverse("session_list", args=["acme"]) + "?before=" + older).content.decode()
    assert "session 01" in second and "session 00" in second and "session 02" not in second
    # htmx asks for the list region only.
    region = expert_client.get(
        reverse("session_list", args=["acme"]) + "?before=" + older, headers={"HX-Request": "true"}
    ).content.decode()
    assert region.lstrip().startswith('<section id="sessions">') and "New session" not in region
    assert "session 01" in region


# Pages and permissions -------------------------------------------------------------------------------------------


def _post(client, **data):
    payload = {"strategy": "random", "size": "100", **data}
    return client.post(reverse("session_create", args=["acme"]), payload)


@pytest.mark.django_db
def test_expert_creates_a_session_from_the_form_and_lands_on_it(project, expert_client):
    _traces(project, 5)
    response = _post(expert_client, size="3", seed="web", name="First look")
    session = ReviewSession.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("session_detail", args=["acme", session.pk])
    assert (session.name, session.size, session.params["seed"]) == ("First look", 3, "web")
    page = expert_client.get(response["Location"]).content.decode()
    assert "holds 3 traces" in page
    assert f"/projects/acme/review/?order=random&amp;session={session.pk}" in page
    assert "Start reviewing" in page


@pytest.mark.django_db
def test_form_reports_too_few_traces_as_a_warning(project, expert_client):
    _traces(project, 2)
    response = _post(expert_client, size="10")
    page = expert_client.get(response["Location"]).content.decode()
    assert "Only 2 eligible traces for this strategy, so the session holds 2 instead of 10." in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"strategy": "shuffle"}, "Unknown strategy “shuffle”; choose one of the strategies listed."),
        ({"size": "0"}, "The session size must be a whole number from 1 to 1000."),
        ({"size": "5000"}, "The session size must be a whole number from 1 to 1000."),
        ({"size": "many"}, "The session size must be a whole number from 1 to 1000."),
        ({"strategy": "stratified", "metadata_key": "colour"}, "No trace in this project has the metadata key “colour"),
        ({"strategy": "disagreements"}, "A session of judge–expert disagreements starts from a judge run"),
        ({"meta": "no-equals-sign"}, "Write the metadata filter as key=value"),
    ],
)
def test_bad_form_input_is_shown_on_the_form_not_a_500(project, expert_client, data, message):
    _traces(project, 3)
    response = _post(expert_client, **data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ReviewSession.objects.exists()


@pytest.mark.django_db
def test_zero_eligible_traces_shows_an_error_on_the_form(project, expert, expert_client):
    for trace in _traces(project, 2):
        trace_mark_reviewed(trace=trace, user=expert)
    response = _post(expert_client)
    assert response.status_code == 400
    assert "No unreviewed traces fit the strategy “Random”, so no session was created." in response.content.decode()


@pytest.mark.django_db
def test_disagreements_option_is_shown_disabled_with_an_explanation(project, expert_client):
    html = expert_client.get(reverse("session_list", args=["acme"])).content.decode()
    assert 'value="disagreements"\n                   disabled' in html
    assert "A session of judge–expert disagreements starts from a judge run" in html


@pytest.mark.django_db
def test_viewer_can_view_sessions_but_not_create_one(project, expert):
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    _traces(project, 3)
    session = _create(project, expert, strategy="random", size=2).session
    from django.test import Client

    client = Client()
    client.force_login(viewer)
    listing = client.get(reverse("session_list", args=["acme"]))
    assert listing.status_code == 200
    assert "Viewers can look at sessions" in listing.content.decode()
    assert client.get(reverse("session_detail", args=["acme", session.pk])).status_code == 200
    assert _post(client).status_code == 403
    assert ReviewSession.objects.count() == 1


@pytest.mark.django_db
def test_engineer_can_create_a_session(project, teammate_client):
    _traces(project, 3)
    assert _post(teammate_client).status_code == 302


@pytest.mark.django_db
def test_outsider_gets_404_on_every_session_page_and_post(project, expert, outsider_client):
    _traces(project, 3)
    session = _create(project, expert, strategy="random", size=2).session
    assert outsider_client.get(reverse("session_list", args=["acme"])).status_code == 404
    assert outsider_client.get(reverse("session_detail", args=["acme", session.pk])).status_code == 404
    assert _post(outsider_client).status_code == 404
    queue = reverse("review_queue", args=["acme"]) + f"?session={session.pk}"
    assert outsider_client.get(queue).status_code == 404
    assert ReviewSession.objects.count() == 1


@pytest.mark.django_db
def test_create_requires_csrf(project, expert):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(expert)
    assert _post(client).status_code == 403


@pytest.mark.django_db
def test_another_projects_session_is_404_in_this_project(project, expert, expert_client):
    other = make_project(slug="other", expert=expert)
    make_trace(project=other, external_id="elsewhere")
    _traces(project, 2)
    foreign = _create(other, expert, strategy="random", size=1).session
    assert expert_client.get(reverse("session_detail", args=["acme", foreign.pk])).status_code == 404
    assert expert_client.get(reverse("review_queue", args=["acme"]) + f"?session={foreign.pk}").status_code == 404
    trace = Trace.objects.filter(project=project).first()
    assert expert_client.get(reverse("trace_next", args=["acme", trace.pk]) + f"?session={foreign.pk}").status_code == (
        404
    )


@pytest.mark.django_db
def test_nav_and_project_page_link_to_sessions(project, expert_client):
    html = expert_client.get(reverse("project_detail", args=["acme"])).content.decode()
    assert html.count('href="/projects/acme/sessions/"') == 2


# The queue within a session --------------------------------------------------------------------------------------


def _target(response) -> str:
    assert response.status_code == 302, response.status_code
    return urlsplit(response["Location"]).path.rstrip("/").split("/traces/", 1)[1]


@pytest.fixture
def walk(project, expert):
    """Twelve traces, a session of six of them (positions 1–6 in session order)."""
    _traces(project, 12)
    session = _create(project, expert, strategy="random", size=6, seed="walk").session
    return session, _session_ids(session)


@pytest.mark.django_db
def test_queue_with_a_session_starts_at_its_first_unreviewed_position(project, expert, expert_client, walk):
    session, ids = walk
    trace_mark_reviewed(trace=Trace.objects.get(external_id=ids[0]), user=expert)
    response = expert_client.get(reverse("review_queue", args=["acme"]) + f"?session={session.pk}")
    assert _target(response) == ids[1]
    assert response["Location"].endswith(f"?order=random&session={session.pk}")


@pytest.mark.django_db
def test_j_walks_the_session_in_position_order_skips_reviewed_and_wraps(project, expert, expert_client, walk):
    session, ids = walk
    trace_mark_reviewed(trace=Trace.objects.get(external_id=ids[3]), user=expert)
    current = Trace.objects.get(external_id=ids[1])
    seen = []
    for _ in range(5):
        response = expert_client.get(reverse("trace_next", args=["acme", current.pk]) + f"?session={session.pk}")
        seen.append(_target(response))
        current = Trace.objects.get(external_id=seen[-1])
    assert seen == [ids[2], ids[4], ids[5], ids[0], ids[1]]


@pytest.mark.django_db
def test_k_steps_back_only_through_the_sessions_reviewed_traces(project, expert, expert_client, walk):
    session, ids = walk
    outside = Trace.objects.filter(project=project).exclude(external_id__in=ids).first()
    trace_mark_reviewed(trace=Trace.objects.get(external_id=ids[0]), user=expert)
    trace_mark_reviewed(trace=outside, user=expert)
    trace_mark_reviewed(trace=Trace.objects.get(external_id=ids[2]), user=expert)
    current = Trace.objects.get(external_id=ids[2])
    query = f"?session={session.pk}"
    back = expert_client.get(reverse("trace_previous", args=["acme", current.pk]) + query)
    assert _target(back) == ids[0]
    # From a trace not reviewed yet: the session's last reviewed one, not the later review outside it.
    trace_mark_reviewed(trace=Trace.objects.filter(project=project).exclude(external_id__in=ids).last(), user=expert)
    fresh = Trace.objects.get(external_id=ids[4])
    assert _target(expert_client.get(reverse("trace_previous", args=["acme", fresh.pk]) + query)) == ids[2]
    # Without the session, k follows the whole review log as before.
    assert _target(expert_client.get(reverse("trace_previous", args=["acme", current.pk]))) == outside.external_id


@pytest.mark.django_db
def test_trace_page_shows_progress_within_the_session(project, expert, expert_client, walk):
    session, ids = walk
    trace_mark_reviewed(trace=Trace.objects.get(external_id=ids[0]), user=expert)
    outside = Trace.objects.filter(project=project).exclude(external_id__in=ids).first()
    trace_mark_reviewed(trace=outside, user=expert)
    html = expert_client.get(reverse("trace_detail", args=["acme", ids[1]]) + f"?session={session.pk}").content.decode()
    assert "<strong>1</strong> of 6 reviewed in this session" in html
    assert f'name="session" value="{session.pk}"' in html  # the filter form keeps the session
    plain = expert_client.get(reverse("trace_detail", args=["acme", ids[1]])).content.decode()
    assert "<strong>2</strong> of 12 reviewed</span>" in plain


@pytest.mark.django_db
def test_mark_reviewed_moves_on_within_the_session_and_ends_on_session_done(project, expert_client, walk):
    session, ids = walk
    query = f"?session={session.pk}"
    for index, external_id in enumerate(ids):
        trace = Trace.objects.get(external_id=external_id)
        response = expert_client.post(reverse("trace_mark_reviewed", args=["acme", trace.pk]) + query)
        if index < len(ids) - 1:
            assert _target(response) == ids[index + 1]
        else:
            assert response["Location"] == reverse("review_queue", args=["acme"]) + f"?order=random&{query[1:]}"
    done = expert_client.get(reverse("review_queue", args=["acme"]) + query)
    html = done.content.decode()
    assert done.status_code == 200 and "Session done" in html
    assert "<strong>6</strong> of 6 reviewed in this session" in html
    assert Trace.objects.filter(project__slug="acme", reviewed_at__isnull=True).count() == 6


@pytest.mark.django_db
def test_session_queue_applies_the_other_filters_too(project, expert, expert_client):
    _traces(project, 4, prefix="p", source="production")
    _traces(project, 4, prefix="x", source="synthetic")
    session = _create(project, expert, strategy="random", size=8, seed="f").session
    ids = _session_ids(session)
    first_production = next(i for i in ids if i.startswith("p-"))
    response = expert_client.get(reverse("review_queue", args=["acme"]) + f"?session={session.pk}&source=production")
    assert _target(response) == first_production


@pytest.mark.django_db
def test_garbage_session_parameter_is_ignored_like_other_filters(project, expert_client):
    _traces(project, 2)
    assert QueueParams.from_query({"session": "12x"}).session is None
    assert QueueParams.from_query({"session": "7"}).querystring == "?order=random&session=7"
    assert expert_client.get(reverse("review_queue", args=["acme"]) + "?session=abc").status_code == 302


@pytest.mark.django_db
def test_session_queue_uses_no_offset(project, expert_client, walk):
    session, ids = walk
    with CaptureQueriesContext(connection) as captured:
        expert_client.get(reverse("review_queue", args=["acme"]) + f"?session={session.pk}")
    assert not any("OFFSET" in query["sql"].upper() for query in captured)
