"""``read_raw_csv``: the steps from a path to a validated frame in the raw schema."""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from drg_workflow.errors import DrgWorkflowError
from drg_workflow.raw_input.header import Header, column_positions, extra_columns, find_header
from drg_workflow.raw_input.messages import RawDataError
from drg_workflow.raw_input.parse import ParsedData, parse_data, with_invalid_row_numbers
from drg_workflow.raw_input.report import RawReadReport, bad_rows_message, describe_bad_rows
from drg_workflow.raw_input.sniff import HEAD_BYTES, UTF8_BOM, map_file, sniff_not_csv, without_bom
from drg_workflow.raw_input.values import check_values
from drg_workflow.raw_schema import RAW_SCHEMA


def read_raw_csv(
    path: str | os.PathLike[str],
    *,
    on_bad_rows: Literal["error", "drop"],
    first_year: int,
    last_year: int,
    max_examples: int = 5,
) -> tuple[pd.DataFrame, RawReadReport]:
    """Read a raw NY State inpatient cost CSV into a validated frame in the raw schema.

    The validation policy is required: its defaults live in the config schema
    (``raw.on_bad_rows``, ``raw.plausible_years``), not here.

    Args:
        path: Local path of the CSV (already downloaded if it came from a URL or S3).
        on_bad_rows: ``"error"`` raises on any bad record; ``"drop"`` removes bad records and
            counts them in the report.
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
        DrgWorkflowError: Invalid arguments (a configuration error).
    """
    _check_arguments(on_bad_rows, first_year, last_year, max_examples)
    where = os.fspath(path)
    try:
        return _read(where, on_bad_rows, first_year, last_year, max_examples)
    except RawDataError:
        raise
    except (pa.ArrowException, csv.Error, UnicodeError) as exc:
        # Anything the checks did not anticipate still reaches the user as one message.
        raise _unreadable(where, exc) from exc


def _check_arguments(on_bad_rows: str, first_year: int, last_year: int, max_examples: int) -> None:
    """Refuse arguments that make no sense (they come from the config)."""
    if on_bad_rows not in ("error", "drop"):
        raise DrgWorkflowError(f"on_bad_rows must be 'error' or 'drop', not {on_bad_rows!r}")
    if first_year > last_year:
        raise DrgWorkflowError(f"first_year ({first_year}) is after last_year ({last_year})")
    if max_examples < 0:
        raise DrgWorkflowError(f"max_examples must be >= 0, not {max_examples}")


def _unreadable(where: str, exc: Exception) -> RawDataError:
    """The one message for a parse failure no check anticipated."""
    detail = " ".join(str(exc).split())[:300]
    if "straddl" in detail:
        # pyarrow's wording for a "line" longer than its parse block (1 MiB).
        return RawDataError(
            f"Raw data file {where}: a line is longer than 1 MiB, but each record of the raw "
            "file is a few hundred bytes; this is not the expected CSV, or it is damaged."
        )
    return RawDataError(
        f"Raw data file {where}: could not be parsed as a CSV ({type(exc).__name__}: {detail})."
    )


def _read(
    where: str, on_bad_rows: str, first_year: int, last_year: int, max_examples: int
) -> tuple[pd.DataFrame, RawReadReport]:
    """Do the work of :func:`read_raw_csv` (arguments already validated)."""
    buf = map_file(where)
    header, has_bom = _locate_header(where, buf)
    positions = column_positions(where, header.names)
    parsed = parse_data(buf, header, positions, has_bom)
    if parsed.rows_read == 0:
        raise RawDataError(
            f"Raw data file {where}: has a header (line {header.line}) but no data rows."
        )
    checked = check_values(parsed.table, first_year, last_year)
    report = _report(parsed, header)
    if not parsed.invalid and not checked.bad.any():  # the usual case, kept fast
        return _build_frame(parsed.table, checked.numbers, None), report

    # Something is wrong: from here on speed matters less than a precise message.
    parsed = with_invalid_row_numbers(parsed, header, positions)
    bad = describe_bad_rows(
        where, parsed.table, parsed.invalid, parsed.data, header, checked, max_examples
    )
    if on_bad_rows == "error" or bad.count == parsed.rows_read:
        raise RawDataError(bad_rows_message(where, bad, parsed.rows_read, on_bad_rows))
    frame = _build_frame(parsed.table, checked.numbers, ~checked.bad)
    return frame, dataclasses.replace(
        report,
        rows_kept=len(frame),
        rows_dropped=bad.count,
        drop_reasons=bad.drop_reasons,
        bad_row_examples=bad.examples,
    )


def _locate_header(where: str, buf: pa.Buffer) -> tuple[Header, bool]:
    """Refuse plainly non-CSV content, then find the header; also whether there is a BOM."""
    head = buf[:HEAD_BYTES].to_pybytes()
    has_bom = head.startswith(UTF8_BOM)
    sniff_not_csv(where, without_bom(head))
    return find_header(where, buf, head, has_bom), has_bom


def _report(parsed: ParsedData, header: Header) -> RawReadReport:
    """The report of a file whose records are all good."""
    return RawReadReport(
        rows_read=parsed.rows_read,
        rows_kept=parsed.table.num_rows,
        rows_dropped=0,
        encoding=parsed.encoding,
        delimiter=header.delimiter,
        extra_columns=extra_columns(header.names),
    )


def _build_frame(
    table: pa.Table, numbers: dict[str, np.ndarray], keep: np.ndarray | None
) -> pd.DataFrame:
    """Assemble the output: RAW_COLUMNS in order, int64 / float64 / str, rows in file order."""
    if keep is not None:
        table = table.filter(pa.array(keep))
    columns: dict[str, Any] = {}
    for column, kind in RAW_SCHEMA.items():
        if kind == "str":
            columns[column] = table.column(column).to_pandas().astype("str")
        else:
            values = numbers[column] if keep is None else numbers[column][keep]
            columns[column] = np.ascontiguousarray(
                values, dtype=np.int64 if kind == "int" else np.float64
            )
    frame = pd.DataFrame(columns)
    frame.index = pd.RangeIndex(len(frame))
    return frame
