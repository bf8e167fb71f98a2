"""What ingestion announces, for the later stages to act on without ingestion knowing them.

`traces_stored` is sent once per batch of traces written, inside the transaction that writes them: whatever a
receiver writes commits or rolls back with the traces (a strict import that is rolled back leaves nothing behind
in any stage). Receivers connect in their app's `AppConfig.ready`; monitoring's decides what to sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.dispatch import Signal

if TYPE_CHECKING:
    from annotation.models import Project

# Sent with `batch=StoredBatch(...)`; the sender is annotation.models.Trace.
traces_stored = Signal()


@dataclass(frozen=True)
class StoredBatch:
    """One batch of traces just written to a project, in columns (a batch holds thousands of traces).

    `ids` has the database ids the writer already knows (the COPY fast path learns only those of annotated traces);
    `annotation.selectors.trace_ids` finds the others. `source_changed` lists the updated traces whose source the
    batch changed: a re-sent trace whose source stayed the same is the same trace as before.
    """

    project: Project
    external_ids: list[str]
    sources: list[str]
    created: list[bool]
    ids: dict[str, int] = field(default_factory=dict)
    source_changed: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self.external_ids)

    def rows(self) -> Iterator[tuple[str, str, bool]]:
        """(external_id, source, created) per trace, in the order they were written."""
        return zip(self.external_ids, self.sources, self.created, strict=True)
