"""The triple classifier: support features of (input, context, output), a model that uses them where TF-IDF cannot,
and text-only versions built before the setting existed still loading and scoring as they did."""

from __future__ import annotations

import io
import pickle
import random
import re

import numpy as np
import pytest

from judges.models import Judgment
from judges.providers import ConfigError, TraceInput
from judges.providers.classifier import TrainedClassifier, trace_text, trace_triple, train, validate_config
from judges.providers.triple_features import FEATURE_NAMES, features_of, triple_features
from judges.services import judge_create, judge_run_create, judge_run_execute
from tests.factories import make_criterion, make_label, make_trace

CONTEXT = "Poseidon grossed $ 181,674,817 at the worldwide box office on a budget of $ 160 million ."


def feature(values: list[float], name: str) -> float:
    return values[FEATURE_NAMES.index(name)]


def test_a_number_the_source_lacks_is_counted_and_one_it_has_is_not():
    supported = features_of("", CONTEXT, "Poseidon grossed $181,674,817 worldwide on a $160 million budget.")
    invented = features_of("", CONTEXT, "Poseidon grossed $181,674,817 worldwide on a $190 million budget.")
    assert feature(supported, "log_unsupported_numbers") == 0
    assert feature(supported, "unsupported_number_share") == 0
    assert feature(invented, "log_unsupported_numbers") == pytest.approx(np.log1p(1))
    assert feature(invented, "unsupported_number_share") == pytest.approx(1 / 4)  # 181, 674, 817 are there
    assert feature(invented, "log_output_numbers") == feature(supported, "log_output_numbers")


def test_names_words_negations_and_lengths_against_the_source():
    clean = features_of("Summarise.", CONTEXT, "Poseidon grossed about 181 million dollars.")
    made_up = features_of("Summarise.", CONTEXT, "Poseidon did not gross much in Paris, said Spielberg.")
    assert feature(clean, "log_unsupported_entities") == 0 and feature(clean, "log_output_entities") > 0
    assert feature(made_up, "log_unsupported_entities") == pytest.approx(np.log1p(2))  # Paris, Spielberg
    assert feature(made_up, "unsupported_word_share") > feature(clean, "unsupported_word_share")
    assert feature(made_up, "unsupported_bigram_share") > feature(clean, "unsupported_bigram_share")
    assert feature(made_up, "negation_without_source_negation") == 1.0
    assert feature(made_up, "negation_asymmetry") == 1.0
    # The input counts as source too: a word the question used is supported.
    assert feature(features_of("Is Paris mentioned?", "", "Paris is."), "log_unsupported_entities") == 0
    ratios = features_of("one two", "one two three four five six seven", "one two three")
    assert feature(ratios, "log_ratio_output_input") == pytest.approx(np.log(4 / 3))
    assert feature(ratios, "log_ratio_output_context") == pytest.approx(np.log(4 / 8))


def test_empty_and_non_ascii_texts_give_finite_features():
    matrix = triple_features(
        [("", "", ""), (None, None, None), ("Où est Zürich ?", "Zürich liegt am See — “ja”.", "Zürich")]
    )
    assert matrix.shape == (3, len(FEATURE_NAMES)) and np.isfinite(matrix).all()
    assert feature(list(matrix[2]), "log_unsupported_entities") == 0
    # Capitals outside ASCII are lowered like the source's: "ÜBER" is the source's "über".
    assert feature(features_of("", "über zürich", "ÜBER Zürich"), "log_unsupported_entities") == 0


def test_a_trace_is_read_as_its_triple_with_turns_and_tool_results():
    trace = TraceInput(
        external_id="a",
        messages=[
            {"role": "user", "content": "Where is the order?"},
            {"role": "tool", "content": "order 7 shipped"},
            {"role": "assistant", "content": "Order 7 has shipped."},
        ],
        context=["Orders ship in two days."],
    )
    asked, found, answer, conversation = trace_triple(trace)
    assert asked.strip() == "Where is the order?"
    assert found == "Orders ship in two days.\norder 7 shipped"
    assert answer == "Order 7 has shipped."
    assert "TOOL order 7 shipped" in conversation


def unsupported_claims(n: int, seed: int) -> tuple[list[TraceInput], list[str]]:
    """The criterion "every figure in the answer is in the context": passing and failing answers use the same words
    and numbers drawn from the same range, so only the comparison with the context tells them apart."""
    rng = random.Random(seed)
    cities = ["Lyon", "Porto", "Graz", "Turin", "Ghent", "Split", "Bergen", "Malmo"]
    traces, labels = [], []
    for i in range(n):
        city, amount, year = rng.choice(cities), rng.randint(100, 999), rng.randint(1950, 2020)
        context = f"The bridge in {city} cost {amount} million and opened in {year}."
        failing = i % 2 == 0
        if failing:
            amount = rng.choice([a for a in range(100, 1000) if a != amount])
        output = f"The bridge in {city} opened in {year} and cost {amount} million."
        traces.append(TraceInput(external_id=f"{seed}-{i}", input="Summarise.", output=output, context=[context]))
        labels.append("fail" if failing else "pass")
    return traces, labels


def balanced_accuracy(model: TrainedClassifier, traces: list[TraceInput], labels: list[str]) -> float:
    verdicts = np.array([o.verdict == "pass" for o in model.judge_many(traces)])
    truth = np.array(labels) == "pass"
    return float(((verdicts & truth).sum() / truth.sum() + (~verdicts & ~truth).sum() / (~truth).sum()) / 2)


def test_the_triple_model_learns_an_unsupported_claim_criterion_tf_idf_cannot():
    train_traces, train_labels = unsupported_claims(200, seed=1)
    dev_traces, dev_labels = unsupported_claims(100, seed=2)
    test_traces, test_labels = unsupported_claims(200, seed=3)
    scores = {}
    for features in ("text", "triple"):
        model = train(
            train_traces=train_traces, train_labels=train_labels, dev_traces=dev_traces, dev_labels=dev_labels,
            config=validate_config({"features": features}),
        )  # fmt: skip
        assert model.summary["features"] == features
        scores[features] = balanced_accuracy(model, test_traces, test_labels)
    assert scores["text"] < 0.65, scores
    assert scores["triple"] > 0.95, scores


def test_new_configs_default_to_the_triple_and_settings_name_their_key():
    assert validate_config({}) == {"C": 1.0, "max_features": 50_000, "features": "triple", "triple_weight": 0.1}
    assert "triple_weight" not in validate_config({"features": "text"})
    for config, message in [
        ({"features": "bag"}, "features: expected one of triple, text, got 'bag'"),
        ({"triple_weight": -1}, "triple_weight: expected a number between 0 and 100, got -1"),
        ({"features": "text", "triple_weight": 1}, 'triple_weight: only with "features": "triple"'),
        ({"char_ngrams": [2, 3]}, 'char_ngrams: only with "features": "text"'),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            validate_config(config)


def old_artifact(traces: list[TraceInput], labels: list[str]) -> tuple[bytes, object]:
    """A classifier artifact exactly as versions built before `features` stored it: scikit-learn's TF-IDF in a
    FeatureUnion and a logistic regression over `trace_text`, pickled as (pipeline, threshold, summary)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    pipeline = Pipeline(
        [
            ("features", FeatureUnion([("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True))])),
            ("model", LogisticRegression(class_weight="balanced", max_iter=2000, random_state=0)),
        ]
    )
    pipeline.fit([trace_text(t) for t in traces], labels)
    buffer = io.BytesIO()
    pickle.dump((pipeline, 0.5, {"train_pass": 1, "train_fail": 1, "threshold": 0.5}), buffer)
    return buffer.getvalue(), pipeline


def polite(n: int, seed: int) -> tuple[list[TraceInput], list[str]]:
    rng = random.Random(seed)
    traces, labels = [], []
    for i in range(n):
        rude = i % 3 == 0
        text = rng.choice(
            ["Go away.", "Not my problem, figure it out."] if rude else ["Happy to help!", "Glad to help you."]
        )
        traces.append(TraceInput(external_id=f"p-{seed}-{i}", input="Can you help?", output=text))
        labels.append("fail" if rude else "pass")
    return traces, labels


def test_an_artifact_from_before_the_setting_loads_as_text_and_scores_as_it_did():
    traces, labels = polite(60, seed=4)
    data, pipeline = old_artifact(traces, labels)
    model = TrainedClassifier.loads(data)
    assert model.features == "text"
    test_traces, _ = polite(30, seed=5)
    expected = pipeline.predict_proba([trace_text(t) for t in test_traces])[:, list(pipeline.classes_).index("pass")]
    assert np.array_equal(model.pass_probabilities(test_traces), expected)
    # Written again it is still the three-item artifact the older code reads.
    assert len(pickle.loads(model.dumps())) == 3  # noqa: S301


@pytest.mark.django_db
def test_an_old_classifier_version_still_runs_beside_a_new_triple_one(project):
    criterion = make_criterion(project=project, name="grounded")
    traces, labels = unsupported_claims(240, seed=6)
    for trace, label in zip(traces, labels, strict=True):
        stored = make_trace(
            project=project, external_id=trace.external_id, input=trace.input, output=trace.output,
            context=trace.context,
        )  # fmt: skip
        make_label(trace=stored, criterion=criterion, verdict=label)
    old_judge = judge_create(
        project=project, criterion=criterion, name="tfidf", kind="classifier", config={"features": "text"}
    )
    old_version = old_judge.latest_version()
    data, _ = old_artifact(traces[:60], labels[:60])
    # As a version built before `features` existed: no such key in its config, the old artifact in its row.
    type(old_version).objects.filter(pk=old_version.pk).update(config={"C": 1.0, "max_features": 50000}, artifact=data)
    old_version.refresh_from_db()
    old_run = judge_run_execute(run=judge_run_create(version=old_version, split="test"))
    assert old_run.status == "done" and old_run.report["n"] > 0
    assert not Judgment.objects.filter(run=old_run).exclude(error="").exists()

    new_version = judge_create(project=project, criterion=criterion, name="triple", kind="classifier").latest_version()
    assert new_version.config["features"] == "triple" and new_version.training["features"] == "triple"
    new_run = judge_run_execute(run=judge_run_create(version=new_version, split="test"))
    assert new_run.report["n"] == old_run.report["n"]
    assert new_run.report["tpr"] > 0.9 and new_run.report["tnr"] > 0.9
    assert old_run.report["kappa"] < new_run.report["kappa"]


@pytest.mark.django_db
def test_the_migration_writes_down_that_older_classifier_versions_read_text(project):
    import importlib

    from django.apps import apps

    from judges.models import JudgeVersion

    migration = importlib.import_module("judges.migrations.0016_classifier_versions_say_text")
    criterion = make_criterion(project=project, name="grounded")
    # Enough labels that the hashed train split holds both classes whatever the criterion's id: with 30, some ids
    # left train without a fail (7 pass, 0 fail in a full-suite run) and the classifier could not be built.
    traces, labels = polite(150, seed=7)
    for trace, label in zip(traces, labels, strict=True):
        make_label(trace=make_trace(project=project, external_id=trace.external_id, output=trace.output),
                   criterion=criterion, verdict=label)  # fmt: skip
    old = judge_create(project=project, criterion=criterion, name="old", kind="classifier", config={"features": "text"})
    JudgeVersion.objects.filter(judge=old).update(config={"C": 1.0, "max_features": 50000})
    new = judge_create(project=project, criterion=criterion, name="new", kind="classifier")
    llm = judge_create(project=project, criterion=criterion, name="llm", kind="external")

    migration.say_text(apps, None)

    assert old.latest_version().config == {"C": 1.0, "max_features": 50000, "features": "text"}
    assert new.latest_version().config["features"] == "triple"
    assert "features" not in llm.latest_version().config
