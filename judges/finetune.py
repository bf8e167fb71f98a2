"""Fine-tuning data from the expert's labels: the train split of one criterion as chat-format JSONL.

Each labelled train trace becomes one conversation in the shape the LLM judge itself uses (judges.providers.llm):
the system turn is the judge's rubric with the criterion's name and definition, the user turn is the trace rendered
by `render_trace`, and the assistant turn is the expert's answer as the judge must give it — the JSON object
`{"reasoning": critique, "verdict": "pass" | "fail"}` that `parse_answer` accepts. A model fine-tuned on it is then
an LLM judge like any other (`{"model": "<fine-tuned name>", "few_shot": 0}`), measured on dev and test, which is
why those two splits are never exported: a model trained on them would be graded on its own training data.

Labels without a critique are skipped and counted: the judge refuses an answer with empty reasoning, so a verdict
alone would teach the model an answer the judge cannot use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from annotation.models import Criterion, Label
from annotation.services import DomainError
from judges.kinds.base import TRACE_INPUT_FIELDS, trace_input
from judges.providers import llm
from judges.selectors import split_key
from judges.splits import SPLITS, split_of

EXPORTABLE_SPLIT = "train"


@dataclass
class FinetuneExport:
    """What an export wrote and what it left out, and why."""

    written: int = 0
    # Train labels without a critique: nothing for the assistant turn's reasoning.
    without_critique: int = 0
    # Labels of the held-out splits, never written; counted so the total adds up.
    held_out: int = 0


def _check_split(split: str) -> None:
    if split == EXPORTABLE_SPLIT:
        return
    if split in SPLITS:
        raise DomainError(
            f"split: {split!r} is held out and never exported for training: judges are measured on dev and test, "
            "and a model fine-tuned on them would be measured on its own training data. Export --split train."
        )
    raise DomainError(f"split: expected train (dev and test are held out), got {split!r}")


def finetune_example(*, criterion: Criterion, label: Label) -> dict[str, list[dict[str, str]]]:
    """One chat-format training example: the LLM judge's prompt for the label's trace, the expert's answer."""
    messages = llm.build_messages(
        criterion=criterion.name,
        definition=criterion.definition,
        instructions="",
        examples=[],
        trace=trace_input(label.trace),
    )
    answer = {"reasoning": label.critique.strip(), "verdict": label.verdict}
    return {"messages": [*messages, {"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)}]}


def _train_labels(criterion: Criterion, export: FinetuneExport) -> Iterator[Label]:
    """The expert's labels of the criterion in the train split, in trace order, read in chunks."""
    key = split_key(criterion)
    labels = (
        Label.objects.filter(criterion=criterion, author_id=criterion.project.expert_id)
        .select_related("trace")
        .only("verdict", "critique", "trace_id", *(f"trace__{name}" for name in TRACE_INPUT_FIELDS))
        .order_by("trace_id")
    )
    for label in labels.iterator(chunk_size=500):
        if split_of(key, label.trace.external_id) != EXPORTABLE_SPLIT:
            export.held_out += 1
            continue
        if not label.critique.strip():
            export.without_critique += 1
            continue
        yield label


def finetune_export(*, criterion: Criterion, split: str = EXPORTABLE_SPLIT, out: TextIO) -> FinetuneExport:
    """Write the criterion's train examples to `out`, one JSON object a line, as they are read (a project's
    labels never sit in memory at once). Raises DomainError for any split but train, before writing anything."""
    _check_split(split)
    export = FinetuneExport()
    for label in _train_labels(criterion, export):
        out.write(json.dumps(finetune_example(criterion=criterion, label=label), ensure_ascii=False) + "\n")
        export.written += 1
    return export
