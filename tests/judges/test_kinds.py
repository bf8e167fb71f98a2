"""Judge kinds plug in through one interface: the registry holds every kind, and a kind registered here, in a
test, is versioned, run, promoted, used by the regression suite and by monitoring, and shown on the judge pages
with no change anywhere else."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from django.urls import reverse

from annotation import ingest
from annotation.models import Criterion
from annotation.services import DomainError
from judges import kinds
from judges.kinds import Built, JudgeKind, Scorer
from judges.models import Judge, JudgeRun, JudgeVersion, Judgment
from judges.promotions import judge_version_promote
from judges.providers import ConfigError, Outcome, TraceInput
from judges.selectors import labelled_trace_ids
from judges.services import (
    judge_create,
    judge_run_chunk,
    judge_run_create,
    judge_run_execute,
    judge_run_maybe_finish,
    judge_run_plan,
    judge_version_create,
    judgments_import,
)
from monitoring.services import monitoring_drain, sampling_rate_set
from suites.evalsuite import evalsuite_run, records_from_list
from suites.golden import golden_add
from tests.factories import make_criterion, make_split_labels, make_trace
from tests.monitoring.helpers import verdicts_of

pytestmark = pytest.mark.django_db


def test_every_kind_is_registered_under_the_name_judges_store():
    assert [kind.name for kind in kinds.all_kinds()] == Judge.Kind.values
    assert all(isinstance(kinds.get(name), JudgeKind) for name in Judge.Kind.values)
    assert kinds.choices() == Judge.Kind.choices
    assert [kind.name for kind in kinds.all_kinds() if kind.local] == ["assertion", "classifier", "reference"]
    assert [kind.name for kind in kinds.all_kinds() if not kind.judges_new_outputs] == ["external"]
    with pytest.raises(
        DomainError, match="kind: expected one of assertion, classifier, llm, external, reference, got 'oracle'"
    ):
        kinds.get("oracle")


class KeywordKind(JudgeKind):
    """Fails an output holding a word; an empty output is an error. Built from the train split's size."""

    name = "keyword-test"
    label = "keyword"

    def validate_config(self, config: object) -> dict[str, Any]:
        if not isinstance(config, dict) or not isinstance(config.get("word"), str) or not config["word"]:
            raise ConfigError("word: the word that fails an output is required")
        return {"word": config["word"].lower()}

    def build(self, *, criterion: Criterion, config: dict[str, Any]) -> Built:
        return Built(
            config=config, training={"train_labels": len(labelled_trace_ids(criterion=criterion, split="train"))}
        )

    def chunk_size(self, version: JudgeVersion) -> int:
        return 7

    def scorer(self, version: JudgeVersion, *, as_of: datetime | None = None) -> Scorer:
        word = version.config["word"]

        def score(traces: list[TraceInput]) -> list[Outcome]:
            return [
                Outcome(
                    verdict="fail" if word in trace.output.lower() else "pass",
                    reasoning=f"looked for {word!r}",
                    latency_ms=3,
                    cost_usd=0.001,
                )
                if trace.output
                else Outcome(error="nothing to judge")
                for trace in traces
            ]

        return score


@pytest.fixture
def keyword_kind() -> Iterator[KeywordKind]:
    kind = kinds.register(KeywordKind())
    try:
        yield kind
    finally:
        kinds.unregister(kind.name)


@pytest.fixture
def criterion(project):
    """18 train, 36 dev and 36 test traces `t-…`: a third apologies (fails), every tenth output empty (an error).
    The ids are chosen by their split: a criterion's split hash is keyed on its id, which depends on the tests run
    before, and 90 ids hashed freely left dev without an empty output about once in a hundred orders."""
    criterion = make_criterion(project=project, name="no_apology")
    for split, count in (("train", 18), ("dev", 36), ("test", 36)):
        outputs = [
            ("" if i % 10 == 9 else "Sorry, no." if i % 3 == 0 else "Done.", "fail" if i % 3 == 0 else "pass")
            for i in range(count)
        ]
        make_split_labels(criterion=criterion, split=split, outputs=outputs, prefix="t")
    # Promotion is decided on test with the 95% lower bounds: dozens of labels of each class there.
    make_split_labels(
        criterion=criterion, split="test", outputs=[("Done.", "pass"), ("Sorry.", "fail")] * 40, prefix="x"
    )
    return criterion


def test_a_kind_registered_in_a_test_is_versioned_run_promoted_and_used_by_suites_and_monitoring(
    project, criterion, keyword_kind, expert_client
):
    with pytest.raises(DomainError, match="config: word: the word that fails an output is required"):
        judge_create(project=project, criterion=criterion, name="kw", kind=keyword_kind.name, config={})
    judge = judge_create(
        project=project, criterion=criterion, name="kw", kind=keyword_kind.name, config={"word": "Sorry"}
    )
    version = judge.latest_version()
    assert version.config == {"word": "sorry"}
    assert version.training == {"train_labels": len(labelled_trace_ids(criterion=criterion, split="train"))}
    with pytest.raises(DomainError, match="nothing changed"):
        judge_version_create(judge=judge, config={"word": "sorry"})

    # The run loop: the kind's chunks, its scorer, its costs; an error is neither pass nor fail.
    dev = labelled_trace_ids(criterion=criterion, split="dev")
    run = judge_run_create(version=version, split="dev")
    chunks = judge_run_plan(run=run)
    assert run.total == len(dev) and sorted(sum(chunks, [])) == sorted(dev)
    assert max(len(chunk) for chunk in chunks) == 7
    for chunk in chunks:
        judge_run_chunk(run=run, trace_ids=chunk)
    assert judge_run_maybe_finish(run=run)
    empty = Judgment.objects.filter(run=run, trace__output="")
    assert run.status == JudgeRun.Status.DONE and run.report["errors"] == empty.count() > 0
    assert run.report["n"] == len(dev) - empty.count() and run.report["accuracy"] == 1.0
    assert {(j.cost_usd, j.latency_ms) for j in Judgment.objects.filter(run=run).exclude(trace__output="")} == {
        (0.001, 3)
    }
    assert set(empty.values_list("verdict", "error")) == {("", "nothing to judge")}

    # Promotion, the regression suite and monitoring take it like any other kind.
    judge_run_execute(run=judge_run_create(version=version, split="test"))
    judge_version_promote(version=version)
    golden = [make_trace(project=project, external_id=f"g-{i}", output="Done.") for i in range(4)]
    golden_add(project=project, traces=golden, reason="core_feature")
    candidates = [{"id": "g-0", "output": "Sorry!"}, *({"id": f"g-{i}", "output": "Done."} for i in range(1, 4))]
    suite = evalsuite_run(project=project, records=records_from_list(candidates))
    assert [(c["kind"], c["judge"]) for c in suite.result["criteria"]] == [(keyword_kind.name, "kw")]
    assert [(case.case_id, case.verdict) for case in suite.cases] == [
        ("g-0", "fail"), ("g-1", "pass"), ("g-2", "pass"), ("g-3", "pass")
    ]  # fmt: skip
    sampling_rate_set(project=project, rate=1.0)
    production = [{"id": f"p-{i}", "output": "Sorry." if i % 2 else "Fine.", "source": "production"} for i in range(10)]
    ingest.import_stream(project=project, stream=io.BytesIO("".join(json.dumps(p) + "\n" for p in production).encode()))
    assert monitoring_drain(project=project) == 10
    verdicts = verdicts_of(version).values_list("trace__external_id", "verdict", "cost_usd")
    assert sorted(verdicts) == sorted((f"p-{i}", "fail" if i % 2 else "pass", 0.001) for i in range(10))

    # The judge pages name it by its label.
    page = expert_client.get(reverse("judge_detail", args=[project.slug, judge.pk]))
    assert page.status_code == 200 and "Keyword" in page.content.decode()


def test_a_kind_no_longer_registered_is_refused_with_the_kinds_there_are(project, criterion):
    kind = kinds.register(KeywordKind())
    kinds.unregister(kind.name)
    with pytest.raises(
        DomainError, match="kind: expected one of assertion, classifier, llm, external, reference, got 'keyword-test'"
    ):
        judge_create(project=project, criterion=criterion, name="kw", kind="keyword-test", config={"word": "sorry"})
    with pytest.raises(ValueError, match="registered already"):
        kinds.register(kinds.get("llm"))


def test_an_external_run_reads_the_import_made_before_it_was_started(project, criterion):
    judge = judge_create(project=project, criterion=criterion, name="vendor", kind="external")
    labelled = sorted(
        criterion.labels.filter(trace__external_id__startswith="t-").values_list("trace__external_id", flat=True)
    )
    halves = labelled[::2]  # the import judges every other `t-` trace

    def verdicts(verdict: str) -> io.BytesIO:
        rows = [{"id": external_id, "verdict": verdict, "reasoning": verdict} for external_id in halves]
        return io.BytesIO("".join(json.dumps(row) + "\n" for row in rows).encode())

    judgments_import(judge=judge, stream=verdicts("pass"), source_name="first.jsonl")
    run = judge_run_create(version=judge.latest_version(), split="all")
    assert run.total == 45  # only the traces the import judged
    judgments_import(judge=judge, stream=verdicts("fail"), source_name="second.jsonl")
    for chunk in judge_run_plan(run=run):
        judge_run_chunk(run=run, trace_ids=chunk)
    judge_run_maybe_finish(run=run)
    assert run.status == JudgeRun.Status.DONE
    assert set(Judgment.objects.filter(run=run).values_list("verdict", "reasoning")) == {("pass", "pass")}
    later = judge_run_create(version=judge.latest_version(), split="all")
    for chunk in judge_run_plan(run=later):
        judge_run_chunk(run=later, trace_ids=chunk)
    assert set(Judgment.objects.filter(run=later).values_list("verdict", flat=True)) == {"fail"}
