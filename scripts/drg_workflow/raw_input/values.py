"""Value checks: numbers converted with vectorised casts, one boolean mask per problem."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from drg_workflow.raw_input.messages import quote
from drg_workflow.raw_schema import RAW_KEY_COLUMNS, RAW_MONEY_COLUMNS, RAW_SCHEMA

#: Integers are validated as float64; beyond 2**53 they are no longer exact.
_MAX_EXACT_INT = float(2**53)

# A plain decimal number (no "nan"/"inf", no hex): what the tolerant path accepts.
_NUMBER_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
# Comma thousands separators, only in the right places ("1,5" is *not* 15; it may be a
# European decimal comma, so it is rejected rather than guessed).
_THOUSANDS_RE = r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?([eE][+-]?\d+)?$"

#: Columns that must not be negative (besides those with a narrower range).
_NON_NEGATIVE = frozenset([*RAW_MONEY_COLUMNS, "Facility Id", "APR DRG Code"])


@dataclass(frozen=True)
class Check:
    """One validation rule: records where ``mask`` is true are bad for ``category``."""

    category: str
    column: str | None
    mask: np.ndarray
    describe: Callable[[str], str]  # raw field text -> specific reason


@dataclass(frozen=True)
class CheckedValues:
    """The numeric columns converted, the failed checks, and each record's first failure."""

    numbers: dict[str, np.ndarray]  # numeric column -> int64 / float64 values (0 where bad)
    checks: list[Check]  # only checks that some record fails, in the order they were made
    reason: np.ndarray  # per record: 1 + index into ``checks`` of its first failure, 0 if good

    @property
    def bad(self) -> np.ndarray:
        """Mask of the well-formed records that fail a check."""
        return self.reason != 0


def check_values(table: pa.Table, first_year: int, last_year: int) -> CheckedValues:
    """Convert and check every numeric column, then look for repeated keys among the rest.

    Each bad record is counted under its first problem: columns in schema order, then
    "duplicate key".
    """
    numbers, checks = convert_and_check(table, first_year, last_year)
    reason = first_reasons(checks, table.num_rows)
    duplicates = duplicate_mask(numbers, reason == 0)
    if duplicates.any():
        checks.append(Check("duplicate key", None, duplicates, lambda _v: "duplicate key"))
        reason[duplicates] = len(checks)
    return CheckedValues(numbers, checks, reason)


def to_float(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        values[rest], ok[rest], empty[rest] = _tolerant_float(subset)
    ok &= np.isfinite(values)  # e.g. "1e999"
    values[~ok] = 0.0
    return values, empty, ~ok & ~empty


def _tolerant_float(text: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, ok, empty)`` of strings that may have spaces, a ``$`` or thousands commas."""
    text = pc.utf8_trim_whitespace(text)
    empty = np.asarray(pc.equal(text, "").to_numpy(), dtype=bool)
    text = pc.replace_substring_regex(text, r"^([+-]?)\$", r"\1")
    thousands = pc.match_substring_regex(text, _THOUSANDS_RE)
    text = pc.if_else(thousands, pc.replace_substring(text, ",", ""), text)
    ok = pc.match_substring_regex(text, _NUMBER_RE)
    values = pc.cast(pc.if_else(ok, text, "0"), pa.float64()).to_numpy()
    return values, np.asarray(ok.to_numpy(), dtype=bool), empty


def convert_and_check(
    table: pa.Table, first_year: int, last_year: int
) -> tuple[dict[str, np.ndarray], list[Check]]:
    """Convert the numeric columns and build one mask per (column, problem) that occurs."""
    numbers: dict[str, np.ndarray] = {}
    checks: list[Check] = []
    for column, kind in RAW_SCHEMA.items():
        if kind == "str":
            continue
        numbers[column], parsed, found = _convert(table.column(column), column, kind)
        found.extend(_range_checks(column, numbers[column], parsed, first_year, last_year))
        checks.extend(check for check in found if check.mask.any())  # the good path adds none
    return numbers, checks


def _convert(
    text: pa.ChunkedArray, column: str, kind: str
) -> tuple[np.ndarray, np.ndarray, list[Check]]:
    """One numeric column: its values, the mask of usable ones, and the conversion checks."""
    nums, empty, not_number = to_float(text)
    parsed = ~(empty | not_number)
    checks = [
        Check(f"{column}: empty", column, empty, lambda _v: f"{column} is empty"),
        Check(
            f"{column}: not a number",
            column,
            not_number,
            lambda v: f"{column} {quote(v)} is not a number",
        ),
    ]
    if kind != "int":
        return nums, parsed, checks
    whole = nums == np.floor(nums)
    too_big = parsed & (np.abs(nums) >= _MAX_EXACT_INT)
    checks += [
        Check(
            f"{column}: not a whole number",
            column,
            parsed & ~whole,
            lambda v: f"{column} {quote(v)} is not a whole number",
        ),
        Check(
            f"{column}: too large", column, too_big, lambda v: f"{column} {quote(v)} is too large"
        ),
    ]
    parsed = parsed & whole & ~too_big
    return np.where(parsed, nums, 0).astype(np.int64), parsed, checks


def _range_checks(
    column: str, v: np.ndarray, parsed: np.ndarray, first_year: int, last_year: int
) -> list[Check]:
    """The plausible range of a column's (usable) values."""
    if column == "Year":
        return [
            Check(
                "Year: out of range",
                column,
                parsed & ((v < first_year) | (v > last_year)),
                lambda s: f"Year {quote(s)} is outside {first_year}..{last_year}",
            )
        ]
    if column == "APR Severity Of Illness Code":
        return [
            Check(
                f"{column}: not 1..4",
                column,
                parsed & ((v < 1) | (v > 4)),
                lambda s: f"{column} {quote(s)} is not a severity code 1..4",
            )
        ]
    if column == "Discharges":
        return [
            Check(
                "Discharges: below 1",
                column,
                parsed & (v < 1),
                lambda s: f"Discharges {quote(s)} is below 1",
            )
        ]
    if column in _NON_NEGATIVE:
        return [
            Check(
                f"{column}: negative",
                column,
                parsed & (v < 0),
                lambda s: f"{column} {quote(s)} is negative",
            )
        ]
    return []


def first_reasons(checks: list[Check], n_rows: int) -> np.ndarray:
    """Per record, 1 + the index of its first failing check, or 0 if it passes all."""
    reason = np.zeros(n_rows, dtype=np.int32)
    for i, check in enumerate(checks, start=1):
        reason[check.mask & (reason == 0)] = i
    return reason


def duplicate_mask(numbers: dict[str, np.ndarray], candidates: np.ndarray) -> np.ndarray:
    """Mark later records repeating an earlier good record's key (the first one is kept)."""
    n = len(candidates)
    all_candidates = bool(candidates.all())
    keys = [numbers[c] if all_candidates else numbers[c][candidates] for c in RAW_KEY_COLUMNS]
    if not len(keys[0]):
        return np.zeros(n, dtype=bool)
    dup_candidates = _duplicated(keys)
    if all_candidates:
        return dup_candidates
    dup = np.zeros(n, dtype=bool)
    dup[np.flatnonzero(candidates)[dup_candidates]] = True
    return dup


def _duplicated(keys: list[np.ndarray]) -> np.ndarray:
    """Mask of key tuples seen before (columns of equal length)."""
    # Fold the four non-negative int keys into one int64 when it cannot overflow: hashing one
    # column is several times faster than a multi-column duplicated().
    lows = [int(k.min()) for k in keys]
    spans = [int(k.max()) - lo + 1 for k, lo in zip(keys, lows, strict=True)]
    if np.prod([float(s) for s in spans]) < 2.0**62:
        combined = np.zeros(len(keys[0]), dtype=np.int64)
        for key, lo, span in zip(keys, lows, spans, strict=True):
            combined = combined * span + (key - lo)
        return pd.Series(combined).duplicated(keep="first").to_numpy()
    frame = pd.DataFrame(dict(zip(RAW_KEY_COLUMNS, keys, strict=True)))
    return frame.duplicated(keep="first").to_numpy()
