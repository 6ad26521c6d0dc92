"""Tests for ``drg_workflow.raw_input.read_raw_csv`` on small hand-made CSV files."""

from __future__ import annotations

import copy
import csv
import gzip
import inspect
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from drg_workflow.config_validation import validate_config
from drg_workflow.errors import DrgWorkflowError
from drg_workflow.raw_input import RawDataError, RawReadReport, check_csv_head, read_raw_csv
from drg_workflow.raw_schema import RAW_COLUMNS, RAW_SCHEMA

HEADER = ",".join(RAW_COLUMNS)
ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
#: The ``raw`` settings with the schema's defaults: the one home of the validation policy.
RAW_DEFAULTS = validate_config({}, copy.deepcopy(SCHEMA))["raw"]


def raw_read_settings(**overrides: Any) -> dict[str, Any]:
    """read_raw_csv's keyword arguments: the schema's defaults of ``raw.on_bad_rows`` and
    ``raw.plausible_years``, then ``overrides`` (not validated, so tests can pass bad ones)."""
    first_year, last_year = RAW_DEFAULTS["plausible_years"]
    defaults = {
        "on_bad_rows": RAW_DEFAULTS["on_bad_rows"],
        "first_year": first_year,
        "last_year": last_year,
    }
    return {**defaults, **overrides}


def read(path: str | Path, **overrides: Any) -> tuple[pd.DataFrame, RawReadReport]:
    """read_raw_csv with the schema's default policy, except for ``overrides``."""
    return read_raw_csv(path, **raw_read_settings(**overrides))


def make_rows(n: int = 4) -> list[dict[str, Any]]:
    """``n`` valid raw records with distinct keys (commas in text force CSV quoting)."""
    rows = []
    for i in range(n):
        severity = i % 4 + 1
        rows.append(
            {
                "Year": 2015 + i // 8,
                "Facility Id": 1 + (i // 4) % 2,
                "Facility Name": f"Albany Medical Center, Unit {i}",
                "APR DRG Code": 720,
                "APR Severity Of Illness Code": severity,
                "APR DRG Description": "Septicemia, disseminated infections",
                "APR Severity Of Illness Description": ["Minor", "Moderate", "Major", "Extreme"][
                    severity - 1
                ],
                "APR Medical Surgical Code": "M",
                "APR Medical Surgical Description": "Medical",
                "Discharges": 10 + i,
                "Mean Charge": 30000.5 + i,
                "Median Charge": 25000.25 + i,
                "Mean Cost": 10000.75 + i,
                "Median Cost": 9000.0 + i,
            }
        )
    return rows


def write_csv(
    tmp_path: Path,
    rows: list[dict[str, Any]],
    columns: list[str] | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8",
    name: str = "raw.csv",
) -> Path:
    """Write ``rows`` as a CSV the way a spreadsheet / pandas export would."""
    columns = columns or RAW_COLUMNS
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    path = tmp_path / name
    path.write_bytes(out.getvalue().encode(encoding))
    return path


def good_lines(n: int = 4) -> list[str]:
    """Header plus ``n`` valid data lines as text (for hand-editing single lines)."""
    path_text = io.StringIO()
    writer = csv.writer(path_text, lineterminator="\n")
    writer.writerow(RAW_COLUMNS)
    for row in make_rows(n):
        writer.writerow([row[c] for c in RAW_COLUMNS])
    return path_text.getvalue().splitlines()


def set_field(line: str, column: str, value: str) -> str:
    """Replace one field of a CSV line (parsed and re-written, so quoting stays valid)."""
    fields = next(csv.reader([line]))
    fields[RAW_COLUMNS.index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def write_text(tmp_path: Path, text: str | bytes, name: str = "raw.csv") -> Path:
    """Write raw text or bytes exactly as given."""
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def error_of(path: Path, **kwargs: Any) -> str:
    """The RawDataError message read_raw_csv raises for ``path``."""
    with pytest.raises(RawDataError) as info:
        read(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message  # one paragraph
    assert str(path) in message  # says which file
    return message


# ------------------------------------------------------------------------------------------
# Good files
# ------------------------------------------------------------------------------------------


def test_round_trip_dtypes_order_and_extra_column(tmp_path: Path) -> None:
    rows = make_rows(6)
    for row in rows:
        row["Notes"] = "ignored"
    rows[1]["Discharges"] = "11.0"  # whole numbers written as floats are accepted
    columns = list(reversed(RAW_COLUMNS))
    columns.insert(3, "Notes")
    path = write_csv(tmp_path, rows, columns=columns)

    frame, report = read(path)

    assert list(frame.columns) == RAW_COLUMNS
    for col, kind in RAW_SCHEMA.items():
        expected = {"int": "int64", "float": "float64", "str": "str"}[kind]
        assert frame[col].dtype == expected, col
    assert list(frame.index) == list(range(6))
    assert frame["Facility Name"].tolist() == [r["Facility Name"] for r in make_rows(6)]
    assert frame["Discharges"].tolist() == [10, 11, 12, 13, 14, 15]
    assert frame["Mean Charge"].tolist() == [30000.5 + i for i in range(6)]
    assert report == RawReadReport(
        rows_read=6,
        rows_kept=6,
        rows_dropped=0,
        drop_reasons={},
        bad_row_examples=[],
        extra_columns=["Notes"],
        encoding="utf-8",
        delimiter=",",
    )
    assert json.loads(json.dumps(report.to_dict()))["extra_columns"] == ["Notes"]


def test_header_whitespace_crlf_and_blank_lines_are_tolerated(tmp_path: Path) -> None:
    lines = good_lines(3)
    header = ", ".join(f" {c} " for c in RAW_COLUMNS)
    text = "\r\n".join(["", header, lines[1], "", lines[2], lines[3], ""])
    frame, report = read(write_text(tmp_path, text))
    assert list(frame.columns) == RAW_COLUMNS
    assert len(frame) == 3 and report.rows_read == 3


def test_utf8_bom(tmp_path: Path) -> None:
    path = write_csv(tmp_path, make_rows(2), encoding="utf-8-sig")
    frame, report = read(path)
    assert report.encoding == "utf-8-sig"
    assert frame["Year"].tolist() == [2015, 2015]


def test_utf8_non_ascii_name(tmp_path: Path) -> None:
    rows = make_rows(2)
    rows[0]["Facility Name"] = "Hôpital Saint-Luc"
    frame, report = read(write_csv(tmp_path, rows))
    assert report.encoding == "utf-8"
    assert frame["Facility Name"][0] == "Hôpital Saint-Luc"


def test_latin1_name_preserved(tmp_path: Path) -> None:
    rows = make_rows(3)
    rows[2]["Facility Name"] = "Hôpital Général"
    path = write_csv(tmp_path, rows, encoding="latin-1")
    assert b"\xe9" in path.read_bytes()
    frame, report = read(path)
    assert report.encoding == "latin-1"
    assert frame["Facility Name"][2] == "Hôpital Général"
    assert "é" in frame["Facility Name"][2]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters(tmp_path: Path, delimiter: str) -> None:
    path = write_csv(tmp_path, make_rows(3), delimiter=delimiter)
    frame, report = read(path)
    assert report.delimiter == delimiter
    assert list(frame.columns) == RAW_COLUMNS
    assert frame["Facility Name"][0] == "Albany Medical Center, Unit 0"
    assert frame["Median Cost"].tolist() == [9000.0, 9001.0, 9002.0]


def test_thousands_separators_and_dollars(tmp_path: Path) -> None:
    rows = make_rows(3)
    rows[0]["Discharges"] = "1,234"
    rows[0]["Mean Charge"] = "1,234,567.89"
    rows[1]["Mean Cost"] = "$12,345.60"
    rows[2]["Median Cost"] = " 42 "
    frame, report = read(write_csv(tmp_path, rows))
    assert frame["Discharges"].tolist() == [1234, 11, 12]
    assert frame["Discharges"].dtype == np.int64
    assert frame["Mean Charge"][0] == pytest.approx(1234567.89)
    assert frame["Mean Cost"][1] == pytest.approx(12345.6)
    assert frame["Median Cost"][2] == 42.0
    assert report.rows_dropped == 0


def test_misplaced_comma_is_not_a_thousands_separator(tmp_path: Path) -> None:
    rows = make_rows(2)
    rows[1]["Mean Cost"] = "1,5"  # maybe a decimal comma: refuse rather than read 15
    message = error_of(write_csv(tmp_path, rows))
    assert "line 3: Mean Cost '1,5' is not a number" in message


# ------------------------------------------------------------------------------------------
# Header problems and files that are not usable CSVs
# ------------------------------------------------------------------------------------------


def test_missing_columns_are_all_named(tmp_path: Path) -> None:
    columns = [c for c in RAW_COLUMNS if c not in ("Mean Cost", "Discharges")]
    message = error_of(write_csv(tmp_path, make_rows(2), columns=columns))
    assert "lacks 2 required column(s)" in message
    assert "'Discharges'" in message and "'Mean Cost'" in message
    assert "Columns found:" in message and "'Facility Name'" in message


def test_missing_column_case_hint(tmp_path: Path) -> None:
    columns = ["year" if c == "Year" else c for c in RAW_COLUMNS]
    message = error_of(write_csv(tmp_path, make_rows(1), columns=columns))
    assert "'Year'" in message and "case-sensitive" in message


def test_empty_file(tmp_path: Path) -> None:
    assert "empty" in error_of(write_text(tmp_path, b""))
    assert "empty" in error_of(write_text(tmp_path, "  \n\n \t\n", name="blank.csv"))


def test_header_only(tmp_path: Path) -> None:
    message = error_of(write_text(tmp_path, HEADER + "\n\n"))
    assert "no data rows" in message


def test_html_page(tmp_path: Path) -> None:
    page = "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>x</body></html>"
    message = error_of(write_text(tmp_path, page))
    assert "HTML" in message and "not a CSV" in message
    assert "'<!DOCTYPE html>" in message


def test_s3_xml_error_and_json(tmp_path: Path) -> None:
    xml = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code></Error>'
    assert "XML" in error_of(write_text(tmp_path, xml, name="a.csv"))
    message = error_of(write_text(tmp_path, '{"error": "not found"}', name="b.csv"))
    assert "JSON" in message and "not a CSV" in message


def test_binary_content(tmp_path: Path) -> None:
    gz = gzip.compress((HEADER + "\n").encode())
    message = error_of(write_text(tmp_path, gz, name="a.csv"))
    assert "gzip" in message and "not a CSV" in message
    message = error_of(write_text(tmp_path, b"ab\x00\x01cd" * 10, name="b.csv"))
    assert "binary" in message and "not a CSV" in message


def test_unreadable_path(tmp_path: Path) -> None:
    message = error_of(tmp_path / "nope.csv")
    assert "cannot be read" in message


# ------------------------------------------------------------------------------------------
# Bad rows
# ------------------------------------------------------------------------------------------


def test_non_numeric_cost_names_column_and_line(tmp_path: Path) -> None:
    lines = good_lines(6)
    lines[6] = set_field(lines[6], "Mean Cost", "abc")  # file line 7
    message = error_of(write_text(tmp_path, "\n".join(lines) + "\n"))
    assert "1 of 6 data rows are bad" in message
    assert "line 7: Mean Cost 'abc' is not a number" in message
    assert "raw.on_bad_rows: drop" in message


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("Discharges", "0", "line 3: Discharges '0' is below 1"),
        ("Mean Cost", "-5.5", "line 3: Mean Cost '-5.5' is negative"),
        ("Year", "1890", "line 3: Year '1890' is outside 1990..2100"),
        ("APR Severity Of Illness Code", "5", "'5' is not a severity code 1..4"),
        ("Facility Id", "-1", "line 3: Facility Id '-1' is negative"),
        ("APR DRG Code", "12.5", "line 3: APR DRG Code '12.5' is not a whole number"),
        ("Median Charge", "", "line 3: Median Charge is empty"),
        ("Discharges", "nan", "line 3: Discharges 'nan' is not a number"),
    ],
)
def test_bad_values(tmp_path: Path, column: str, value: str, expected: str) -> None:
    lines = good_lines(3)
    lines[2] = set_field(lines[2], column, value)
    message = error_of(write_text(tmp_path, "\n".join(lines) + "\n"))
    assert expected in message
    assert "1 of 3 data rows are bad" in message


def test_year_range_is_configurable(tmp_path: Path) -> None:
    path = write_csv(tmp_path, make_rows(2))
    message = error_of(path, first_year=2016, last_year=2020)
    assert "Year '2015' is outside 2016..2020" in message
    assert "2 of 2 data rows are bad" in message


def test_duplicate_key(tmp_path: Path) -> None:
    lines = good_lines(4)
    lines.append(set_field(lines[2], "Mean Cost", "1.0"))  # same key as file line 3
    message = error_of(write_text(tmp_path, "\n".join(lines) + "\n"))
    assert "line 6: duplicate key" in message
    assert "first seen on line 3" in message

    frame, report = read(write_text(tmp_path, "\n".join(lines)), on_bad_rows="drop")
    assert report.drop_reasons == {"duplicate key": 1}
    assert len(frame) == 4 and frame["Mean Cost"][1] != 1.0  # the first one is kept


def test_truncated_last_line_error(tmp_path: Path) -> None:
    lines = good_lines(4)
    lines[-1] = lines[-1][:30]  # cut mid-row, inside the quoted facility name
    message = error_of(write_text(tmp_path, "\n".join(lines)))
    assert "line 5: truncated line (3 fields, expected 14; unterminated quote)" in message
    assert "raw.on_bad_rows: drop" in message


@pytest.mark.parametrize("cut", [6, 30, 120])
def test_truncated_last_line_drop(tmp_path: Path, cut: int) -> None:
    lines = good_lines(4)
    lines[-1] = lines[-1][:cut]
    frame, report = read(write_text(tmp_path, "\n".join(lines) + "\n"), on_bad_rows="drop")
    assert len(frame) == 3
    assert report.rows_read == 4 and report.rows_dropped == 1
    assert report.drop_reasons == {"truncated line": 1}
    assert report.bad_row_examples[0]["line"] == 5
    assert report.bad_row_examples[0]["reason"].startswith("truncated line (")


def test_too_many_fields(tmp_path: Path) -> None:
    lines = good_lines(3)
    lines[1] += ",surplus"
    message = error_of(write_text(tmp_path, "\n".join(lines)))
    assert "line 2: too many fields (15 fields, expected 14)" in message


def test_unterminated_quote_mid_file_is_never_dropped(tmp_path: Path) -> None:
    lines = good_lines(5)
    # The quote opened before "Albany" is never closed on its line, so the parser runs on
    # into the following lines (to the next quote character).
    lines[2] = '2015,1,"Albany,720,2,Sepsis,Moderate,M,Medical,11,1.0,1.0,1.0,1.0'
    message = error_of(write_text(tmp_path, "\n".join(lines)), on_bad_rows="drop")
    assert "unterminated quote on line 3" in message and "cannot be dropped" in message


def test_drop_policy_counts_reasons_and_examples(tmp_path: Path) -> None:
    lines = good_lines(10)
    lines[2] = set_field(lines[2], "Mean Cost", "abc")  # line 3
    lines[4] = set_field(lines[4], "Discharges", "0")  # line 5
    lines[5] = set_field(lines[5], "Mean Cost", "x")  # line 6
    lines[7] = "2015,1"  # line 8
    lines.insert(9, "")  # blank line 10 is ignored, later lines shift by one
    lines[10] = set_field(lines[10], "Median Cost", "-1")  # line 11
    path = write_text(tmp_path, "\n".join(lines) + "\n")

    message = error_of(path)
    assert "5 of 10 data rows are bad" in message

    frame, report = read(path, on_bad_rows="drop", max_examples=3)
    assert report.rows_read == 10 and report.rows_kept == 5 and report.rows_dropped == 5
    assert report.drop_reasons == {
        "Discharges: below 1": 1,
        "Mean Cost: not a number": 2,
        "Median Cost: negative": 1,
        "truncated line": 1,
    }
    assert list(report.drop_reasons) == sorted(report.drop_reasons)
    assert report.bad_row_examples == [
        {"line": 3, "reason": "Mean Cost 'abc' is not a number"},
        {"line": 5, "reason": "Discharges '0' is below 1"},
        {"line": 6, "reason": "Mean Cost 'x' is not a number"},
    ]
    assert frame["Facility Name"].str[-1].tolist() == ["0", "2", "5", "7", "9"]
    assert list(frame.index) == list(range(5))
    assert json.loads(json.dumps(report.to_dict()))["rows_dropped"] == 5


def test_all_rows_bad_with_drop_is_an_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path, make_rows(2))
    message = error_of(path, on_bad_rows="drop", last_year=2000)
    assert "all 2 data rows are bad" in message


def test_error_lists_at_most_max_examples(tmp_path: Path) -> None:
    lines = good_lines(8)
    lines[1:] = [set_field(line, "Mean Cost", "bad") for line in lines[1:]]
    message = error_of(write_text(tmp_path, "\n".join(lines)), max_examples=2)
    assert "8 of 8 data rows are bad" in message
    assert "line 3:" in message and "line 4:" not in message


def test_policy_has_no_defaults_in_code() -> None:
    """The validation policy's defaults live in the config schema only; ``max_examples`` is
    not a setting."""
    parameters = inspect.signature(read_raw_csv).parameters.values()
    assert [p.name for p in parameters if p.default is not p.empty] == ["max_examples"]
    with pytest.raises(TypeError):
        read_raw_csv("x.csv")  # type: ignore[call-arg]


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="on_bad_rows"):
        read("x.csv", on_bad_rows="ignore")
    with pytest.raises(ValueError, match="first_year"):
        read("x.csv", first_year=2020, last_year=2010)


@pytest.mark.parametrize(
    "arguments",
    [{"on_bad_rows": "ignore"}, {"first_year": 2020, "last_year": 2010}, {"max_examples": -1}],
    ids=["on_bad_rows", "years", "max_examples"],
)
def test_invalid_arguments_are_user_errors(arguments: dict[str, Any]) -> None:
    """They come from the config: logged_rule shows a DrgWorkflowError as one clear line."""
    with pytest.raises(DrgWorkflowError):
        read("x.csv", **arguments)


def test_check_csv_head_is_the_same_sniffing(tmp_path: Path) -> None:
    """What a download checks on its first bytes is what read_raw_csv refuses."""
    page = b"\xef\xbb\xbf<!DOCTYPE html><html><body>Sign in</body></html>"
    with pytest.raises(RawDataError, match="looks like an HTML page") as from_head:
        check_csv_head("https://example.org/raw.csv", page)
    assert str(from_head.value).startswith("Raw data file https://example.org/raw.csv: ")
    check_csv_head("x.csv", HEADER.encode())  # a CSV header passes
