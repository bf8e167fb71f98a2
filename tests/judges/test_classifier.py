"""Classifier judges: training on train, threshold on dev, vectorised scoring — pure and through the services."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from annotation.services import DomainError
from judges.models import Judgment
from judges.providers import ConfigError, TraceInput
from judges.providers.classifier import TrainedClassifier, TrainingError, choose_threshold, train, validate_config
from judges.selectors import labelled_trace_ids
from judges.services import judge_create, judge_run_create, judge_run_execute, judge_version_create
from tests.factories import make_criterion, make_label, make_trace

GOOD = ["Your card is on its way.", "The transfer went through today.", "Here is the branch address you asked for."]
BAD = ["Sorry, I cannot help with that.", "I apologise, I do not know.", "Sorry, try again later please."]


def corpus(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        bad = i % 3 == 0
        texts.append(f"{rng.choice(BAD if bad else GOOD)} Ref {rng.randint(1, 999)}.")
        labels.append("fail" if bad else "pass")
    return texts, labels


def outputs(texts: list[str]) -> list[TraceInput]:
    return [TraceInput(external_id=str(i), output=text) for i, text in enumerate(texts)]


def test_a_trained_classifier_separates_the_classes_and_survives_a_round_trip():
    texts, labels = corpus(90)
    dev_texts, dev_labels = corpus(60, seed=1)
    config = validate_config({"features": "text", "char_ngrams": [2, 4]})
    model = train(
        train_traces=outputs(texts), train_labels=labels, dev_traces=outputs(dev_texts), dev_labels=dev_labels,
        config=config,
    )  # fmt: skip
    assert [name for name, _ in model.pipeline.named_steps["features"].transformer_list] == ["words", "chars"]
    assert model.summary["threshold_from"] == "dev" and model.summary["dev_min_tpr_tnr"] == 1.0
    test_texts, test_labels = corpus(60, seed=2)
    outcomes = model.judge_many(outputs(test_texts))
    assert [o.verdict for o in outcomes] == test_labels
    assert outcomes[0].reasoning.startswith("P(pass) = ")
    again = TrainedClassifier.loads(model.dumps())
    assert again.threshold == model.threshold
    assert np.allclose(again.pass_probabilities(outputs(test_texts)), model.pass_probabilities(outputs(test_texts)))


def test_threshold_maximises_the_weaker_rate():
    probabilities = np.array([0.1, 0.2, 0.35, 0.4, 0.8, 0.9])
    labels = ["fail", "fail", "pass", "fail", "pass", "pass"]
    threshold, worst = choose_threshold(probabilities, labels)
    assert 0.2 < threshold <= 0.35 or 0.4 < threshold <= 0.8
    assert worst == pytest.approx(2 / 3)
    assert choose_threshold(np.array([0.3, 0.6]), ["pass", "pass"])[0] == 0.5


def test_training_needs_both_classes_and_configs_name_their_key():
    with pytest.raises(TrainingError, match="it has 2 pass and 0 fail"):
        train(train_traces=outputs(["a", "b"]), train_labels=["pass", "pass"], dev_traces=[], dev_labels=[], config={
            "C": 1.0, "max_features": 100
        })  # fmt: skip
    for config, message in [
        ({"C": 0}, "C: expected a positive number"),
        ({"max_features": 3}, "max_features: expected a whole number of at least 10"),
        ({"threshold": 2}, "threshold: expected a probability"),
        ({"alpha": 1}, "alpha: not a classifier setting"),
        ({"features": "text", "char_ngrams": [4, 2]}, "char_ngrams: expected [min, max] lengths between 1 and 8"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            validate_config(config)


@pytest.mark.django_db
def test_a_classifier_judge_is_trained_on_train_only_and_measured_on_test(project):
    criterion = make_criterion(project=project, name="helpful")
    texts, labels = corpus(300, seed=5)
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        make_label(trace=make_trace(project=project, external_id=f"c-{i}", output=text), criterion=criterion,
                   verdict=label)  # fmt: skip
    judge = judge_create(project=project, criterion=criterion, name="tfidf", kind="classifier", config={})
    version = judge.latest_version()
    train_ids = labelled_trace_ids(criterion=criterion, split="train")
    assert version.training["train_pass"] + version.training["train_fail"] == len(train_ids)
    assert version.artifact and version.training["threshold_from"] == "dev"
    run = judge_run_execute(run=judge_run_create(version=version, split="test"))
    assert run.report["n"] == len(labelled_trace_ids(criterion=criterion, split="test"))
    assert run.report["tpr"] > 0.95 and run.report["tnr"] > 0.95
    assert not Judgment.objects.filter(run=run, trace_id__in=list(train_ids)).exists()
    # Same config and same train labels: nothing to retrain. A new train label makes a new version worthwhile.
    with pytest.raises(DomainError, match="nothing changed"):
        judge_version_create(judge=judge, config={})
    extra = next(i for i in range(300, 400) if _in_train(criterion, f"c-{i}"))
    make_label(trace=make_trace(project=project, external_id=f"c-{extra}", output=BAD[0]), criterion=criterion,
               verdict="fail")  # fmt: skip
    assert judge_version_create(judge=judge, config={}).number == 2


def _in_train(criterion, external_id: str) -> bool:
    from judges.selectors import split_key
    from judges.splits import split_of

    return split_of(split_key(criterion), external_id) == "train"


@pytest.mark.django_db
def test_a_classifier_without_both_classes_in_train_is_refused(project):
    criterion = make_criterion(project=project, name="helpful")
    for i in range(5):
        make_label(trace=make_trace(project=project, external_id=f"p-{i}"), criterion=criterion, verdict="pass")
    with pytest.raises(DomainError, match="the train split needs at least one pass and one fail label"):
        judge_create(project=project, criterion=criterion, name="tfidf", kind="classifier")
