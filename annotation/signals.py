"""What ingestion announces, for the later stages to act on without ingestion knowing them.

`traces_stored` is sent once per batch of traces written, inside the transaction that writes them: whatever a
receiver writes commits or rolls back with the traces (a strict import that is rolled back leaves nothing behind
in any stage). Receivers connect in their app's `AppConfig.ready`; monitoring's decides what to sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.dispatch import Signal

if TYPE_CHECKING:
    from annotation.models import Project

# Sent with `batch=StoredBatch(...)`; the sender is annotation.models.Trace.
traces_stored = Signal()


@dataclass(frozen=True)
class StoredBatch:
    """One batch of traces just written to a project (new or updated; duplicates left out), in columns: a batch
    holds thousands of traces. `annotation.selectors.trace_ids` gives their database ids when a receiver needs them.
    """

    project: Project
    external_ids: list[str]
    sources: list[str]
    created: list[bool]

    def __len__(self) -> int:
        return len(self.external_ids)

    def rows(self) -> Iterator[tuple[str, str, bool]]:
        """(external_id, source, created) per trace, in the order they were written."""
        return zip(self.external_ids, self.sources, self.created, strict=True)
