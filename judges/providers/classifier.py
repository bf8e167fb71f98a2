"""Classifier judges: the cheap "fine-tuned judge", a scikit-learn pipeline trained on the expert's train labels.

TF-IDF over word 1–2-grams feeds a class-balanced logistic regression, so a criterion with few fails is not learned
as "always pass". Character n-grams are optional (`char_ngrams`): on FELM and FaithBench they did not change test
balanced accuracy (0.578 vs 0.573–0.576, 0.607 vs 0.602–0.605, five split seeds) while cutting scoring from ~13,000
to ~2,500 traces a second per core (bench/RESULTS.md), and scoring speed is what this rung is for. The decision
threshold on P(pass) is then chosen on the dev split — the one that maximises min(TPR, TNR), the weaker of the two
rates the alignment target asks for — and stored with the model. Scoring is vectorised: thousands of traces a
second. Django-free.

Config: `{}` or any of `{"C": 1.0, "max_features": 50000, "char_ngrams": [3, 4], "threshold": 0.5}` (a threshold
given here is used as is).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from judges.providers import ConfigError, Outcome, TraceInput

# scikit-learn is imported where a pipeline is built: every web process imports this module (through the judge
# services) and would otherwise pay for it at start. Unpickling a trained pipeline imports what it needs.
if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

DEFAULTS: dict[str, Any] = {"C": 1.0, "max_features": 50_000}
MAX_TEXT_CHARS = 20_000


def validate_config(config: object) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ConfigError(f"config: expected a JSON object, got {type(config).__name__}")
    unknown = sorted(set(config) - {"C", "max_features", "char_ngrams", "threshold"})
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a classifier setting (settings: C, char_ngrams, max_features, threshold)")
    cleaned = {**DEFAULTS, **config}
    c = cleaned["C"]
    if isinstance(c, bool) or not isinstance(c, int | float) or not c > 0:
        raise ConfigError(f"C: expected a positive number, got {c!r}")
    features = cleaned["max_features"]
    if isinstance(features, bool) or not isinstance(features, int) or features < 10:
        raise ConfigError(f"max_features: expected a whole number of at least 10, got {features!r}")
    if "char_ngrams" in cleaned:
        bounds = cleaned["char_ngrams"]
        valid = (
            isinstance(bounds, list)
            and len(bounds) == 2
            and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
            and 1 <= bounds[0] <= bounds[1] <= 8
        )
        if not valid:
            raise ConfigError(f"char_ngrams: expected [min, max] lengths between 1 and 8, got {bounds!r}")
    if "threshold" in cleaned:
        threshold = cleaned["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
            raise ConfigError(f"threshold: expected a probability between 0 and 1, got {threshold!r}")
    cleaned["C"] = float(c)
    return cleaned


def trace_text(trace: TraceInput) -> str:
    """What the classifier reads: the conversation's words, user side and assistant side marked apart."""
    parts = []
    if trace.input:
        parts.append(f"INPUT {trace.input}")
    for message in trace.messages or []:
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            parts.append(f"{str(message.get('role', '')).upper()} {message['content']}")
    if trace.output:
        parts.append(f"OUTPUT {trace.output}")
    return "\n".join(parts)[:MAX_TEXT_CHARS]


class TrainingError(ValueError):
    """The train split cannot train a classifier (e.g. only one class)."""


@dataclass
class TrainedClassifier:
    pipeline: Pipeline
    threshold: float
    # What the training saw and how the threshold was chosen, shown on the judge's page.
    summary: dict[str, Any] = field(default_factory=dict)

    def pass_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        classes = list(self.pipeline.classes_)
        return self.pipeline.predict_proba(list(texts))[:, classes.index("pass")]

    def judge_many(self, traces: Sequence[TraceInput]) -> list[Outcome]:
        if not traces:
            return []
        probabilities = self.pass_probabilities([trace_text(trace) for trace in traces])
        return [
            Outcome(
                verdict="pass" if p >= self.threshold else "fail",
                reasoning=f"P(pass) = {p:.3f} against a threshold of {self.threshold:.3f}",
                raw_output=f"{p:.6f}",
            )
            for p in probabilities
        ]

    def dumps(self) -> bytes:
        buffer = io.BytesIO()
        pickle.dump((self.pipeline, self.threshold, self.summary), buffer, protocol=pickle.HIGHEST_PROTOCOL)
        return buffer.getvalue()

    @classmethod
    def loads(cls, data: bytes) -> TrainedClassifier:
        # Only ever our own artifact, written by `dumps` into the judge version's row.
        pipeline, threshold, summary = pickle.loads(data)  # noqa: S301
        return cls(pipeline=pipeline, threshold=threshold, summary=summary)


def _pipeline(config: dict[str, Any], seed: int) -> Pipeline:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    parts: list[tuple[str, TfidfVectorizer]] = [
        ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=config["max_features"]))
    ]
    if "char_ngrams" in config:
        low, high = config["char_ngrams"]
        parts.append(
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(low, high), sublinear_tf=True, max_features=config["max_features"]
                ),
            )
        )
    model = LogisticRegression(C=config["C"], class_weight="balanced", max_iter=2000, random_state=seed)
    return Pipeline([("features", FeatureUnion(parts)), ("model", model)])


def choose_threshold(probabilities: np.ndarray, labels: Sequence[str]) -> tuple[float, float]:
    """The threshold on P(pass) that maximises min(TPR, TNR) on labelled examples, and that minimum.

    Candidates are the midpoints between consecutive distinct probabilities (plus both ends), so the choice does
    not sit on a dev example's own score. Ties go to the threshold nearest 0.5.
    """
    truth = np.array([label == "pass" for label in labels])
    if truth.all() or not truth.any():
        return 0.5, float("nan")
    values = np.unique(probabilities)
    candidates = np.concatenate(([0.0], (values[:-1] + values[1:]) / 2, [1.0 + 1e-9]))
    predicted = probabilities[None, :] >= candidates[:, None]
    tpr = (predicted & truth).sum(axis=1) / truth.sum()
    tnr = (~predicted & ~truth).sum(axis=1) / (~truth).sum()
    worst = np.minimum(tpr, tnr)
    best = worst.max()
    ties = candidates[worst == best]
    chosen = float(ties[np.argmin(np.abs(ties - 0.5))])
    return min(chosen, 1.0), float(best)


def train(
    *,
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    dev_texts: Sequence[str],
    dev_labels: Sequence[str],
    config: dict[str, Any],
    seed: int = 0,
) -> TrainedClassifier:
    counts = {label: list(train_labels).count(label) for label in ("pass", "fail")}
    if min(counts.values()) < 1:
        raise TrainingError(
            f"the train split needs at least one pass and one fail label; it has {counts['pass']} pass and "
            f"{counts['fail']} fail (label more traces, or use an assertion or LLM judge)"
        )
    pipeline = _pipeline(config, seed)
    pipeline.fit(list(train_texts), list(train_labels))
    trained = TrainedClassifier(pipeline=pipeline, threshold=0.5)
    summary: dict[str, Any] = {"train_pass": counts["pass"], "train_fail": counts["fail"], "dev": len(dev_texts)}
    if "threshold" in config:
        trained.threshold = float(config["threshold"])
        summary["threshold_from"] = "config"
    elif dev_texts:
        threshold, worst = choose_threshold(trained.pass_probabilities(dev_texts), dev_labels)
        trained.threshold = threshold
        summary["threshold_from"] = "dev"
        summary["dev_min_tpr_tnr"] = None if np.isnan(worst) else round(worst, 4)
    else:
        summary["threshold_from"] = "default (no dev labels)"
    summary["threshold"] = round(trained.threshold, 6)
    trained.summary = summary
    return trained
