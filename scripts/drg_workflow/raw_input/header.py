"""The raw file's header line: where it is, its delimiter, where the schema columns are."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass

import pyarrow as pa

from drg_workflow.raw_input.messages import RawDataError, show
from drg_workflow.raw_input.sniff import HEAD_BYTES, UTF8_BOM
from drg_workflow.raw_schema import RAW_COLUMNS, RAW_SCHEMA

#: Delimiters tried on the header line, in order of preference when they tie.
CANDIDATE_DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")

_BLANK_LINE = re.compile(rb"[ \t\f\v]*(\r\n|\n|\r)")
_LINE_END = re.compile(rb"\r\n|\n|\r")


@dataclass(frozen=True)
class Header:
    """The located and parsed header line."""

    line: int  # 1-based file line of the header
    data_start: int  # byte offset just after the header's line terminator
    names: list[str]  # stripped column names, in file order
    delimiter: str
    newline: int  # byte value that ends a physical line: 10 ("\n", "\r\n") or 13 (bare "\r")


def find_header(where: str, buf: pa.Buffer, head: bytes, has_bom: bool) -> Header:
    """Locate the header (first non-blank line), pick the delimiter and split the names."""
    offset = len(UTF8_BOM) if has_bom else 0
    _refuse_blank_start(where, buf, head, offset)
    line, offset = _skip_blank_lines(head, offset)
    raw_line, data_start, newline = _header_line(where, buf, head, offset)
    try:
        text = raw_line.decode("utf-8")
    except UnicodeDecodeError:
        text = raw_line.decode("latin-1")
    delimiter, names = _best_split(text)
    return Header(line, data_start, names, delimiter, newline)


def _refuse_blank_start(where: str, buf: pa.Buffer, head: bytes, offset: int) -> None:
    """Whitespace-only files are "empty"; a head of only blank lines is not supported."""
    if head[offset:].strip():
        return
    if len(head) == buf.size or not buf.to_pybytes()[offset:].strip():
        raise RawDataError(f"Raw data file {where}: the file is empty (only whitespace).")
    # Absurd but possible: > 64 KiB of leading blank lines. Not worth supporting.
    raise RawDataError(
        f"Raw data file {where}: starts with more than {HEAD_BYTES:,} bytes of blank "
        "lines; remove them."
    )


def _skip_blank_lines(head: bytes, offset: int) -> tuple[int, int]:
    """The 1-based line number and byte offset of the first non-blank line (blank lines before
    the header are harmless)."""
    line = 1
    while blank := _BLANK_LINE.match(head, offset):
        offset, line = blank.end(), line + 1
    return line, offset


def _header_line(where: str, buf: pa.Buffer, head: bytes, offset: int) -> tuple[bytes, int, int]:
    """The header line's bytes, the offset where data starts, and the newline byte."""
    end = _LINE_END.search(head, offset)
    if end is None and len(head) == buf.size:  # a header-only file without a final newline
        return head[offset:], buf.size, 10
    if end is None:
        raise RawDataError(
            f"Raw data file {where}: the first line is longer than {HEAD_BYTES:,} bytes, so it "
            f"is not a CSV header; it starts with {show(head[offset:])}."
        )
    return head[offset : end.start()], end.end(), 13 if end.group() == b"\r" else 10


def _best_split(text: str) -> tuple[str, list[str]]:
    """The delimiter that yields the most schema column names, and the names it yields."""
    best_delim, best_names, best_score = ",", split_header(text, ","), -1
    for delim in CANDIDATE_DELIMITERS:
        names = split_header(text, delim)
        score = sum(name in RAW_SCHEMA for name in set(names))
        if score > best_score:
            best_delim, best_names, best_score = delim, names, score
    return best_delim, best_names


def split_header(text: str, delimiter: str) -> list[str]:
    """Split a header line like the data will be split, stripping whitespace and BOMs."""
    fields = next(csv.reader([text], delimiter=delimiter, quotechar='"'), [])
    return [f.strip().strip("\ufeff").strip() for f in fields]


def column_positions(where: str, names: list[str]) -> dict[str, int]:
    """Map each schema column to its position in the header; error if any is missing."""
    missing = [c for c in RAW_COLUMNS if c not in names]
    if missing:
        raise RawDataError(
            f"Raw data file {where}: the header lacks {len(missing)} required column(s): "
            f"{', '.join(repr(c) for c in missing)}. Columns found: {_found(names)}."
            f"{_case_hint(names, missing)}"
        )
    repeated = [c for c in RAW_COLUMNS if names.count(c) > 1]
    if repeated:
        raise RawDataError(
            f"Raw data file {where}: the header repeats column(s) "
            f"{', '.join(repr(c) for c in repeated)}; each must appear once."
        )
    return {c: names.index(c) for c in RAW_COLUMNS}


def extra_columns(names: list[str]) -> list[str]:
    """Header columns beyond the raw schema, each once, in order."""
    return list(dict.fromkeys(n for n in names if n not in RAW_SCHEMA))


def _found(names: list[str]) -> str:
    """The header's columns for a message, shortened."""
    found = ", ".join(repr(n) for n in names[:20]) or "none"
    if len(names) > 20:
        found += f", ... ({len(names)} in all)"
    return found[:600] + "..." if len(found) > 600 else found


def _case_hint(names: list[str], missing: list[str]) -> str:
    """A hint when a missing column is there in other letter case."""
    by_lower = {n.lower(): n for n in names}
    near = [f"{by_lower[c.lower()]!r} for {c!r}" for c in missing if c.lower() in by_lower]
    return f" Names are case-sensitive (found {', '.join(near)})." if near else ""
