"""Parsing the data lines with ``pyarrow.csv``: every schema column as a string."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from drg_workflow.raw_input.header import Header
from drg_workflow.raw_input.messages import RawDataError, show
from drg_workflow.raw_schema import RAW_COLUMNS


@dataclass(frozen=True)
class InvalidRow:
    """A record pyarrow could not split into the header's number of fields."""

    expected: int
    actual: int
    number: int | None  # 1-based among the non-empty lines after the header (serial parse)
    text: str


@dataclass(frozen=True)
class ParsedData:
    """The data lines as parsed: the table, the malformed records, and the bytes parsed."""

    table: pa.Table  # RAW_COLUMNS, all strings, one row per well-formed record
    invalid: list[InvalidRow]
    data: pa.Buffer  # the bytes after the header, as UTF-8
    encoding: str  # "utf-8", "utf-8-sig" or "latin-1"

    @property
    def rows_read(self) -> int:
        """Data records in the file (blank lines not counted), malformed ones included."""
        return self.table.num_rows + len(self.invalid)


def parse_data(
    buf: pa.Buffer, header: Header, positions: dict[str, int], has_bom: bool
) -> ParsedData:
    """Parse the data after the header as UTF-8, or as Latin-1 if it is not valid UTF-8."""
    data = buf[header.data_start :]
    table, invalid = parse(data, header, positions)
    if table is not None:
        return ParsedData(table, invalid, data, "utf-8-sig" if has_bom else "utf-8")
    # Not valid UTF-8: the export is then Latin-1, transcoded so that pyarrow can read it.
    data = pa.py_buffer(data.to_pybytes().decode("latin-1").encode("utf-8"))
    table, invalid = parse(data, header, positions)
    assert table is not None  # Latin-1 transcoded to UTF-8 is always valid UTF-8
    return ParsedData(table, invalid, data, "latin-1")


def parse(
    data: pa.Buffer,
    header: Header,
    positions: dict[str, int],
    use_threads: bool = True,
) -> tuple[pa.Table | None, list[InvalidRow]]:
    """Parse the data lines, every schema column as a string; ``None`` if not valid UTF-8."""
    invalid: list[InvalidRow] = []

    def on_invalid(row: Any) -> str:
        # Called for records with too few / too many fields; we report them instead of failing.
        invalid.append(InvalidRow(row.expected_columns, row.actual_columns, row.number, row.text))
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


def with_invalid_row_numbers(
    parsed: ParsedData, header: Header, positions: dict[str, int]
) -> ParsedData:
    """``parsed`` with the line numbers of its malformed records, which only a serial parse
    knows (the threaded one leaves them ``None``)."""
    if not any(row.number is None for row in parsed.invalid):
        return parsed
    table, invalid = parse(parsed.data, header, positions, use_threads=False)
    assert table is not None and table.num_rows == parsed.table.num_rows
    return ParsedData(parsed.table, invalid, parsed.data, parsed.encoding)


def refuse_swallowed_lines(where: str, invalid: list[InvalidRow], invalid_lines: list[int]) -> None:
    """An unterminated quote mid-file swallows the following lines; never drop those silently."""
    for row, start in zip(invalid, invalid_lines, strict=True):
        # A truncated last line may still end with its terminator: that loses no lines.
        body = row.text.rstrip("\r\n")
        n_lines = body.count("\n") + body.count("\r") - body.count("\r\n")
        if n_lines:
            raise RawDataError(
                f"Raw data file {where}: an unterminated quote on line {start} makes lines "
                f"{start}-{start + n_lines} read as one record ({row.actual} fields, expected "
                f"{row.expected}); it starts with {show(row.text)}. Fix the quoting in the "
                "file; these lines cannot be dropped safely."
            )
