"""The raw (v0) schema of NY State's Hospital Inpatient Cost Transparency CSV.

Names and order are those of the real export; ``docs/data-versions.md`` describes the columns
and the data versions built from them. Every module that reads, writes or generates raw data
takes them from here, so there is one source of truth.
"""

from __future__ import annotations

#: Raw column name -> logical type ("int", "float" or "str"), in the file's column order.
RAW_SCHEMA: dict[str, str] = {
    "Year": "int",
    "Facility Id": "int",
    "Facility Name": "str",
    "APR DRG Code": "int",
    "APR Severity Of Illness Code": "int",
    "APR DRG Description": "str",
    "APR Severity Of Illness Description": "str",
    "APR Medical Surgical Code": "str",
    "APR Medical Surgical Description": "str",
    "Discharges": "int",
    "Mean Charge": "float",
    "Median Charge": "float",
    "Mean Cost": "float",
    "Median Cost": "float",
}

#: The raw column names in file order.
RAW_COLUMNS: list[str] = list(RAW_SCHEMA)

#: Columns that identify one raw row.
RAW_KEY_COLUMNS: list[str] = [
    "Year",
    "Facility Id",
    "APR DRG Code",
    "APR Severity Of Illness Code",
]

#: The column holding the year of a raw row.
RAW_YEAR_COLUMN = "Year"

#: Money columns (dollars, must be >= 0).
RAW_MONEY_COLUMNS: list[str] = ["Mean Charge", "Median Charge", "Mean Cost", "Median Cost"]

#: Severity of illness code -> description, as in the real file.
SEVERITY_DESCRIPTIONS: dict[int, str] = {1: "Minor", 2: "Moderate", 3: "Major", 4: "Extreme"}
