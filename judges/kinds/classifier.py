"""Classifier judges: a scikit-learn pipeline (judges.providers.classifier) trained on the expert's train labels,
its threshold chosen on dev, stored in the version; scoring is vectorised per batch. What the pipeline reads (the
output's words, or the whole input/context/output triple) is the version's `features` setting, frozen with it."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from datetime import datetime
from typing import Any

from annotation.models import Criterion, Trace
from annotation.services import DomainError
from judges.kinds.base import TRACE_INPUT_FIELDS, Built, JudgeKind, Scorer, trace_input
from judges.models import Judge, JudgeVersion
from judges.providers import Outcome, TraceInput, classifier
from judges.selectors import labelled_trace_ids


class ClassifierKind(JudgeKind):
    name = Judge.Kind.CLASSIFIER
    label = "classifier"

    def validate_config(self, config: object) -> dict[str, Any]:
        return classifier.validate_config(config)

    def build(self, *, criterion: Criterion, config: dict[str, Any]) -> Built:
        """Train on the train split, choose the threshold on dev. The fingerprint of the train labels tells a
        retrained version from its predecessor when the config is the same."""
        splits = {name: labelled_trace_ids(criterion=criterion, split=name) for name in ("train", "dev")}
        inputs = {
            trace.pk: trace_input(trace)
            for trace in Trace.objects.filter(pk__in=[*splits["train"], *splits["dev"]]).only(*TRACE_INPUT_FIELDS)
        }
        train_ids, dev_ids = sorted(splits["train"]), sorted(splits["dev"])
        try:
            model = classifier.train(
                train_traces=[inputs[i] for i in train_ids],
                train_labels=[splits["train"][i] for i in train_ids],
                dev_traces=[inputs[i] for i in dev_ids],
                dev_labels=[splits["dev"][i] for i in dev_ids],
                config=config,
            )
        except classifier.TrainingError as exc:
            raise DomainError(str(exc)) from None
        fingerprint = hashlib.sha256(repr(sorted(splits["train"].items())).encode()).hexdigest()[:16]
        return Built(
            config=config,
            artifact=model.dumps(),
            training={**model.summary, "train_fingerprint": fingerprint},
        )

    def scorer(self, version: JudgeVersion, *, as_of: datetime | None = None) -> Scorer:
        model = classifier.TrainedClassifier.loads(bytes(version.artifact))

        def score(traces: list[TraceInput]) -> list[Outcome]:
            started = time.perf_counter()
            outcomes = model.judge_many(traces)
            each_ms = round(1000 * (time.perf_counter() - started) / max(1, len(traces)))
            return [replace(outcome, latency_ms=each_ms) for outcome in outcomes]

        return score
