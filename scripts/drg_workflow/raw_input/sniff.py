"""The raw file's first bytes: is it there, and is it plausibly a CSV at all?

Only the first :data:`HEAD_BYTES` of the memory-mapped file are looked at in Python.
"""

from __future__ import annotations

import os

import pyarrow as pa

from drg_workflow.raw_input.messages import RawDataError, show

UTF8_BOM = b"\xef\xbb\xbf"
#: How much of the file is inspected in Python (sniffing, header line).
HEAD_BYTES = 1 << 16

#: Leading bytes of formats users send instead of the CSV, and what to tell them.
_MAGIC: dict[bytes, str] = {
    b"\x1f\x8b": "gzip-compressed data (decompress it first)",
    b"PK\x03\x04": "a ZIP archive or an Excel workbook (export or extract the CSV)",
    b"BZh": "bzip2-compressed data (decompress it first)",
    b"\xfd7zXZ\x00": "xz-compressed data (decompress it first)",
    b"PAR1": "a Parquet file",
    b"\xff\xfe": "UTF-16 text (save it as UTF-8)",
    b"\xfe\xff": "UTF-16 text (save it as UTF-8)",
}


def map_file(where: str) -> pa.Buffer:
    """Memory-map the file (no copy of 155 MB into Python); unreadable or empty -> error."""
    try:
        size = os.stat(where).st_size
        if size == 0:
            raise RawDataError(f"Raw data file {where}: the file is empty (0 bytes).")
        with pa.memory_map(where, "r") as mapped:
            # The buffer keeps the mapping alive after the file object is closed.
            return mapped.read_buffer()
    except OSError as exc:
        raise RawDataError(
            f"Raw data file {where}: cannot be read ({exc.strerror or exc})."
        ) from exc


def without_bom(head: bytes) -> bytes:
    """``head`` without a leading UTF-8 byte order mark."""
    return head[len(UTF8_BOM) :] if head.startswith(UTF8_BOM) else head


def check_csv_head(where: str, head: bytes) -> None:
    """Raise :class:`RawDataError` if the first bytes of a file are plainly not a CSV.

    The same early check :func:`~drg_workflow.raw_input.read_raw_csv` makes (HTML / XML error
    pages, JSON, archives, binary data), for callers that only have the start of the content,
    e.g. a download.
    """
    sniff_not_csv(where, without_bom(head))


def sniff_not_csv(where: str, head: bytes) -> None:
    """Recognise common non-CSV content (error pages, JSON, archives, binary) early."""
    for prefix, what in _MAGIC.items():
        if head.startswith(prefix):
            raise RawDataError(
                f"Raw data file {where}: looks like {what}, not a CSV; it starts with "
                f"{show(head[:32])}."
            )
    if b"\x00" in head:
        raise RawDataError(
            f"Raw data file {where}: looks like binary data (it contains NUL bytes), not a CSV; "
            f"it starts with {show(head[:32])}."
        )
    start = head.lstrip()[:200]
    what = _markup_or_json(start.lower())
    if what is not None:
        raise RawDataError(
            f"Raw data file {where}: looks like {what}, not a CSV; it starts with "
            f"{show(start)}. Check the URL or path it was fetched from."
        )


def _markup_or_json(lower: bytes) -> str | None:
    """What a text start (lower-cased, stripped) is if it is a web page or an API answer."""
    if lower.startswith((b"<!doctype html", b"<html")) or b"<html" in lower:
        return "an HTML page (for example a download error or login page)"
    if lower.startswith(b"<"):
        return "XML/HTML (for example an S3 or web server error response)"
    if lower.startswith((b"{", b"[")):
        return "JSON (for example an API response)"
    return None
