"""Reads for judges: the expert's labels by split, and the pairs an alignment report is computed from."""

from __future__ import annotations

from collections import Counter

from annotation.models import Criterion, Label
from judges.models import JudgeRun, Judgment
from judges.splits import DEFAULT_SHARES, SPLITS, split_of
from judges.stats import ConfusionMatrix


def split_key(criterion: Criterion) -> str:
    """What a criterion's split hash is seeded with: stable for the criterion's life in this installation (a
    rename must not move traces between train and test)."""
    return f"{criterion.project.queue_seed}:{criterion.pk}"


def labelled_trace_ids(*, criterion: Criterion, split: str) -> dict[int, str]:
    """trace id → the expert's verdict, for the criterion's labelled traces in `split` ("all" for every split)."""
    if split != "all" and split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join((*SPLITS, 'all'))}, got {split!r}")
    key = split_key(criterion)
    labels = Label.objects.filter(criterion=criterion).values_list("trace_id", "trace__external_id", "verdict")
    return {
        trace_id: verdict
        for trace_id, external_id, verdict in labels.iterator(chunk_size=5000)
        if split == "all" or split_of(key, external_id, DEFAULT_SHARES) == split
    }


def split_counts(*, criterion: Criterion) -> dict[str, Counter[str]]:
    """Per split, how many labelled traces pass and fail — shown next to every judge of the criterion."""
    key = split_key(criterion)
    counts: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
    labels = Label.objects.filter(criterion=criterion).values_list("trace__external_id", "verdict")
    for external_id, verdict in labels.iterator(chunk_size=5000):
        counts[split_of(key, external_id, DEFAULT_SHARES)][verdict] += 1
    return counts


def run_confusion(run: JudgeRun) -> tuple[ConfusionMatrix, int]:
    """The run's judgments against the expert's labels on the run's split, and how many judgments were errors.

    Only traces the expert labelled count; an error (no verdict) is counted apart, never as a pass or a fail.
    """
    criterion = run.version.judge.criterion
    expert = labelled_trace_ids(criterion=criterion, split=run.split)
    pairs = []
    errors = 0
    judgments = Judgment.objects.filter(run=run).values_list("trace_id", "verdict")
    for trace_id, verdict in judgments.iterator(chunk_size=5000):
        if trace_id not in expert:
            continue
        if not verdict:
            errors += 1
            continue
        pairs.append((expert[trace_id], verdict))
    return ConfusionMatrix.from_pairs(pairs), errors
