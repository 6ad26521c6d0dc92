"""Data contracts: what a data version promises, checked on the frame before it is written.

A contract (``contracts.<transformation>`` in the config: its fields declared in
``workflow/schemas/config.schema.yaml`` as ``$defs/contract``, each transformation's defaults
in its registry entry, :mod:`drg_workflow.registry`; see
:func:`drg_workflow.contract_settings.configured_contract`) lists the version's keys (never
null, optionally unique), required columns, columns without missing values, finite numeric
columns, inclusive value ranges, groups of columns summing to 1 per row, its row count against
the input version's and optional absolute row-count bounds.

:func:`check_contract` runs every check, vectorised (a few milliseconds a million rows per
column), and either returns what it measured, for the version's metadata, or raises
:class:`ContractError` naming the version, the check and the first offending rows' keys.
Measurements are plain JSON values without timestamps, so metadata stays byte-reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from drg_workflow.errors import DrgWorkflowError

#: Offending rows named in a message.
EXAMPLES = 3
#: The contract fields :func:`check_contract` knows (the schema's ``$defs/contract`` declares
#: the same); a field outside them would be a check that silently never runs.
CONTRACT_FIELDS: frozenset[str] = frozenset(
    {
        "keys",
        "unique_keys",
        "required_columns",
        "not_null",
        "finite",
        "ranges",
        "sums_to_one",
        "sum_tolerance",
        "rows_vs_input",
        "min_rows",
        "max_rows",
    }
)


class ContractError(DrgWorkflowError):
    """A version breaks its contract; the message names the version, the check and rows."""


def _number(value: Any) -> float | int | None:
    """A measured value as a plain JSON number (None for no value)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


class _Checker:
    """Runs one version's checks, collecting measurements and failing on the first broken one."""

    def __init__(self, frame: pd.DataFrame, version: str, transformation: str, keys: list[str]):
        self.frame = frame
        self.version = version
        self.transformation = transformation
        self.keys = [k for k in keys if k in frame.columns]
        self.results: list[dict[str, Any]] = []

    def fail(self, check: str, problem: str, rows: np.ndarray | None = None) -> None:
        where = ""
        if rows is not None and rows.any():
            first = np.flatnonzero(rows)[:EXAMPLES]
            if self.keys:
                names = ", ".join(self.keys)
                values = self.frame[self.keys].iloc[first].itertuples(index=False, name=None)
                where = f"; first rows ({names}): " + ", ".join(
                    str(tuple(_number(v) for v in row)) for row in values
                )
            else:
                where = "; first rows (positions): " + ", ".join(map(str, first))
        raise ContractError(
            f"{self.version} ({self.transformation}) breaks its contract: {check}: {problem}{where}"
        )

    def passed(self, check: str, measured: Mapping[str, Any]) -> None:
        self.results.append({"check": check, "passed": True, "measured": dict(measured)})

    def columns_present(self, check: str, columns: Sequence[str]) -> None:
        missing = [c for c in columns if c not in self.frame.columns]
        if missing:
            self.fail(check, f"missing column(s) {', '.join(missing)}")

    def numeric(self, check: str, column: str) -> np.ndarray:
        series = self.frame[column]
        if not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)):
            self.fail(check, f"column {column} is not numeric ({series.dtype})")
        return series.to_numpy(dtype=np.float64, na_value=np.nan)

    def required_columns(self, columns: list[str]) -> None:
        self.columns_present("required_columns", columns)
        if columns:
            self.passed("required_columns", {"columns": len(columns)})

    def not_null(self, columns: list[str]) -> None:
        self.columns_present("not_null", columns)
        nulls = self.frame[columns].isna()
        counts = nulls.sum()
        if counts.any():
            bad = counts[counts > 0]
            detail = ", ".join(f"{name} has {count}" for name, count in bad.items())
            self.fail("not_null", f"missing values ({detail})", nulls.any(axis=1).to_numpy())
        self.passed("not_null", {"columns": len(columns), "nulls": 0})

    def unique_keys(self) -> None:
        duplicated = self.frame.duplicated(self.keys, keep=False).to_numpy()
        if duplicated.any():
            self.fail(
                "unique_keys",
                f"{int(duplicated.sum())} rows share their ({', '.join(self.keys)}) with "
                "another row",
                duplicated,
            )
        self.passed(
            "unique_keys", {"keys": self.keys, "rows": int(len(self.frame)), "duplicates": 0}
        )

    def finite(self, columns: list[str]) -> None:
        self.columns_present("finite", columns)
        for column in columns:
            values = self.numeric("finite", column)
            bad = ~np.isfinite(values)
            if bad.any():
                self.fail("finite", f"{int(bad.sum())} values of {column} are NaN or infinite", bad)
        self.passed("finite", {"columns": len(columns), "non_finite": 0})

    def ranges(self, ranges: Mapping[str, Mapping[str, float]]) -> None:
        self.columns_present("ranges", list(ranges))
        measured = {}
        for column, bounds in ranges.items():
            values = self.numeric("ranges", column)
            low, high = bounds.get("min", -np.inf), bounds.get("max", np.inf)
            bad = (values < low) | (values > high)  # NaN compares False: not_null's business
            if bad.any():
                self.fail(
                    "ranges", f"{int(bad.sum())} values of {column} outside [{low}, {high}]", bad
                )
            present = values[~np.isnan(values)]
            measured[column] = {
                "min": _number(present.min()) if len(present) else None,
                "max": _number(present.max()) if len(present) else None,
            }
        self.passed("ranges", measured)

    def sums_to_one(self, groups: Sequence[Sequence[str]], tolerance: float) -> None:
        deviations = []
        for group in groups:
            self.columns_present("sums_to_one", group)
            total = np.zeros(len(self.frame))
            for column in group:
                total += self.numeric("sums_to_one", column)
            deviation = np.abs(total - 1.0)
            bad = ~(deviation <= tolerance)
            if bad.any():
                self.fail(
                    "sums_to_one",
                    f"{int(bad.sum())} rows where {' + '.join(group)} is not 1 within {tolerance}",
                    bad,
                )
            deviations.append(_number(deviation.max()) if len(self.frame) else 0.0)
        self.passed("sums_to_one", {"tolerance": tolerance, "max_deviation": deviations})

    def rows_vs_input(self, rule: str, input_rows: int) -> None:
        rows = int(len(self.frame))
        if (rule == "same" and rows != input_rows) or (rule == "at_most" and rows > input_rows):
            wanted = "the same number of rows as" if rule == "same" else "at most the rows of"
            self.fail(
                "rows_vs_input", f"{rows} rows, but must have {wanted} its input ({input_rows})"
            )
        self.passed("rows_vs_input", {"rule": rule, "input_rows": input_rows, "rows": rows})

    def row_bounds(self, low: int | None, high: int | None) -> None:
        rows = int(len(self.frame))
        if (low is not None and rows < low) or (high is not None and rows > high):
            self.fail("row_bounds", f"{rows} rows, outside [{low}, {high}]")
        self.passed("row_bounds", {"min_rows": low, "max_rows": high, "rows": rows})


def check_contract(
    frame: pd.DataFrame,
    version: str,
    transformation: str,
    contract: Mapping[str, Any],
    input_rows: int | None = None,
) -> list[dict[str, Any]]:
    """Check ``frame`` (the new ``version``) against ``contract``; return the passed checks.

    Each result is ``{"check", "passed": True, "measured": {...}}``, in the order run:
    ``required_columns``, ``not_null`` (keys and the listed columns), ``unique_keys``,
    ``finite``, ``ranges``, ``sums_to_one``, ``rows_vs_input`` (when the version has an input
    and the rule is not ``any``) and ``row_bounds`` (when a bound is set); a check with nothing
    to check is not listed. The first broken check raises :class:`ContractError`.

    Raises:
        ValueError: ``contract`` has a field outside :data:`CONTRACT_FIELDS`.
    """
    unknown = sorted(set(contract) - CONTRACT_FIELDS)
    if unknown:
        raise ValueError(
            f"contract of {version} ({transformation}): unknown field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(CONTRACT_FIELDS))}"
        )
    keys = list(contract.get("keys", []))
    check = _Checker(frame, version, transformation, keys)
    check.required_columns(list(dict.fromkeys([*keys, *contract.get("required_columns", [])])))
    not_null = list(dict.fromkeys([*keys, *contract.get("not_null", [])]))
    if not_null:
        check.not_null(not_null)
    if contract.get("unique_keys") and keys:
        check.unique_keys()
    if contract.get("finite"):
        check.finite(list(contract["finite"]))
    if contract.get("ranges"):
        check.ranges(contract["ranges"])
    if contract.get("sums_to_one"):
        check.sums_to_one(contract["sums_to_one"], contract.get("sum_tolerance", 0.0))
    rule = contract.get("rows_vs_input", "any")
    if input_rows is not None and rule != "any":
        check.rows_vs_input(rule, input_rows)
    low, high = contract.get("min_rows"), contract.get("max_rows")
    if low is not None or high is not None:
        check.row_bounds(low, high)
    return check.results
