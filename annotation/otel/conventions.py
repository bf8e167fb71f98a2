"""From the spans of one OpenTelemetry trace to one EvalStudio trace record (the native trace format's object).

`trace_record(spans)` is the one entry point: the OTLP receiver's assembly, and the otlp-json and Phoenix file
importers, all read spans through it, so a trace means the same thing whichever way its spans came in. It reads
the root span's input and output and the resource's service and environment; the attribute conventions
(OpenInference, OpenTelemetry GenAI, Langfuse) each add what they name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from annotation.otel.spans import SpanData

# The source of a trace whose resource names no environment: spans arrive from running products.
DEFAULT_SOURCE = "production"


class NoRootSpan(ValueError):
    """The trace's root span has not arrived (yet): a trace is assembled from its root."""


def root_span(spans: Sequence[SpanData]) -> SpanData:
    """The span without a parent (the earliest, should an exporter have sent several); NoRootSpan if none."""
    roots = [span for span in spans if span.is_root]
    if not roots:
        raise NoRootSpan(f"trace {spans[0].trace_id if spans else '?'} has no root span yet")
    return min(roots, key=lambda span: (span.start_ns, span.span_id))


def trace_record(spans: Sequence[SpanData]) -> dict[str, Any]:
    """The native trace record for one OTel trace's spans (all of one trace id, in any order)."""
    root = root_span(spans)
    attributes = root.attributes
    record: dict[str, Any] = {
        "id": root.trace_id,
        "input": _text(attributes.get("input.value", "")),
        "output": _text(attributes.get("output.value", "")),
        # Production unless the resource says otherwise (an `evalstudio.source` resource attribute, e.g. "staging").
        "source": str(root.resource.get("evalstudio.source") or DEFAULT_SOURCE),
        "metadata": _metadata(root, spans),
    }
    return record


def _metadata(root: SpanData, spans: Sequence[SpanData]) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "otel.trace_id": root.trace_id,
        "otel.root_span": root.name,
        "otel.span_count": len(spans),
        "latency_ms": round(root.duration_ns / 1e6, 3),
    }
    for key in ("service.name", "deployment.environment"):
        if key in root.resource:
            metadata[key] = root.resource[key]
    return metadata


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)
