"""The production sample: the traces whose id hashes under the rate in force when they were stored, on every path."""

from __future__ import annotations

import io
import json

import pytest

from annotation import ingest
from annotation.models import Trace
from annotation.services import api_token_create
from annotation.trace_format import shuffle_key
from monitoring import selectors, services
from monitoring.sampling import RateHistory, is_sampled, sample_point, with_all_traffic
from monitoring.selectors import sampled_after, sampling_rate
from monitoring.services import sampling_rate_set

pytestmark = pytest.mark.django_db


def records(n: int, *, prefix: str = "p", source: str = "production") -> list[dict]:
    return [{"id": f"{prefix}-{i}", "input": f"question {i}", "output": "answer", "source": source} for i in range(n)]


def jsonl(items: list[dict]) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(item) + "\n" for item in items).encode())


def sampled_ids(project) -> set[str]:
    ids, _ = sampled_after(project=project, after_id=0, limit=1_000_000)
    return set(Trace.objects.filter(pk__in=ids).values_list("external_id", flat=True))


def expected(items: list[dict], rate: float) -> set[str]:
    return {r["id"] for r in items if is_sampled(source=r.get("source", ""), external_id=r["id"], rate=rate)}


def test_the_sample_is_deterministic_close_to_the_rate_and_independent_of_the_queue_order():
    ids = [f"trace-{i}" for i in range(40_000)]
    picked = [i for i in ids if is_sampled(source="production", external_id=i, rate=0.15)]
    assert 0.14 < len(picked) / len(ids) < 0.16
    assert picked == [i for i in ids if is_sampled(source="production", external_id=i, rate=0.15)]
    # A higher rate samples a superset; other sources are never sampled.
    assert set(picked) <= {i for i in ids if is_sampled(source="production", external_id=i, rate=0.3)}
    assert not any(is_sampled(source="dev", external_id=i, rate=1.0) for i in ids)
    assert not any(is_sampled(source="production", external_id=i, rate=0.0) for i in ids)
    # The traces early in the random review queue are not over-represented in the monitoring sample.
    first_in_queue = sorted(ids, key=lambda i: shuffle_key("evalstudio", i))[:10_000]
    share = sum(sample_point(i) < 0.15 for i in first_in_queue) / len(first_in_queue)
    assert 0.13 < share < 0.17


def test_all_traffic_is_a_rate_of_one_over_the_spans_it_is_set_for_and_the_project_rate_elsewhere():
    # The project's rate: 15% by default, 40% after trace 100, 10% after trace 300.
    rates = RateHistory([(100, 0.4), (300, 0.1)])
    # The series: all traffic after trace 50, the sample again after 200, all traffic again after 400.
    merged = with_all_traffic(rates, [(50, True), (200, False), (400, True)])
    want = {1: 0.15, 50: 0.15, 51: 1.0, 101: 1.0, 200: 1.0, 201: 0.4, 300: 0.4, 301: 0.1, 400: 0.1, 401: 1.0}
    assert {trace_id: merged.rate_for(trace_id) for trace_id in want} == want
    assert merged.current == 1.0
    assert with_all_traffic(rates, []) is rates
    assert with_all_traffic(rates, [(10, False)]).current == 0.1
    # At a rate of 1 every production trace is judged, and nothing else.
    assert all(is_sampled(source="production", external_id=f"t-{i}", rate=1.0) for i in range(2000))
    assert not is_sampled(source="staging", external_id="t-1", rate=1.0)


@pytest.mark.parametrize("path", ["copy", "copy-subprocess", "orm"])
def test_the_sample_is_the_production_traces_whose_id_hashes_under_the_rate_whatever_stored_them(
    project, monkeypatch, tmp_path, path
):
    if path == "orm":
        monkeypatch.setattr(ingest, "_use_copy", lambda: False)
    items = records(3000) + records(1000, prefix="d", source="dev") + [{"id": "no-source", "input": "q"}]
    file = tmp_path / "traces.jsonl"
    file.write_bytes(jsonl(items).getvalue())
    report = ingest.import_path(project=project, path=file, subprocess=path == "copy-subprocess")
    assert report.created == 4001
    want = expected(items, 0.15)
    assert sampled_ids(project) == want
    assert 380 < len(want) < 520 and all(i.startswith("p-") for i in want)


def test_a_batch_with_production_traces_kicks_a_drain_and_one_without_does_not(project, monkeypatch):
    kicked = []
    monkeypatch.setattr(services, "drain_kick", lambda *, project: kicked.append(project.slug))
    ingest.import_stream(project=project, stream=jsonl(records(10, prefix="d", source="dev")))
    assert kicked == []
    ingest.import_stream(project=project, stream=jsonl(records(10)))
    assert kicked == ["acme"]
    ingest.import_stream(project=project, stream=jsonl(records(10)))  # duplicates: nothing stored
    assert kicked == ["acme"]


def test_the_rest_api_samples_with_the_projects_rate(client, project):
    sampling_rate_set(project=project, rate=0.5)
    _, token = api_token_create(project=project, name="prod")
    items = records(400)
    response = client.post(
        "/api/v1/projects/acme/traces",
        data=json.dumps({"traces": items}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert sampled_ids(project) == expected(items, 0.5)
    assert 150 < len(expected(items, 0.5)) < 250


@pytest.mark.parametrize("orm", [False, True])
def test_a_rate_change_applies_to_traces_stored_after_it_and_the_current_source_counts(project, monkeypatch, orm):
    if orm:
        monkeypatch.setattr(ingest, "_use_copy", lambda: False)
    first = records(1000) + records(500, prefix="d", source="dev")
    ingest.import_stream(project=project, stream=jsonl(first))
    before = sampled_ids(project)
    assert before == expected(first, 0.15)

    sampling_rate_set(project=project, rate=0.6)
    assert sampling_rate(project=project) == 0.6
    # Re-sent with on_conflict=update: the traces stored before the change keep its rate (the dev ones turned
    # production are sampled as if they had arrived as production); new traces get the new rate.
    resent = records(1000) + records(500, prefix="d") + records(500, prefix="n")
    report = ingest.import_stream(project=project, stream=jsonl(resent), on_conflict="update")
    assert (report.created, report.updated) == (500, 1500)
    now = sampled_ids(project)
    assert {i for i in now if i.startswith("p-")} == before
    assert {i for i in now if i.startswith("d-")} == expected(records(500, prefix="d"), 0.15)
    assert {i for i in now if i.startswith("n-")} == expected(records(500, prefix="n"), 0.6)

    # And back to dev: no longer sampled.
    ingest.import_stream(project=project, stream=jsonl(records(500, prefix="d", source="dev")), on_conflict="update")
    assert not any(i.startswith("d-") for i in sampled_ids(project))


def test_the_walk_stops_at_the_limit_and_says_how_far_it_looked(project, monkeypatch):
    monkeypatch.setattr(selectors, "SCAN_PAGE", 7)  # several pages of production traces per call
    ingest.import_stream(project=project, stream=jsonl(records(200) + records(50, prefix="d", source="dev")))
    production = list(Trace.objects.filter(project=project, source="production").order_by("id"))
    want = [t.pk for t in production if is_sampled(source="production", external_id=t.external_id, rate=0.15)]
    picked, upto = sampled_after(project=project, after_id=0, limit=3)
    assert picked == want[:3] and upto == want[2]
    rest, upto = sampled_after(project=project, after_id=upto, limit=1000)
    assert rest == want[3:] and upto == production[-1].pk
    assert sampled_after(project=project, after_id=upto, limit=10) == ([], upto)
