"""Classifier judges: the cheap "fine-tuned judge", a scikit-learn pipeline trained on the expert's train labels.

TF-IDF over word 1–2-grams feeds a class-balanced logistic regression, so a criterion with few fails is not learned
as "always pass". Character n-grams are optional (`char_ngrams`): on FELM and FaithBench they did not change test
balanced accuracy (0.578 vs 0.573–0.576, 0.607 vs 0.602–0.605, five split seeds) while cutting scoring from ~13,000
to ~2,500 traces a second per core (bench/RESULTS.md), and scoring speed is what this rung is for. The decision
threshold on P(pass) is then chosen on the dev split — the one that maximises min(TPR, TNR), the weaker of the two
rates the alignment target asks for — and stored with the model. Scoring is vectorised: thousands of traces a
second. Django-free.

`features` says what the model reads. `"triple"` (the default for new versions) adds to the TF-IDF the features of
the (input, context, output) triple in judges.providers.triple_features — how much of the output, its numbers and
its names the input and context do not contain, length ratios, negation mismatches — standardised and weighted
(`triple_weight`, default 0.1) in the same class-balanced logistic regression (judges.providers.triple_model).
`"text"` is the TF-IDF alone, as every version built before `features` existed: a version's config and artifact
never change, so those keep loading and scoring exactly as they did (their stored config has no `features`).

Config: `{}` or any of `{"features": "triple", "C": 1.0, "max_features": 50000, "triple_weight": 0.1,
"threshold": 0.5}`, and `"char_ngrams": [3, 4]` with `"features": "text"` (a threshold given here is used as is).
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
FEATURES = ("triple", "text")
# How much the standardised triple features count against the TF-IDF: chosen on the dev splits of FELM and
# FaithBench (seven split seeds), where 0.1 beat 0.2 and 0.35 and weights from 0.5 up let the few numeric columns
# drown the words (bench/RESULTS.md).
TRIPLE_WEIGHT = 0.1
SETTINGS = ("C", "char_ngrams", "features", "max_features", "threshold", "triple_weight")


def validate_config(config: object) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ConfigError(f"config: expected a JSON object, got {type(config).__name__}")
    unknown = sorted(set(config) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a classifier setting (settings: {', '.join(SETTINGS)})")
    # New versions read the triple unless told otherwise; stored versions keep the config they were built with.
    cleaned = {**DEFAULTS, "features": FEATURES[0], **config}
    if cleaned["features"] not in FEATURES:
        raise ConfigError(f"features: expected one of {', '.join(FEATURES)}, got {cleaned['features']!r}")
    if cleaned["features"] == "triple":
        weight = cleaned.setdefault("triple_weight", TRIPLE_WEIGHT)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 100:
            raise ConfigError(f"triple_weight: expected a number between 0 and 100, got {weight!r}")
        cleaned["triple_weight"] = float(weight)
        if "char_ngrams" in cleaned:
            raise ConfigError('char_ngrams: only with "features": "text" (the triple model reads words)')
    elif "triple_weight" in cleaned:
        raise ConfigError('triple_weight: only with "features": "triple"')
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


def trace_triple(trace: TraceInput) -> tuple[str, str, str, str]:
    """What the triple model reads: (input, context, output, conversation).

    The source an output is checked against is the input and user/system turns (input side) and the context passages
    and tool results (context side); the output is `output`, or the last assistant turn when there is none; the
    conversation (every turn, marked by role) is read by the TF-IDF only, as `trace_text` reads it.
    """
    asked, found, turns = [trace.input or ""], [c for c in trace.context or [] if isinstance(c, str)], []
    last_answer = ""
    for message in trace.messages or []:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            continue
        role, content = str(message.get("role", "")), message["content"]
        turns.append(f"{role.upper()} {content}")
        if role == "assistant":
            last_answer = content
        elif role == "tool":
            found.append(content)
        else:
            asked.append(content)
    return (
        "\n".join(asked)[:MAX_TEXT_CHARS],
        "\n".join(found)[:MAX_TEXT_CHARS],
        (trace.output or last_answer)[:MAX_TEXT_CHARS],
        "\n".join(turns)[:MAX_TEXT_CHARS],
    )


class TrainingError(ValueError):
    """The train split cannot train a classifier (e.g. only one class)."""


@dataclass
class TrainedClassifier:
    pipeline: Pipeline
    threshold: float
    # What the training saw and how the threshold was chosen, shown on the judge's page.
    summary: dict[str, Any] = field(default_factory=dict)
    # What the pipeline reads ("text": trace_text strings; "triple": trace_triple rows). Artifacts written before
    # this existed are "text".
    features: str = "text"

    def _inputs(self, traces: Sequence[TraceInput]) -> list[Any]:
        if self.features == "triple":
            return [trace_triple(trace) for trace in traces]
        return [trace_text(trace) for trace in traces]

    def pass_probabilities(self, traces: Sequence[TraceInput]) -> np.ndarray:
        classes = list(self.pipeline.classes_)
        return self.pipeline.predict_proba(self._inputs(traces))[:, classes.index("pass")]

    def judge_many(self, traces: Sequence[TraceInput]) -> list[Outcome]:
        if not traces:
            return []
        probabilities = self.pass_probabilities(traces)
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
        # A text model is written as it always was (three items), so any version of this code reads it.
        state: tuple[Any, ...] = (self.pipeline, self.threshold, self.summary)
        if self.features != "text":
            state = (*state, self.features)
        pickle.dump(state, buffer, protocol=pickle.HIGHEST_PROTOCOL)
        return buffer.getvalue()

    @classmethod
    def loads(cls, data: bytes) -> TrainedClassifier:
        # Only ever our own artifact, written by `dumps` into the judge version's row.
        state = pickle.loads(data)  # noqa: S301
        pipeline, threshold, summary = state[:3]
        features = state[3] if len(state) > 3 else "text"
        return cls(pipeline=pipeline, threshold=threshold, summary=summary, features=features)


def _pipeline(config: dict[str, Any], seed: int) -> Pipeline:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    model = LogisticRegression(C=config["C"], class_weight="balanced", max_iter=2000, random_state=seed)
    if config.get("features", "text") == "triple":
        from judges.providers.triple_model import TripleVectorizer

        vectorizer = TripleVectorizer(
            max_features=config["max_features"], triple_weight=config["triple_weight"], bigrams=False
        )
        return Pipeline([("features", vectorizer), ("model", model)])

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
    train_traces: Sequence[TraceInput],
    train_labels: Sequence[str],
    dev_traces: Sequence[TraceInput],
    dev_labels: Sequence[str],
    config: dict[str, Any],
    seed: int = 0,
) -> TrainedClassifier:
    """Fit on the train traces, choose the threshold on the dev traces; `config` as validate_config returns it (a
    config without `features` is a text model, as versions built before the setting existed)."""
    counts = {label: list(train_labels).count(label) for label in ("pass", "fail")}
    if min(counts.values()) < 1:
        raise TrainingError(
            f"the train split needs at least one pass and one fail label; it has {counts['pass']} pass and "
            f"{counts['fail']} fail (label more traces, or use an assertion or LLM judge)"
        )
    trained = TrainedClassifier(
        pipeline=_pipeline(config, seed), threshold=0.5, features=config.get("features", "text")
    )
    trained.pipeline.fit(trained._inputs(train_traces), list(train_labels))
    summary: dict[str, Any] = {
        "train_pass": counts["pass"],
        "train_fail": counts["fail"],
        "dev": len(dev_traces),
        "features": trained.features,
    }
    if "threshold" in config:
        trained.threshold = float(config["threshold"])
        summary["threshold_from"] = "config"
    elif dev_traces:
        threshold, worst = choose_threshold(trained.pass_probabilities(dev_traces), dev_labels)
        trained.threshold = threshold
        summary["threshold_from"] = "dev"
        summary["dev_min_tpr_tnr"] = None if np.isnan(worst) else round(worst, 4)
    else:
        summary["threshold_from"] = "default (no dev labels)"
    summary["threshold"] = round(trained.threshold, 6)
    trained.summary = summary
    return trained
