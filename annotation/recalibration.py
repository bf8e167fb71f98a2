"""Recalibration after a criterion's definition changed: a review session of the labels made under an earlier
definition, most likely affected first.

"The act of judging outputs is how criteria get defined": definitions move, and labels made under the old words
may no longer answer the new ones. The session offers first the labelled traces whose critique or notes mention
words the edit added or removed (most mentions first), then a random sample of the rest (the project's stored
shuffle order). Each is labelled again blind under the current definition, then the expert decides which label
stands, with a reason when they differ (annotation.relabels, as for a judge's disagreements but without a judge).
The kept label records the current version, so the criterion page's "labels under an earlier definition" shrinks
as the session goes.
"""

from __future__ import annotations

import re
from collections import defaultdict

from django.contrib.auth.models import AbstractBaseUser

from annotation.definition_diff import changed_words
from annotation.models import Criterion, CriterionVersion, Label, Note, ReviewSession, Trace
from annotation.services import DomainError
from annotation.sessions import MAX_SIZE, review_session_store

DEFAULT_SIZE = 50
# Words named in an item's reason (the session page shows why a trace was picked).
MENTIONS_SHOWN = 8


def labels_under_earlier_definitions(*, criterion: Criterion) -> int:
    return Label.objects.filter(criterion=criterion, criterion_version__lt=criterion.version).count()


def recalibration_session_create(
    *, criterion: Criterion, created_by: AbstractBaseUser, size: int = DEFAULT_SIZE
) -> ReviewSession:
    """A session of up to `size` traces labelled on `criterion` under an earlier definition: those whose critique
    or notes mention a changed word first, then the rest in the project's random order. Raises DomainError when
    the definition never changed or no label was made under an earlier one."""
    if not 1 <= size <= MAX_SIZE:
        raise DomainError(f"The session size must be from 1 to {MAX_SIZE} traces; got {size}.")
    current = criterion.version
    if current == 1:
        raise DomainError(
            f"The definition of “{criterion.name}” has not changed since it was made: nothing to recalibrate."
        )
    labels = list(
        Label.objects.filter(criterion=criterion, criterion_version__lt=current).values_list(
            "trace_id", "critique", "criterion_version"
        )
    )
    if not labels:
        raise DomainError(
            f"Every label of “{criterion.name}” was made (or confirmed) under its current definition, "
            f"version {current}: nothing to recalibrate."
        )
    definitions = dict(CriterionVersion.objects.filter(criterion=criterion).values_list("number", "definition"))
    now_words = definitions.get(current, criterion.definition)
    words_since = {
        version: changed_words(definitions.get(version, ""), now_words) for version in {v for _, _, v in labels}
    }
    texts: dict[int, list[str]] = defaultdict(list)
    for trace_id, critique, _ in labels:
        texts[trace_id].append(critique)
    for trace_id, text in Note.objects.filter(trace_id__in=list(texts)).values_list("trace_id", "text"):
        texts[trace_id].append(text)
    shuffle = dict(Trace.objects.filter(pk__in=list(texts)).values_list("pk", "shuffle_key"))
    picked = []
    for trace_id, _, version in labels:
        found = set(re.findall(r"\w+", " ".join(texts[trace_id]).lower())) & words_since[version]
        picked.append((trace_id, version, sorted(found)))
    # Mentions first (most first), then the project's random order; the trace id breaks ties for a stable order.
    picked.sort(key=lambda row: (-len(row[2]), shuffle.get(row[0], 0) if not row[2] else 0, row[0]))
    items = [
        (
            trace_id,
            {
                "criterion": criterion.name,
                "criterion_id": criterion.pk,
                "label_version": version,
                "current_version": current,
                "mentions": mentions[:MENTIONS_SHOWN],
            },
        )
        for trace_id, version, mentions in picked[:size]
    ]
    return review_session_store(
        project=criterion.project,
        created_by=created_by,
        strategy=ReviewSession.Strategy.RECALIBRATION,
        name=f"Recalibrate “{criterion.name}” for definition v{current}",
        params={"criterion_id": criterion.pk, "criterion": criterion.name, "version": current},
        items=items,
    )
