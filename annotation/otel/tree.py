"""The span tree of a trace page: a trace's spans in one query, ordered depth-first as a waterfall."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from annotation.models import Span, Trace

# Deeper spans are still listed in order, only no longer indented further (the row would run out of width).
MAX_INDENT = 24


@dataclass(frozen=True)
class SpanRow:
    span: Span
    depth: int
    indent_em: float
    offset_pct: float  # the bar's start within the trace, in % of the trace's duration
    width_pct: float
    duration_ms: float
    is_error: bool
    late: bool  # arrived after the expert reviewed the trace: shown here, not in the reviewed content
    attributes_json: str
    events: list[dict[str, Any]]


@dataclass(frozen=True)
class SpanTree:
    rows: list[SpanRow]
    late_count: int
    duration_ms: float


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def trace_span_tree(*, trace: Trace) -> SpanTree | None:
    """The trace's spans as waterfall rows (None when it has none: not an OTel trace). One query."""
    spans = list(Span.objects.filter(project_id=trace.project_id, trace_id=trace.external_id).order_by("start_ns"))
    if not spans:
        return None
    ids = {span.span_id for span in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    roots: list[Span] = []
    for span in spans:
        # A span whose parent never arrived is shown at the top level, not dropped.
        if span.parent_span_id and span.parent_span_id in ids and span.parent_span_id != span.span_id:
            children[span.parent_span_id].append(span)
        else:
            roots.append(span)
    start = min(span.start_ns for span in spans)
    total = max(1, max(span.end_ns for span in spans) - start)
    reviewed_at: datetime | None = trace.reviewed_at
    rows: list[SpanRow] = []
    seen: set[str] = set()
    # Iterative depth-first walk: a 1,000-deep chain must not hit Python's recursion limit.
    stack: list[tuple[Span, int]] = [(span, 0) for span in reversed(roots)]
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:  # a cycle of parent ids (a broken exporter) is shown once
            continue
        seen.add(span.span_id)
        rows.append(
            SpanRow(
                span=span,
                depth=depth,
                indent_em=min(depth, MAX_INDENT) * 1.0,
                offset_pct=round(100 * (span.start_ns - start) / total, 3),
                width_pct=max(0.2, round(100 * span.duration_ns / total, 3)),
                duration_ms=round(span.duration_ns / 1e6, 3),
                is_error=span.status_code == "error",
                late=reviewed_at is not None and span.received_at > reviewed_at,
                attributes_json=_pretty(span.attributes),
                events=[{**event, "attributes_json": _pretty(event.get("attributes", {}))} for event in span.events],
            )
        )
        stack.extend((child, depth + 1) for child in reversed(children.get(span.span_id, [])))
    return SpanTree(rows=rows, late_count=sum(row.late for row in rows), duration_ms=round(total / 1e6, 3))
