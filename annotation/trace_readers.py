"""Every trace file format behind one call: the native JSONL and CSV (annotation.trace_format) and the files of other
tools plus native Parquet (annotation.peer_formats). Kept apart from both so that neither imports the other's
readers: the peer readers build on the native format's validation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from annotation.peer_formats import read_peer
from annotation.trace_format import PEER_FORMATS, FormatError, RawRecord, read_csv, read_jsonl


def read_records(stream: BinaryIO, *, fmt: str, max_bytes: int) -> Iterator[RawRecord]:
    """The records of a file in format `fmt`, each a value or a per-line error; FormatError for an unknown format."""
    if fmt == "jsonl":
        return read_jsonl(stream, max_bytes=max_bytes)
    if fmt == "csv":
        return read_csv(stream, max_bytes=max_bytes)
    if fmt in PEER_FORMATS:
        return read_peer(stream, fmt=fmt, max_bytes=max_bytes)
    raise FormatError(f"unknown format {fmt!r}; choose one of jsonl, csv, {', '.join(PEER_FORMATS)}")
