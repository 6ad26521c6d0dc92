"""What was read, and what is wrong with the bad records: counts, line numbers, examples.

Only the clean :class:`RawReadReport` is built on the good-data path; the rest runs when some
record is bad, where a precise message matters more than speed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from drg_workflow.raw_input.header import Header
from drg_workflow.raw_input.parse import InvalidRow, refuse_swallowed_lines
from drg_workflow.raw_input.values import CheckedValues
from drg_workflow.raw_schema import RAW_KEY_COLUMNS

#: Hint appended to every bad-row error.
_DROP_HINT = (
    "Fix the file, or set `raw.on_bad_rows: drop` in the config to drop such rows "
    "(they are counted in the v0 metadata)."
)


@dataclass(frozen=True)
class RawReadReport:
    """What :func:`~drg_workflow.raw_input.read_raw_csv` found; JSON-serialisable via
    :meth:`to_dict`.

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
class BadRows:
    """The bad records of a file, summarised for the report and the error message."""

    count: int  # malformed records plus records failing a check
    drop_reasons: dict[str, int]  # reason category -> records, sorted by category
    examples: list[dict[str, Any]]  # the first few, in file order: {"line", "reason"}
    exact_lines: bool  # False if a quoted value spans lines (line numbers approximate)


def describe_bad_rows(
    where: str,
    table: pa.Table,
    invalid: list[InvalidRow],
    data: pa.Buffer,
    header: Header,
    checked: CheckedValues,
    max_examples: int,
) -> BadRows:
    """Count, locate and describe the bad records (malformed ones and those failing a check).

    Raises :class:`RawDataError` if an unterminated quote swallowed lines: those can never be
    dropped safely.
    """
    lines, invalid_lines, exact = line_numbers(
        np.frombuffer(data, dtype=np.uint8), header, table.num_rows, invalid
    )
    refuse_swallowed_lines(where, invalid, invalid_lines)
    examples = _invalid_examples(invalid, invalid_lines) + _value_examples(
        table, checked, lines, max_examples
    )
    examples.sort(key=lambda item: item[0])
    return BadRows(
        count=int(checked.bad.sum()) + len(invalid),
        drop_reasons=_count_reasons(checked, invalid),
        examples=[{"line": line, "reason": text} for line, text in examples[:max_examples]],
        exact_lines=exact,
    )


def bad_rows_message(where: str, bad: BadRows, rows_read: int, on_bad_rows: str) -> str:
    """The error for bad records: all of them with ``"error"``, or every record with ``"drop"``."""
    summary = ", ".join(f"{k}: {v:,}" for k, v in bad.drop_reasons.items())
    shown = "; ".join(f"line {e['line']}: {e['reason']}" for e in bad.examples)
    approx = "" if bad.exact_lines else " (line numbers approximate: some quoted values span lines)"
    first = f" First {len(bad.examples)}{approx}: {shown}." if bad.examples else ""
    if on_bad_rows == "error":
        lead = f"{bad.count:,} of {rows_read:,} data rows are bad ({summary})."
        tail = _DROP_HINT
    else:
        lead = f"all {rows_read:,} data rows are bad ({summary}), nothing is left."
        tail = "Check that this is the right file and that it is not damaged."
    return f"Raw data file {where}: {lead}{first} {tail}"


def _malformed_category(row: InvalidRow) -> str:
    return "truncated line" if row.actual < row.expected else "too many fields"


def _count_reasons(checked: CheckedValues, invalid: list[InvalidRow]) -> dict[str, int]:
    """Reason category -> number of bad records, sorted by category."""
    counts: dict[str, int] = {}
    reason = checked.reason
    for code in np.unique(reason[checked.bad]):
        category = checked.checks[int(code) - 1].category
        counts[category] = counts.get(category, 0) + int((reason == code).sum())
    for row in invalid:
        category = _malformed_category(row)
        counts[category] = counts.get(category, 0) + 1
    return dict(sorted(counts.items()))


def line_numbers(
    data: np.ndarray, header: Header, n_rows: int, invalid: list[InvalidRow]
) -> tuple[np.ndarray, list[int], bool]:
    """File line numbers of the parsed records and of the malformed ones, and whether exact.

    pyarrow skips empty lines and numbers the remaining ones (1-based, when parsing serially);
    a malformed record is reported with that number. So with one physical line per record, the
    non-empty lines minus the malformed ones are, in order, the parsed records. If the counts do
    not match (a valid quoted value spanning lines), we fall back to counting records, which is
    approximate.
    """
    nonempty = _nonempty_lines(data, header)
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


def _nonempty_lines(data: np.ndarray, header: Header) -> np.ndarray:
    """File line numbers of the non-empty physical lines after the header."""
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
    return np.flatnonzero(length > 0) + 1 + header.line


def _invalid_examples(invalid: list[InvalidRow], invalid_lines: list[int]) -> list[tuple[int, str]]:
    """``(line, reason)`` of every malformed record."""
    found = []
    for row, line in zip(invalid, invalid_lines, strict=True):
        detail = f"{row.actual} fields, expected {row.expected}"
        if row.actual < row.expected and row.text.count('"') % 2:
            detail += "; unterminated quote"
        found.append((line, f"{_malformed_category(row)} ({detail})"))
    return found


def _value_examples(
    table: pa.Table, checked: CheckedValues, lines: np.ndarray, max_examples: int
) -> list[tuple[int, str]]:
    """``(line, reason)`` of the first ``max_examples`` records failing a check."""
    # Only the first few bad records of the table can be among the first examples.
    bad_rows = np.flatnonzero(checked.reason)[:max_examples]
    first_lines = _first_lines_of_duplicates(checked, bad_rows, lines)
    found = []
    for i in bad_rows:
        check = checked.checks[checked.reason[i] - 1]
        if check.column is None:
            key = tuple(int(checked.numbers[c][i]) for c in RAW_KEY_COLUMNS)
            shown = ", ".join(f"{c}={k}" for c, k in zip(RAW_KEY_COLUMNS, key, strict=True))
            first_line = first_lines.get(key)
            seen = f", first seen on line {first_line}" if first_line is not None else ""
            text = f"duplicate key ({shown}{seen})"
        else:
            text = check.describe(table.column(check.column)[int(i)].as_py())
        found.append((int(lines[i]), text))
    return found


def _first_lines_of_duplicates(
    checked: CheckedValues, bad_rows: np.ndarray, lines: np.ndarray
) -> dict[tuple[int, ...], int]:
    """Key -> line of the good record a duplicate among ``bad_rows`` repeats."""
    checks, reason = checked.checks, checked.reason
    if not any(checks[reason[i] - 1].category == "duplicate key" for i in bad_rows):
        return {}
    keys = np.column_stack([checked.numbers[c] for c in RAW_KEY_COLUMNS])
    good = np.flatnonzero(reason == 0)
    first_lines: dict[tuple[int, ...], int] = {}
    for i in bad_rows:
        first = good[(keys[good] == keys[i]).all(axis=1)]
        if len(first):
            first_lines[tuple(int(k) for k in keys[i])] = int(lines[first[0]])
    return first_lines
