"""The interface every judge kind implements, and what kinds share: a trace as a judge sees it, a scorer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from annotation.models import Criterion, Trace
from judges.models import JudgeVersion
from judges.providers import Outcome, TraceInput
from judges.selectors import labelled_trace_ids

# Judges a batch of traces, in order: one Outcome each, carrying what it cost (tokens, dollars, latency).
Scorer = Callable[[list[TraceInput]], list[Outcome]]
# The Trace fields trace_input reads: load them with `.only(*TRACE_INPUT_FIELDS)`, or each deferred one costs a
# query per trace.
TRACE_INPUT_FIELDS = ("id", "external_id", "input", "output", "messages", "context", "metadata", "reference")
# Traces per chunk of work (one task on the worker) unless a kind says otherwise.
CHUNK_SIZE = 500


def trace_input(trace: Trace) -> TraceInput:
    """What a judge sees of a stored trace."""
    return TraceInput(
        external_id=trace.external_id,
        input=trace.input,
        output=trace.output,
        messages=trace.messages,
        context=trace.context,
        metadata=trace.metadata,
        reference=trace.reference,
    )


@dataclass(frozen=True)
class Built:
    """What a new version stores for its kind: the config (completed by the kind, e.g. the few-shot examples it
    picked), what training made of the criterion's labels (an artifact, and a summary with `train_fingerprint`
    when the version depends on the train split's labels), and the snapshot: whatever else the version's verdicts
    depend on that lives outside the version (an LLM judge's criterion definition and its examples' critiques),
    copied as it is now so that later edits never change what the version does."""

    config: dict[str, Any]
    artifact: bytes | None = None
    training: dict[str, Any] = field(default_factory=dict)
    snapshot: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Drift:
    """How what a version froze differs from the state it was built from as that state is now: `headline` for a
    badge, after the version's name ("is built on an older definition"), `changes` saying what changed, one clause
    each; `runs` is False when the version cannot run at all any more (then it needs a new version)."""

    headline: str
    changes: tuple[str, ...]
    runs: bool = True


class JudgeKind(ABC):
    """One kind of judge, plugged into the run loop, versioning, promotion, suites and monitoring.

    A kind wraps the Django-free computation in `judges.providers` with what needs the database: the criterion's
    labels for training, stored answers, imported verdicts. Register an instance in `judges.kinds`.
    """

    # The registry key, stored in Judge.kind.
    name: ClassVar[str]
    # How the kind is named in a sentence ("an LLM judge", "assertion or classifier"); capitalised for display.
    label: ClassVar[str]
    # Runs here without paying anyone: the cost ladder counts it as free, and the regression suite runs it unasked
    # (a kind that calls a paid model runs there only with --include-llm).
    local: ClassVar[bool] = True
    # Why this kind cannot judge outputs it has never seen, or "" when it can. A kind that cannot is never
    # promoted, and suites and monitoring skip it.
    cannot_judge_new_outputs: ClassVar[str] = ""
    # Whether a prompt's wording can sway its verdicts, so that promotion asks for a bias battery that shows it
    # does not (judges.bias): LLM judges.
    bias_battery: ClassVar[bool] = False

    @property
    def display(self) -> str:
        """The label as a page shows it on its own ("Assertion", "LLM")."""
        return self.label[:1].upper() + self.label[1:]

    @property
    def judges_new_outputs(self) -> bool:
        return not self.cannot_judge_new_outputs

    def unavailable_reason(self) -> str:
        """Why runs of this kind cannot run on this server as it is configured, or "" when they can: a run queued
        anyway would fail on every trace, later and on the worker."""
        return ""

    @abstractmethod
    def validate_config(self, config: object) -> dict[str, Any]:
        """The config with defaults filled in. Raises ConfigError naming the key at fault."""

    def build(self, *, criterion: Criterion, config: dict[str, Any]) -> Built:
        """What a new version of a judge of the criterion stores, from its validated config and the criterion's
        labels. Anything learnt from labels comes from the train split only (the threshold of a classifier: dev).
        Everything the version's verdicts depend on goes into what it stores (the config, the artifact, the
        snapshot): runs, previews, suites and monitoring read only those, never the criterion or labels as they
        are later. Raises DomainError when the labels cannot make one."""
        return Built(config=config)

    def drift(self, *, version_ids: list[int]) -> dict[int, Drift]:
        """Version id → how the state it froze has changed since, for those of `version_ids` (versions of
        judges of this kind) whose state did; a few queries, whatever the number of versions. By default a kind
        freezes nothing outside the version, so nothing drifts."""
        return {}

    def run_trace_ids(self, *, version: JudgeVersion, split: str, as_of: datetime) -> list[int]:
        """The traces a run of the version on `split` judges: by default the criterion's labelled traces in the
        split. `as_of` is the run's creation: what a kind reads that others write (imported verdicts) is read as
        it was then, so the run's plan and its chunks agree."""
        return list(labelled_trace_ids(criterion=version.judge.criterion, split=split))

    def chunk_size(self, version: JudgeVersion) -> int:
        """Traces per chunk of a run (one task on the worker, one call of the scorer)."""
        return CHUNK_SIZE

    @abstractmethod
    def scorer(self, version: JudgeVersion, *, as_of: datetime | None = None) -> Scorer:
        """Judges batches of traces with the version. Called from the thread that owns the database connection;
        what it loads once (a trained model, few-shot examples) it keeps across batches."""
