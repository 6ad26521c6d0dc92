"""Read and validate a user's raw (v0) CSV: bytes in, a typed frame in the raw schema out.

The raw file is New York State's "Hospital Inpatient Cost Transparency" CSV (~155 MB, ~1.1 M
rows), possibly fetched from a URL or S3 by the caller. This module is pure (it knows nothing
about Snakemake): :func:`read_raw_csv` either returns a frame with exactly ``RAW_COLUMNS`` plus a
:class:`RawReadReport`, or raises :class:`RawDataError` with one paragraph that says what is
wrong and where (file line numbers, 1-based, the header being line 1).

How it works, and why:

* The file is memory-mapped and only its first chunk is inspected in Python (empty file, HTML /
  XML / JSON / binary sniffing, BOM, header line, delimiter). Decoding 155 MB in Python would
  cost more than the whole parse.
* The data is parsed by ``pyarrow.csv`` with every needed column as a string, so that a single
  bad value cannot abort the read and every problem can be reported with its line. Rows with
  the wrong number of fields are captured by ``invalid_row_handler``.
* UTF-8 validity is checked by pyarrow while it builds the string columns; if that fails the file
  is Latin-1 (the only other encoding seen for this export) and is transcoded and parsed again.
* Numbers are converted with vectorised pyarrow casts; only a column whose fast cast fails goes
  through the slower tolerant path (whitespace, ``$``, thousands separators), and per-reason
  masks are built with numpy. The good-data path never loops over rows in Python.
* Line numbers assume one physical line per record (the real export has no quoted newlines).
  Only when something is wrong are they computed exactly, from the newline positions and the
  line numbers pyarrow reports for malformed rows; if a valid quoted value does span lines the
  numbers are marked approximate.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from drg_workflow.errors import DrgWorkflowError
from drg_workflow.raw_schema import RAW_COLUMNS, RAW_KEY_COLUMNS, RAW_MONEY_COLUMNS, RAW_SCHEMA

__all__ = ["RawDataError", "RawReadReport", "check_csv_head", "read_raw_csv"]

#: Delimiters tried on the header line, in order of preference when they tie.
CANDIDATE_DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")

#: Hint appended to every bad-row error.
_DROP_HINT = (
    "Fix the file, or set `raw.on_bad_rows: drop` in the config to drop such rows "
    "(they are counted in the v0 metadata)."
)

_UTF8_BOM = b"\xef\xbb\xbf"
#: How much of the file is inspected in Python (sniffing, header line).
_HEAD_BYTES = 1 << 16
#: Integers are validated as float64; beyond 2**53 they are no longer exact.
_MAX_EXACT_INT = float(2**53)

# A plain decimal number (no "nan"/"inf", no hex): what the tolerant path accepts.
_NUMBER_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
# Comma thousands separators, only in the right places ("1,5" is *not* 15; it may be a
# European decimal comma, so it is rejected rather than guessed).
_THOUSANDS_RE = r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?([eE][+-]?\d+)?$"


class RawDataError(DrgWorkflowError):
    """The raw CSV cannot be used; the message says what is wrong and where, for the user."""


@dataclass(frozen=True)
class RawReadReport:
    """What :func:`read_raw_csv` found; JSON-serialisable via :meth:`to_dict`.

    Attributes:
        rows_read: Data records in the file (blank lines not counted).
        rows_kept: Records in the returned frame.
        rows_dropped: Bad records removed (only non-zero with ``on_bad_rows="drop"``).
        drop_reasons: Reason category -> number of dropped records, sorted by reason. Each bad
            record is counted once, under the first problem found (columns in schema order, then
            "duplicate key"), so the counts add up to ``rows_dropped``.
        bad_row_examples: The first few bad records in file order: ``{"line": int, "reason":
            str}`` with the specific problem (e.g. ``"Mean Cost 'abc' is not a number"``).
        extra_columns: Header columns beyond the raw schema (allowed, not in the output).
        encoding: ``"utf-8"``, ``"utf-8-sig"`` (UTF-8 with a BOM) or ``"latin-1"``.
        delimiter: The field delimiter detected from the header line.
    """

    rows_read: int
    rows_kept: int
    rows_dropped: int
    drop_reasons: dict[str, int] = field(default_factory=dict)
    bad_row_examples: list[dict[str, Any]] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    encoding: str = "utf-8"
    delimiter: str = ","

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-serialisable dict (for the v0 metadata and the log)."""
        return asdict(self)


@dataclass(frozen=True)
class _Header:
    """The located and parsed header line."""

    line: int  # 1-based file line of the header
    data_start: int  # byte offset just after the header's line terminator
    names: list[str]  # stripped column names, in file order
    delimiter: str
    newline: int  # byte value that ends a physical line: 10 ("\n", "\r\n") or 13 (bare "\r")


@dataclass(frozen=True)
class _InvalidRow:
    """A record pyarrow could not split into the header's number of fields."""

    expected: int
    actual: int
    number: int | None  # 1-based among the non-empty lines after the header (serial parse)
    text: str


@dataclass(frozen=True)
class _Check:
    """One validation rule: records where ``mask`` is true are bad for ``category``."""

    category: str
    column: str | None
    mask: np.ndarray
    describe: Callable[[str], str]  # raw field text -> specific reason


def read_raw_csv(
    path: str | os.PathLike[str],
    on_bad_rows: Literal["error", "drop"] = "error",
    first_year: int = 1990,
    last_year: int = 2100,
    max_examples: int = 5,
) -> tuple[pd.DataFrame, RawReadReport]:
    """Read a raw NY State inpatient cost CSV into a validated frame in the raw schema.

    Args:
        path: Local path of the CSV (already downloaded if it came from a URL or S3).
        on_bad_rows: ``"error"`` (default) raises on any bad record; ``"drop"`` removes bad
            records and counts them in the report.
        first_year: Smallest accepted ``Year``.
        last_year: Largest accepted ``Year``.
        max_examples: How many bad records to quote in the error message / report.

    Returns:
        ``(frame, report)``: ``frame`` has exactly ``RAW_COLUMNS`` in order (int64, float64 and
        str columns per ``RAW_SCHEMA``), rows in file order with a fresh ``RangeIndex``.

    Raises:
        RawDataError: The file is unreadable, empty, not a CSV, lacks schema columns, has no
            data rows, or has bad records (with ``"error"``; with ``"drop"`` only if none is
            left, or if an unterminated quote swallowed several lines).
        ValueError: Invalid arguments (a programming / configuration error).
    """
    if on_bad_rows not in ("error", "drop"):
        raise ValueError(f"on_bad_rows must be 'error' or 'drop', not {on_bad_rows!r}")
    if first_year > last_year:
        raise ValueError(f"first_year ({first_year}) is after last_year ({last_year})")
    if max_examples < 0:
        raise ValueError(f"max_examples must be >= 0, not {max_examples}")

    where = os.fspath(path)
    try:
        return _read(where, on_bad_rows, first_year, last_year, max_examples)
    except RawDataError:
        raise
    except (pa.ArrowException, csv.Error, UnicodeError) as exc:
        # Anything the checks above did not anticipate still reaches the user as one message.
        detail = " ".join(str(exc).split())[:300]
        if "straddl" in detail:
            # pyarrow's wording for a "line" longer than its parse block (1 MiB).
            raise RawDataError(
                f"Raw data file {where}: a line is longer than 1 MiB, but each record of the raw "
                "file is a few hundred bytes; this is not the expected CSV, or it is damaged."
            ) from exc
        raise RawDataError(
            f"Raw data file {where}: could not be parsed as a CSV ({type(exc).__name__}: {detail})."
        ) from exc


# --------------------------------------------------------------------------------------------
# Reading and sniffing
# --------------------------------------------------------------------------------------------


def _read(
    where: str,
    on_bad_rows: str,
    first_year: int,
    last_year: int,
    max_examples: int,
) -> tuple[pd.DataFrame, RawReadReport]:
    """Do the work of :func:`read_raw_csv` (arguments already validated)."""
    buf = _map_file(where)
    head = buf[:_HEAD_BYTES].to_pybytes()
    has_bom = head.startswith(_UTF8_BOM)
    _sniff_not_csv(where, head[len(_UTF8_BOM) :] if has_bom else head)
    header = _find_header(where, buf, head, has_bom)
    positions = _column_positions(where, header.names)
    extra_columns = _unique([n for n in header.names if n not in RAW_SCHEMA])

    data = buf[header.data_start :]
    encoding = "utf-8-sig" if has_bom else "utf-8"
    table, invalid = _parse(data, header, positions)
    if table is None:  # not valid UTF-8: the export is then Latin-1
        encoding = "latin-1"
        data = pa.py_buffer(data.to_pybytes().decode("latin-1").encode("utf-8"))
        table, invalid = _parse(data, header, positions)
        assert table is not None  # Latin-1 transcoded to UTF-8 is always valid UTF-8

    n_rows = table.num_rows
    rows_read = n_rows + len(invalid)
    if rows_read == 0:
        raise RawDataError(
            f"Raw data file {where}: has a header (line {header.line}) but no data rows."
        )

    values, checks = _convert_and_check(table, first_year, last_year)
    reason = _first_reasons(checks, n_rows)
    dup = _duplicate_mask(values, reason == 0)
    if dup.any():
        checks.append(_Check("duplicate key", None, dup, lambda _v: "duplicate key"))
        reason[dup] = len(checks)

    bad = reason != 0
    n_bad = int(bad.sum()) + len(invalid)
    if n_bad == 0:
        frame = _build_frame(table, values, None)
        return frame, RawReadReport(
            rows_read=rows_read,
            rows_kept=n_rows,
            rows_dropped=0,
            encoding=encoding,
            delimiter=header.delimiter,
            extra_columns=extra_columns,
        )

    # ---- Something is wrong: from here on speed matters less than a precise message. ----
    if invalid and any(r.number is None for r in invalid):
        # The threaded parse does not know line numbers of malformed rows; a serial one does.
        table2, invalid = _parse(data, header, positions, use_threads=False)
        assert table2 is not None and table2.num_rows == n_rows
    lines, invalid_lines, exact = _line_numbers(
        np.frombuffer(data, dtype=np.uint8), header, n_rows, invalid
    )
    _refuse_swallowed_lines(where, invalid, invalid_lines)

    counts: dict[str, int] = {}
    for code in np.unique(reason[bad]):
        category = checks[int(code) - 1].category
        counts[category] = counts.get(category, 0) + int((reason == code).sum())
    for row in invalid:
        category = "truncated line" if row.actual < row.expected else "too many fields"
        counts[category] = counts.get(category, 0) + 1
    drop_reasons = dict(sorted(counts.items()))

    examples = _examples(table, values, checks, reason, invalid, lines, invalid_lines, max_examples)

    if on_bad_rows == "error" or n_bad == rows_read:
        summary = ", ".join(f"{k}: {v:,}" for k, v in drop_reasons.items())
        shown = "; ".join(f"line {e['line']}: {e['reason']}" for e in examples)
        approx = "" if exact else " (line numbers approximate: some quoted values span lines)"
        first = f" First {len(examples)}{approx}: {shown}." if examples else ""
        if on_bad_rows == "error":
            lead = f"{n_bad:,} of {rows_read:,} data rows are bad ({summary})."
            tail = _DROP_HINT
        else:
            lead = f"all {rows_read:,} data rows are bad ({summary}), nothing is left."
            tail = "Check that this is the right file and that it is not damaged."
        raise RawDataError(f"Raw data file {where}: {lead}{first} {tail}")

    frame = _build_frame(table, values, ~bad)
    return frame, RawReadReport(
        rows_read=rows_read,
        rows_kept=len(frame),
        rows_dropped=n_bad,
        drop_reasons=drop_reasons,
        bad_row_examples=examples,
        extra_columns=extra_columns,
        encoding=encoding,
        delimiter=header.delimiter,
    )


def _map_file(where: str) -> pa.Buffer:
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


def _show(raw: bytes | str, limit: int = 80) -> str:
    """Quote the start of some content safely (no control characters reach the terminal)."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    return repr(raw[:limit])


def check_csv_head(where: str, head: bytes) -> None:
    """Raise :class:`RawDataError` if the first bytes of a file are plainly not a CSV.

    The same early check :func:`read_raw_csv` makes (HTML / XML error pages, JSON, archives,
    binary data), for callers that only have the start of the content, e.g. a download.
    """
    _sniff_not_csv(where, head[len(_UTF8_BOM) :] if head.startswith(_UTF8_BOM) else head)


def _sniff_not_csv(where: str, head: bytes) -> None:
    """Recognise common non-CSV content (error pages, JSON, archives, binary) early."""
    magic = {
        b"\x1f\x8b": "gzip-compressed data (decompress it first)",
        b"PK\x03\x04": "a ZIP archive or an Excel workbook (export or extract the CSV)",
        b"BZh": "bzip2-compressed data (decompress it first)",
        b"\xfd7zXZ\x00": "xz-compressed data (decompress it first)",
        b"PAR1": "a Parquet file",
        b"\xff\xfe": "UTF-16 text (save it as UTF-8)",
        b"\xfe\xff": "UTF-16 text (save it as UTF-8)",
    }
    for prefix, what in magic.items():
        if head.startswith(prefix):
            raise RawDataError(
                f"Raw data file {where}: looks like {what}, not a CSV; it starts with "
                f"{_show(head[:32])}."
            )
    if b"\x00" in head:
        raise RawDataError(
            f"Raw data file {where}: looks like binary data (it contains NUL bytes), not a CSV; "
            f"it starts with {_show(head[:32])}."
        )
    start = head.lstrip()[:200]
    lower = start.lower()
    what = None
    if lower.startswith((b"<!doctype html", b"<html")) or b"<html" in lower:
        what = "an HTML page (for example a download error or login page)"
    elif lower.startswith(b"<"):
        what = "XML/HTML (for example an S3 or web server error response)"
    elif lower.startswith((b"{", b"[")):
        what = "JSON (for example an API response)"
    if what is not None:
        raise RawDataError(
            f"Raw data file {where}: looks like {what}, not a CSV; it starts with "
            f"{_show(start)}. Check the URL or path it was fetched from."
        )


def _find_header(where: str, buf: pa.Buffer, head: bytes, has_bom: bool) -> _Header:
    """Locate the header (first non-blank line), pick the delimiter and split the names."""
    offset = len(_UTF8_BOM) if has_bom else 0
    if not head[offset:].strip():
        if len(head) == buf.size or not buf.to_pybytes()[offset:].strip():
            raise RawDataError(f"Raw data file {where}: the file is empty (only whitespace).")
        # Absurd but possible: > 64 KiB of leading blank lines. Not worth supporting.
        raise RawDataError(
            f"Raw data file {where}: starts with more than {_HEAD_BYTES:,} bytes of blank "
            "lines; remove them."
        )
    match = re.compile(rb"[ \t\f\v]*(\r\n|\n|\r)").match
    line = 1
    while True:
        # Skip leading blank lines (they are harmless; whitespace-only files are "empty").
        blank = match(head, offset)
        if blank is None:
            break
        offset, line = blank.end(), line + 1

    end = re.compile(rb"\r\n|\n|\r").search(head, offset)
    if end is None and len(head) == buf.size:
        raw_line, data_start, newline = head[offset:], buf.size, 10
    elif end is None:
        raise RawDataError(
            f"Raw data file {where}: the first line is longer than {_HEAD_BYTES:,} bytes, so it "
            f"is not a CSV header; it starts with {_show(head[offset:])}."
        )
    else:
        raw_line, data_start = head[offset : end.start()], end.end()
        newline = 13 if end.group() == b"\r" else 10
    try:
        text = raw_line.decode("utf-8")
    except UnicodeDecodeError:
        text = raw_line.decode("latin-1")

    best_delim, best_names, best_score = ",", _split_header(text, ","), -1
    for delim in CANDIDATE_DELIMITERS:
        names = _split_header(text, delim)
        score = sum(name in RAW_SCHEMA for name in set(names))
        if score > best_score:
            best_delim, best_names, best_score = delim, names, score
    return _Header(line, data_start, best_names, best_delim, newline)


def _split_header(text: str, delimiter: str) -> list[str]:
    """Split a header line like the data will be split, stripping whitespace and BOMs."""
    fields = next(csv.reader([text], delimiter=delimiter, quotechar='"'), [])
    return [f.strip().strip("\ufeff").strip() for f in fields]


def _column_positions(where: str, names: list[str]) -> dict[str, int]:
    """Map each schema column to its position in the header; error if any is missing."""
    missing = [c for c in RAW_COLUMNS if c not in names]
    if missing:
        found = ", ".join(repr(n) for n in names[:20]) or "none"
        if len(names) > 20:
            found += f", ... ({len(names)} in all)"
        if len(found) > 600:
            found = found[:600] + "..."
        by_lower = {n.lower(): n for n in names}
        near = [f"{by_lower[c.lower()]!r} for {c!r}" for c in missing if c.lower() in by_lower]
        hint = f" Names are case-sensitive (found {', '.join(near)})." if near else ""
        raise RawDataError(
            f"Raw data file {where}: the header lacks {len(missing)} required column(s): "
            f"{', '.join(repr(c) for c in missing)}. Columns found: {found}.{hint}"
        )
    repeated = [c for c in RAW_COLUMNS if names.count(c) > 1]
    if repeated:
        raise RawDataError(
            f"Raw data file {where}: the header repeats column(s) "
            f"{', '.join(repr(c) for c in repeated)}; each must appear once."
        )
    return {c: names.index(c) for c in RAW_COLUMNS}


def _unique(items: list[str]) -> list[str]:
    """Keep the first occurrence of each item, in order."""
    return list(dict.fromkeys(items))


def _parse(
    data: pa.Buffer,
    header: _Header,
    positions: dict[str, int],
    use_threads: bool = True,
) -> tuple[pa.Table | None, list[_InvalidRow]]:
    """Parse the data lines, every schema column as a string; ``None`` if not valid UTF-8."""
    invalid: list[_InvalidRow] = []

    def on_invalid(row: Any) -> str:
        # Called for records with too few / too many fields; we report them instead of failing.
        invalid.append(_InvalidRow(row.expected_columns, row.actual_columns, row.number, row.text))
        return "skip"

    # Positional names avoid trouble with duplicate or odd extra column names in the header.
    names = [f"f{i}" for i in range(len(header.names))]
    wanted = [f"f{positions[c]}" for c in RAW_COLUMNS]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=use_threads),
            parse_options=pacsv.ParseOptions(
                delimiter=header.delimiter,
                # One physical line per record (true of the real export); faster chunking.
                newlines_in_values=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=wanted,
                column_types=dict.fromkeys(wanted, pa.string()),
                strings_can_be_null=False,  # empty text stays "", empty numbers are reported
                check_utf8=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        if "utf8" in str(exc).lower():
            return None, []
        raise
    return table.rename_columns(RAW_COLUMNS), invalid


def _refuse_swallowed_lines(
    where: str, invalid: list[_InvalidRow], invalid_lines: list[int]
) -> None:
    """An unterminated quote mid-file swallows the following lines; never drop those silently."""
    for row, start in zip(invalid, invalid_lines, strict=True):
        # A truncated last line may still end with its terminator: that loses no lines.
        body = row.text.rstrip("\r\n")
        n_lines = body.count("\n") + body.count("\r") - body.count("\r\n")
        if n_lines:
            raise RawDataError(
                f"Raw data file {where}: an unterminated quote on line {start} makes lines "
                f"{start}-{start + n_lines} read as one record ({row.actual} fields, expected "
                f"{row.expected}); it starts with {_show(row.text)}. Fix the quoting in the "
                "file; these lines cannot be dropped safely."
            )


# --------------------------------------------------------------------------------------------
# Conversion and checks
# --------------------------------------------------------------------------------------------


def _to_float(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Convert a string column to float64.

    Returns ``(values, empty, not_number)``: bad entries hold 0.0 and are flagged in one of the
    two masks. The fast path is one pyarrow cast. If it fails (or yields NaN/inf), entries that
    are not plain decimal numbers go through a tolerant path: surrounding whitespace, a leading
    ``$`` and comma thousands separators (``"1,234.5"``, as the export writes inside quotes) are
    accepted; anything else is "empty" or "not a number".
    """
    n = len(column)
    try:
        values = pc.cast(column, pa.float64()).to_numpy()
        if np.isfinite(values).all():
            return values, np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    except pa.ArrowInvalid:
        pass

    plain = pc.match_substring_regex(column, _NUMBER_RE)
    values = pc.cast(pc.if_else(plain, column, "0"), pa.float64()).to_numpy().copy()
    ok = np.array(plain.to_numpy(), dtype=bool)
    empty = np.zeros(n, dtype=bool)
    rest: np.ndarray | slice = np.flatnonzero(~ok)  # usually few; all if "1,234" style
    if len(rest):
        if len(rest) > n // 4:  # most entries: cheaper to redo the column than to gather
            rest, subset = slice(None), column
        else:
            subset = pc.take(column, pa.array(rest))
        text = pc.utf8_trim_whitespace(subset)
        empty[rest] = np.asarray(pc.equal(text, "").to_numpy(), dtype=bool)
        text = pc.replace_substring_regex(text, r"^([+-]?)\$", r"\1")
        thousands = pc.match_substring_regex(text, _THOUSANDS_RE)
        text = pc.if_else(thousands, pc.replace_substring(text, ",", ""), text)
        sub_ok = pc.match_substring_regex(text, _NUMBER_RE)
        values[rest] = pc.cast(pc.if_else(sub_ok, text, "0"), pa.float64()).to_numpy()
        ok[rest] = np.asarray(sub_ok.to_numpy(), dtype=bool)
    ok &= np.isfinite(values)  # e.g. "1e999"
    values[~ok] = 0.0
    return values, empty, ~ok & ~empty


def _convert_and_check(
    table: pa.Table, first_year: int, last_year: int
) -> tuple[dict[str, np.ndarray], list[_Check]]:
    """Convert the numeric columns and build one mask per (column, problem)."""
    values: dict[str, np.ndarray] = {}
    checks: list[_Check] = []

    def add(category: str, column: str, mask: np.ndarray, describe: Callable[[str], str]) -> None:
        if mask.any():  # the good path adds nothing
            checks.append(_Check(category, column, mask, describe))

    for col, kind in RAW_SCHEMA.items():
        if kind == "str":
            continue
        nums, empty, not_number = _to_float(table.column(col))
        parsed = ~(empty | not_number)
        add(f"{col}: empty", col, empty, lambda _v, c=col: f"{c} is empty")
        add(
            f"{col}: not a number",
            col,
            not_number,
            lambda v, c=col: f"{c} {_quote(v)} is not a number",
        )
        if kind == "int":
            whole = nums == np.floor(nums)
            too_big = parsed & (np.abs(nums) >= _MAX_EXACT_INT)
            add(
                f"{col}: not a whole number",
                col,
                parsed & ~whole,
                lambda v, c=col: f"{c} {_quote(v)} is not a whole number",
            )
            add(f"{col}: too large", col, too_big, lambda v, c=col: f"{c} {_quote(v)} is too large")
            parsed &= whole & ~too_big
            values[col] = np.where(parsed, nums, 0).astype(np.int64)
        else:
            values[col] = nums

        v = values[col]
        if col == "Year":
            add(
                "Year: out of range",
                col,
                parsed & ((v < first_year) | (v > last_year)),
                lambda s: f"Year {_quote(s)} is outside {first_year}..{last_year}",
            )
        elif col == "APR Severity Of Illness Code":
            add(
                f"{col}: not 1..4",
                col,
                parsed & ((v < 1) | (v > 4)),
                lambda s, c=col: f"{c} {_quote(s)} is not a severity code 1..4",
            )
        elif col == "Discharges":
            add(
                "Discharges: below 1",
                col,
                parsed & (v < 1),
                lambda s: f"Discharges {_quote(s)} is below 1",
            )
        elif col in RAW_MONEY_COLUMNS or col in ("Facility Id", "APR DRG Code"):
            add(
                f"{col}: negative",
                col,
                parsed & (v < 0),
                lambda s, c=col: f"{c} {_quote(s)} is negative",
            )
    return values, checks


def _quote(value: str, limit: int = 40) -> str:
    """Quote a field's text for a message, shortened and with control characters escaped."""
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def _first_reasons(checks: list[_Check], n_rows: int) -> np.ndarray:
    """Per record, 1 + the index of its first failing check, or 0 if it passes all."""
    reason = np.zeros(n_rows, dtype=np.int32)
    for i, check in enumerate(checks, start=1):
        reason[check.mask & (reason == 0)] = i
    return reason


def _duplicate_mask(values: dict[str, np.ndarray], candidates: np.ndarray) -> np.ndarray:
    """Mark later records repeating an earlier good record's key (the first one is kept)."""
    n = len(candidates)
    all_candidates = bool(candidates.all())
    keys = [values[c] if all_candidates else values[c][candidates] for c in RAW_KEY_COLUMNS]
    if not len(keys[0]):
        return np.zeros(n, dtype=bool)
    # Fold the four non-negative int keys into one int64 when it cannot overflow: hashing one
    # column is several times faster than a multi-column duplicated().
    lows = [int(k.min()) for k in keys]
    spans = [int(k.max()) - lo + 1 for k, lo in zip(keys, lows, strict=True)]
    if np.prod([float(s) for s in spans]) < 2.0**62:
        combined = np.zeros(len(keys[0]), dtype=np.int64)
        for key, lo, span in zip(keys, lows, spans, strict=True):
            combined = combined * span + (key - lo)
        dup_candidates = pd.Series(combined).duplicated(keep="first").to_numpy()
    else:
        frame = pd.DataFrame(dict(zip(RAW_KEY_COLUMNS, keys, strict=True)))
        dup_candidates = frame.duplicated(keep="first").to_numpy()
    if all_candidates:
        return dup_candidates
    dup = np.zeros(n, dtype=bool)
    dup[np.flatnonzero(candidates)[dup_candidates]] = True
    return dup


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def _line_numbers(
    data: np.ndarray, header: _Header, n_rows: int, invalid: list[_InvalidRow]
) -> tuple[np.ndarray, list[int], bool]:
    """File line numbers of the parsed records and of the malformed ones, and whether exact.

    pyarrow skips empty lines and numbers the remaining ones (1-based, when parsing serially);
    a malformed record is reported with that number. So with one physical line per record, the
    non-empty lines minus the malformed ones are, in order, the parsed records. If the counts do
    not match (a valid quoted value spanning lines), we fall back to counting records, which is
    approximate.
    """
    ends = np.flatnonzero(data == header.newline)
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [len(data)]))
    if starts[-1] == len(data):  # the data ends with a line terminator
        starts, stops = starts[:-1], stops[:-1]
    length = stops - starts
    if header.newline == 10 and len(data):
        # "\r\n" endings: the "\r" before "\n" does not make a line non-empty.
        has_cr = (length > 0) & (data[np.maximum(stops - 1, 0)] == 13)
        length = length - has_cr
    nonempty = np.flatnonzero(length > 0) + 1 + header.line  # file line numbers
    is_row = np.ones(len(nonempty), dtype=bool)
    invalid_lines: list[int] = []
    exact = True
    for row in invalid:
        if row.number is not None and 1 <= row.number <= len(nonempty):
            is_row[row.number - 1] = False
            invalid_lines.append(int(nonempty[row.number - 1]))
        else:
            exact = False
            invalid_lines.append(header.line + (row.number or 0))
    rows = nonempty[is_row]
    if exact and len(rows) == n_rows:
        return rows, invalid_lines, True
    approx = [header.line + (row.number or 0) for row in invalid]
    return header.line + 1 + np.arange(n_rows), approx, False


def _examples(
    table: pa.Table,
    values: dict[str, np.ndarray],
    checks: list[_Check],
    reason: np.ndarray,
    invalid: list[_InvalidRow],
    lines: np.ndarray,
    invalid_lines: list[int],
    max_examples: int,
) -> list[dict[str, Any]]:
    """The first ``max_examples`` bad records in file order, each with its specific reason."""
    found: list[tuple[int, str]] = []
    for row, line in zip(invalid, invalid_lines, strict=True):
        what = "truncated line" if row.actual < row.expected else "too many fields"
        detail = f"{row.actual} fields, expected {row.expected}"
        if row.actual < row.expected and row.text.count('"') % 2:
            detail += "; unterminated quote"
        found.append((line, f"{what} ({detail})"))
    # Only the first few bad records of the table can be among the first examples.
    bad_rows = np.flatnonzero(reason)[:max_examples]
    key_lines: dict[tuple[int, ...], int] = {}
    if any(checks[reason[i] - 1].category == "duplicate key" for i in bad_rows):
        keys = np.column_stack([values[c] for c in RAW_KEY_COLUMNS])
        good = np.flatnonzero(reason == 0)
        for i in bad_rows:
            key = tuple(int(k) for k in keys[i])
            first = good[(keys[good] == keys[i]).all(axis=1)]
            if len(first):
                key_lines[key] = int(lines[first[0]])
    for i in bad_rows:
        check = checks[reason[i] - 1]
        if check.column is None:
            key = tuple(int(values[c][i]) for c in RAW_KEY_COLUMNS)
            shown = ", ".join(f"{c}={k}" for c, k in zip(RAW_KEY_COLUMNS, key, strict=True))
            first_line = key_lines.get(key)
            seen = f", first seen on line {first_line}" if first_line is not None else ""
            text = f"duplicate key ({shown}{seen})"
        else:
            text = check.describe(table.column(check.column)[int(i)].as_py())
        found.append((int(lines[i]), text))
    found.sort(key=lambda item: item[0])
    return [{"line": line, "reason": text} for line, text in found[:max_examples]]


def _build_frame(
    table: pa.Table, values: dict[str, np.ndarray], keep: np.ndarray | None
) -> pd.DataFrame:
    """Assemble the output: RAW_COLUMNS in order, int64 / float64 / str, rows in file order."""
    if keep is not None:
        table = table.filter(pa.array(keep))
    columns: dict[str, Any] = {}
    for col, kind in RAW_SCHEMA.items():
        if kind == "str":
            columns[col] = table.column(col).to_pandas().astype("str")
        else:
            arr = values[col] if keep is None else values[col][keep]
            columns[col] = np.ascontiguousarray(
                arr, dtype=np.int64 if kind == "int" else np.float64
            )
    frame = pd.DataFrame(columns)
    frame.index = pd.RangeIndex(len(frame))
    return frame
