"""The transformations that turn one data version into the next.

Each function is pure: it takes a frame (and keyword parameters from the config) and returns a
new frame, never touching its input. Which transformation makes which version is set by the
config's ``chain``; docs/data-versions.md describes each transformation in the default chain
(columns, formulas, parameters and their config keys, row counts) and the corrections to the
original pipeline. The docstrings here repeat the essentials.

Every transformation is registered by the :func:`~drg_workflow.registry.register` decorator on
its function, under the function's name (the name the config's chain uses), with its parameters
(their schema, default and description, or the shared setting they come from) and the default
contract of the versions it makes: the config schema is generated from these entries, so adding
a transformation is writing its decorated function here and putting it in the chain. All of them
are vectorised: group-wise work is done with sorted numpy arrays and
``reduceat``/``cumsum`` rather than ``groupby().apply`` of Python functions, which is what made
the original pipeline take 47 minutes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from drg_workflow.columns import lag_column, rolling_column
from drg_workflow.errors import DrgWorkflowError
from drg_workflow.history import series_history_features
from drg_workflow.names import RAW_TRANSFORMATION, ROW_KEY, SERIES_KEYS
from drg_workflow.raw_schema import RAW_MONEY_COLUMNS
from drg_workflow.registry import (
    RAW_CONTRACT,
    RAW_DESCRIPTION,
    ConfigValue,
    Parameter,
    Transformation,
    register,
    registered_so_far,
)
from drg_workflow.series import group_ids, group_starts, shifted_within

#: Keys of one row once ``agg_severities`` has run.
GROUP_KEYS: list[str] = list(ROW_KEY)
#: Keys of one row before ``agg_severities``: one row per severity of a (year, facility, DRG).
SEVERITY_ROW_KEYS: list[str] = [*GROUP_KEYS, "apr_severity_of_illness_code"]
#: Severity of illness codes whose discharge shares become ``severity_k_portion``.
SEVERITY_CODES: tuple[int, ...] = (1, 2, 3, 4)
#: Columns aggregated by the discharge-weighted mean in ``agg_severities``.
WEIGHTED_MEAN_COLUMNS: list[str] = [
    "mean_charge",
    "mean_cost",
    "mean_profit",
    "total_mean_profit",
    "total_mean_cost",
]
#: Columns aggregated by the discharge-weighted lower median in ``agg_severities``.
WEIGHTED_MEDIAN_COLUMNS: list[str] = [
    "median_charge",
    "median_cost",
    "median_profit",
    "total_median_profit",
    "total_median_cost",
]

LagMode = Literal["year", "row"]

#: The lag list and lag mode, shared by the lag steps and the modelling (config ``lags``).
LAG_LIST = ConfigValue("lags.columns")
LAG_MODE = ConfigValue("lags.by")


class TransformationError(DrgWorkflowError):
    """A transformation cannot run on its input (e.g. a column it needs is missing)."""


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], transformation: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TransformationError(
            f"{transformation}: input lacks column(s) {', '.join(missing)}; "
            f"it has {', '.join(map(str, frame.columns))}"
        )


# --- default contracts shared by several transformations ------------------------------------


def _severity_rows_contract(finite: Sequence[str], added: Sequence[str] = ()) -> dict[str, object]:
    """The default contract of a version still at one row per severity that keeps every row of
    its input: keys, discharges present and >= 1, the ``finite`` money columns, and the
    ``added`` columns present."""
    return {
        "keys": SEVERITY_ROW_KEYS,
        "required_columns": ["discharges", *added],
        "not_null": ["discharges"],
        "ranges": {"discharges": {"min": 1}},
        "finite": list(finite),
        "rows_vs_input": "same",
    }


#: From ``agg_severities`` on, a row is one (year, facility, DRG), never two.
ONE_ROW_PER_GROUP: dict[str, object] = {"keys": GROUP_KEYS, "unique_keys": True}


# --- column housekeeping ---------------------------------------------------------------------


def sanitize_name(name: str) -> str:
    """Lower-case ``name``, turn each run of non-alphanumerics into ``_``, strip ``_`` ends."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


#: The raw file's money columns, by their names from v1 on.
MONEY_COLUMNS: list[str] = [sanitize_name(column) for column in RAW_MONEY_COLUMNS]


@register(contract=_severity_rows_contract(finite=MONEY_COLUMNS))
def sanitize_column_names(frame: pd.DataFrame) -> pd.DataFrame:
    """Rename every column by :func:`sanitize_name`: lower case, every run of characters other
    than letters and digits one ``_``.

    ``"APR Severity Of Illness Code"`` -> ``apr_severity_of_illness_code`` and so on; fails if
    two columns would get the same name.
    """
    names = [sanitize_name(str(c)) for c in frame.columns]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        # Two raw names collapsing to one would silently shadow data downstream.
        raise TransformationError(
            f"sanitize_column_names: several columns become {', '.join(duplicated)}"
        )
    return frame.set_axis(names, axis=1)


@register(contract=_severity_rows_contract(finite=MONEY_COLUMNS))
def drop_description_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop every column whose name ends with ``description``."""
    return frame.drop(columns=[c for c in frame.columns if str(c).endswith("description")])


# --- derived money columns -------------------------------------------------------------------


def _with_column(
    frame: pd.DataFrame, name: str, left: str, right: str, op: Callable, transformation: str
) -> pd.DataFrame:
    _require_columns(frame, [left, right], transformation)
    return frame.assign(**{name: op(frame[left], frame[right])})


@register(contract=_severity_rows_contract(finite=["median_profit"], added=["median_profit"]))
def median_profit(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``median_profit = median_charge - median_cost``."""
    return _with_column(
        frame, "median_profit", "median_charge", "median_cost", np.subtract, "median_profit"
    )


@register(contract=_severity_rows_contract(finite=["mean_profit"], added=["mean_profit"]))
def mean_profit(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``mean_profit = mean_charge - mean_cost``."""
    return _with_column(
        frame, "mean_profit", "mean_charge", "mean_cost", np.subtract, "mean_profit"
    )


@register(
    contract=_severity_rows_contract(finite=["total_mean_profit"], added=["total_mean_profit"])
)
def total_mean_profit(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``total_mean_profit = mean_profit * discharges``."""
    return _with_column(
        frame, "total_mean_profit", "mean_profit", "discharges", np.multiply, "total_mean_profit"
    )


@register(
    contract=_severity_rows_contract(finite=["total_median_profit"], added=["total_median_profit"])
)
def total_median_profit(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``total_median_profit = median_profit * discharges``."""
    return _with_column(
        frame,
        "total_median_profit",
        "median_profit",
        "discharges",
        np.multiply,
        "total_median_profit",
    )


@register(
    contract=_severity_rows_contract(finite=["total_median_cost"], added=["total_median_cost"])
)
def total_median_cost(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``total_median_cost = median_cost * discharges``."""
    return _with_column(
        frame, "total_median_cost", "median_cost", "discharges", np.multiply, "total_median_cost"
    )


@register(contract=_severity_rows_contract(finite=["total_mean_cost"], added=["total_mean_cost"]))
def total_mean_cost(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``total_mean_cost = mean_cost * discharges``."""
    return _with_column(
        frame, "total_mean_cost", "mean_cost", "discharges", np.multiply, "total_mean_cost"
    )


# --- rare DRGs -------------------------------------------------------------------------------


@register(
    parameters={
        "threshold": Parameter(
            schema={"type": "integer", "minimum": 0},
            default=5000,
            description=(
                "Keep a DRG only if its total discharges over the whole file are strictly greater."
            ),
        )
    },
    contract={
        "keys": SEVERITY_ROW_KEYS,
        "required_columns": ["discharges"],
        "not_null": ["discharges"],
        "ranges": {"discharges": {"min": 1}},
        # A filter: never more rows than its input.
        "rows_vs_input": "at_most",
    },
)
def drop_rare_drgs(frame: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """Keep the rows whose DRG has total discharges over the whole frame ``> threshold``.

    The comparison is strict: a DRG whose total equals the threshold is dropped.
    """
    _require_columns(frame, ["apr_drg_code", "discharges"], "drop_rare_drgs")
    totals = frame.groupby("apr_drg_code", sort=False)["discharges"].transform("sum")
    return frame.loc[totals.to_numpy() > threshold].reset_index(drop=True)


# --- one row per (year, facility, DRG) -------------------------------------------------------


def weighted_lower_median(
    values: np.ndarray, weights: np.ndarray, group_ids: np.ndarray, n_groups: int
) -> np.ndarray:
    """Discharge-weighted lower median of ``values`` within each group.

    Within a group, rows are sorted by value and their weights accumulated; the result is the
    first value whose cumulative weight reaches at least half of the group's total weight.
    ``group_ids`` must be ``0..n_groups-1`` and every weight positive. Vectorised: one global
    lexsort, one cumsum, and a count of the rows still below half in each group.
    """
    order = np.lexsort((values, group_ids))
    sorted_groups = group_ids[order]
    sorted_weights = weights[order].astype(np.float64)
    sorted_values = values[order]
    starts = np.searchsorted(sorted_groups, np.arange(n_groups), side="left")
    cumulative = np.cumsum(sorted_weights)
    before_group = np.concatenate(([0.0], cumulative))[starts]
    within_group = cumulative - np.repeat(before_group, np.diff(np.append(starts, len(order))))
    totals = np.bincount(sorted_groups, weights=sorted_weights, minlength=n_groups)
    # Compare 2*cum with the total instead of cum with total/2: exact for integer weights.
    below_half = 2.0 * within_group < totals[sorted_groups]
    rows_below = np.bincount(sorted_groups, weights=below_half, minlength=n_groups)
    return sorted_values[starts + rows_below.astype(np.int64)]


@register(
    contract={
        **ONE_ROW_PER_GROUP,
        "required_columns": [
            "sum_discharges",
            *(f"severity_{code}_portion" for code in SEVERITY_CODES),
            *(f"w_{column}" for column in WEIGHTED_MEAN_COLUMNS),
            *(f"w_{column}" for column in WEIGHTED_MEDIAN_COLUMNS),
        ],
        "not_null": ["sum_discharges"],
        "finite": [f"w_{c}" for c in (*WEIGHTED_MEAN_COLUMNS, *WEIGHTED_MEDIAN_COLUMNS)],
        "ranges": {
            "sum_discharges": {"min": 1},
            **{f"severity_{code}_portion": {"min": 0, "max": 1} for code in SEVERITY_CODES},
        },
        "sums_to_one": [[f"severity_{code}_portion" for code in SEVERITY_CODES]],
        # An aggregation: never more rows than its input.
        "rows_vs_input": "at_most",
    },
)
def agg_severities(frame: pd.DataFrame) -> pd.DataFrame:
    """Collapse the severity rows to one row per (year, facility_id, apr_drg_code).

    Columns: the keys, ``sum_discharges``, ``severity_1..4_portion`` (share of the group's
    discharges at each severity, 0 where none), discharge-weighted means of
    :data:`WEIGHTED_MEAN_COLUMNS` and discharge-weighted lower medians of
    :data:`WEIGHTED_MEDIAN_COLUMNS`, each prefixed ``w_``. Rows sorted by the keys. All other
    columns are dropped, and no ``index`` column is written (the original pipeline leaked
    one); see docs/data-versions.md.
    """
    needed = [
        *GROUP_KEYS,
        "apr_severity_of_illness_code",
        "discharges",
        *WEIGHTED_MEAN_COLUMNS,
        *WEIGHTED_MEDIAN_COLUMNS,
    ]
    _require_columns(frame, needed, "agg_severities")
    keys = [frame[k].to_numpy() for k in GROUP_KEYS]
    order = np.lexsort(keys[::-1])
    sorted_keys = [k[order] for k in keys]
    starts = group_starts(sorted_keys)
    n_groups = len(starts)
    group_of_row = group_ids(starts, len(order))

    discharges = frame["discharges"].to_numpy(dtype=np.float64)[order]
    sum_discharges = np.add.reduceat(discharges, starts) if n_groups else np.zeros(0)
    out: dict[str, np.ndarray] = {
        k: sk[starts] for k, sk in zip(GROUP_KEYS, sorted_keys, strict=True)
    }
    out["sum_discharges"] = sum_discharges
    severity = frame["apr_severity_of_illness_code"].to_numpy()[order]
    for code in SEVERITY_CODES:
        at_code = np.bincount(
            group_of_row, weights=np.where(severity == code, discharges, 0.0), minlength=n_groups
        )
        out[f"severity_{code}_portion"] = at_code / sum_discharges
    for column in WEIGHTED_MEAN_COLUMNS:
        weighted = frame[column].to_numpy(dtype=np.float64)[order] * discharges
        out[f"w_{column}"] = np.bincount(group_of_row, weights=weighted, minlength=n_groups) / (
            sum_discharges
        )
    for column in WEIGHTED_MEDIAN_COLUMNS:
        values = frame[column].to_numpy(dtype=np.float64)[order]
        out[f"w_{column}"] = weighted_lower_median(values, discharges, group_of_row, n_groups)
    result = pd.DataFrame(out)
    # Discharges are whole numbers; keep the sum integral so the CSV says 12, not 12.0.
    result["sum_discharges"] = result["sum_discharges"].round().astype(np.int64)
    return result


# --- same-year context -----------------------------------------------------------------------


@register(
    contract={
        **ONE_ROW_PER_GROUP,
        "required_columns": ["facility_drg_count", "year_drg_count", "ratio_drg_facility_vs_year"],
        "not_null": ["ratio_drg_facility_vs_year"],
        "ranges": {
            "facility_drg_count": {"min": 1},
            "year_drg_count": {"min": 1},
            "ratio_drg_facility_vs_year": {"min": 0, "max": 1},
        },
        "rows_vs_input": "same",
    },
)
def ratio_drg_facility_vs_year(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``facility_drg_count`` (distinct DRGs per (year, facility)), ``year_drg_count``
    (distinct DRGs per year) and ``ratio_drg_facility_vs_year``, the first over the second."""
    _require_columns(frame, GROUP_KEYS, "ratio_drg_facility_vs_year")
    facility_count = frame.groupby(["year", "facility_id"], sort=False)["apr_drg_code"].transform(
        "nunique"
    )
    year_count = frame.groupby("year", sort=False)["apr_drg_code"].transform("nunique")
    return frame.assign(
        facility_drg_count=facility_count.astype(np.int64),
        year_drg_count=year_count.astype(np.int64),
        ratio_drg_facility_vs_year=facility_count / year_count,
    )


def equal_count_bins(values: pd.Series, bins: int) -> pd.Series:
    """Quantile bin labels ``0..bins-1`` with ``pd.qcut(q=bins, labels=False, duplicates="drop")``
    semantics; a constant series (a single edge left after dropping duplicates) gets label 0."""
    edges = np.unique(np.quantile(values.to_numpy(dtype=np.float64), np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return pd.Series(0, index=values.index, dtype=np.int64)
    labels = pd.qcut(values, q=bins, labels=False, duplicates="drop")
    return labels.astype(np.int64)


@register(
    parameters={
        "bins": Parameter(
            schema={"type": "integer", "minimum": 1, "maximum": 100},
            default=5,
            description="Number of equal-count quantile bins of yearly facility discharges.",
        )
    },
    contract={
        **ONE_ROW_PER_GROUP,
        "required_columns": ["yearly_discharge_bin"],
        "not_null": ["yearly_discharge_bin"],
        "ranges": {"yearly_discharge_bin": {"min": 0}},
        "rows_vs_input": "same",
    },
)
def yearly_discharge_bin(frame: pd.DataFrame, bins: int) -> pd.DataFrame:
    """Within each year, cut facilities into ``bins`` equal-count quantile bins of their
    yearly ``sum_discharges`` and join the label back to every row as ``yearly_discharge_bin``.
    """
    _require_columns(frame, ["year", "facility_id", "sum_discharges"], "yearly_discharge_bin")
    yearly = frame.groupby(["year", "facility_id"], sort=True)["sum_discharges"].sum()
    # A Python loop over the handful of years, each cut vectorised: qcut needs per-year edges.
    labels = pd.concat(
        [equal_count_bins(part, bins) for _, part in yearly.groupby(level="year", sort=True)]
    ).rename("yearly_discharge_bin")
    return frame.join(labels, on=["year", "facility_id"])


# --- lags ------------------------------------------------------------------------------------


def _sorted_series(frame: pd.DataFrame, transformation: str, columns: Sequence[str]):
    """Sort by (facility, DRG, year) and return the frame with its series-start mask."""
    _require_columns(frame, [*SERIES_KEYS, "year", *columns], transformation)
    ordered = frame.sort_values([*SERIES_KEYS, "year"], kind="stable").reset_index(drop=True)
    starts = group_starts([ordered[k].to_numpy() for k in SERIES_KEYS])
    series_id = group_ids(starts, len(ordered))
    _require_one_row_per_series_year(ordered, transformation)
    return ordered, series_id


def _require_one_row_per_series_year(frame: pd.DataFrame, transformation: str) -> None:
    if frame.duplicated([*SERIES_KEYS, "year"]).any():
        raise TransformationError(
            f"{transformation}: several rows share one (facility_id, apr_drg_code, year)"
        )


def _previous_values(
    ordered: pd.DataFrame, series_id: np.ndarray, column: str, periods: int, by: LagMode
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each of the ``periods`` earlier rows of the series: (value, counts-for-window mask).

    ``by="row"``: the k-th previous observed row counts. ``by="year"``: an earlier row counts
    when its year lies in [t-periods, t-1]; because years are unique and sorted within a series,
    the rows of that calendar window are always among the ``periods`` previous rows.
    """
    values = ordered[column].to_numpy(dtype=np.float64)
    years = ordered["year"].to_numpy(dtype=np.int64)
    previous = []
    for steps in range(1, periods + 1):
        shifted, valid = shifted_within(values, series_id, steps)
        if by == "year":
            shifted_years, _ = shifted_within(years.astype(np.float64), series_id, steps)
            gap = years - shifted_years
            valid &= (gap >= 1) & (gap <= periods)
        previous.append((shifted, valid))
    return previous


def _check_lag_mode(by: str, transformation: str) -> None:
    if by not in ("year", "row"):
        raise TransformationError(f"{transformation}: by must be 'year' or 'row', not {by!r}")


@register(
    parameters={"columns": LAG_LIST, "by": LAG_MODE},
    contract={**ONE_ROW_PER_GROUP, "rows_vs_input": "same"},
)
def lag_columns(frame: pd.DataFrame, columns: Sequence[str], by: LagMode) -> pd.DataFrame:
    """Add ``<col>_lag1`` for each of ``columns``, within each (facility, DRG) series.

    ``by="year"`` (default): the value for calendar year t-1, missing when that year is absent.
    ``by="row"``: the previous observed row's value (the original pipeline's behaviour).
    Rows come out sorted by (facility_id, apr_drg_code, year).
    """
    _check_lag_mode(by, "lag_columns")
    ordered, series_id = _sorted_series(frame, "lag_columns", columns)
    lags = {}
    for column in columns:
        # One period back: in year mode the window [t-1, t-1] is exactly year t-1.
        [(shifted, valid)] = _previous_values(ordered, series_id, column, 1, by)
        lags[lag_column(column)] = np.where(valid, shifted, np.nan)
    return pd.concat([ordered, pd.DataFrame(lags, index=ordered.index)], axis=1)


@register(
    parameters={
        "columns": LAG_LIST,
        "window": ConfigValue("lags.rolling_window"),
        "by": LAG_MODE,
    },
    # Rows with nothing in their window are dropped.
    contract={**ONE_ROW_PER_GROUP, "rows_vs_input": "at_most"},
)
def rolling_columns(
    frame: pd.DataFrame, columns: Sequence[str], window: int, by: LagMode
) -> pd.DataFrame:
    """Add ``<col>_rolling<window>`` for each of ``columns``: the column's mean over the
    ``window`` previous periods of its (facility, DRG) series, the current year excluded.

    ``by="year"``: years t-1..t-window, missing years ignored; ``by="row"``: the ``window``
    previous observed rows. At least one value is enough (min_periods 1); rows with no earlier
    row in the window are dropped. Rows come out sorted by (facility_id, apr_drg_code, year).
    """
    _check_lag_mode(by, "rolling_columns")
    if window < 1:
        raise TransformationError(f"rolling_columns: window must be >= 1, not {window}")
    ordered, series_id = _sorted_series(frame, "rolling_columns", columns)
    rolling = {}
    has_previous = np.zeros(len(ordered), dtype=bool)
    for column in columns:
        total = np.zeros(len(ordered))
        count = np.zeros(len(ordered))
        for shifted, valid in _previous_values(ordered, series_id, column, window, by):
            usable = valid & ~np.isnan(shifted)
            total += np.where(usable, shifted, 0.0)
            count += usable
            has_previous |= valid
        with np.errstate(invalid="ignore", divide="ignore"):
            rolling[rolling_column(column, window)] = np.where(count > 0, total / count, np.nan)
    result = pd.concat([ordered, pd.DataFrame(rolling, index=ordered.index)], axis=1)
    return result.loc[has_previous].reset_index(drop=True)


@register(
    parameters={"columns": LAG_LIST, "keep": ConfigValue("target", as_list=True)},
    contract={
        **ONE_ROW_PER_GROUP,
        "required_columns": ["{target}"],
        "finite": ["{target}"],
        "rows_vs_input": "same",
    },
)
def drop_non_lag_columns(
    frame: pd.DataFrame, columns: Sequence[str], keep: Sequence[str]
) -> pd.DataFrame:
    """Drop the current-year values of ``columns`` (the lag list), except ``keep`` (the
    target), so no feature carries the target year's own figures."""
    _require_columns(frame, columns, "drop_non_lag_columns")
    return frame.drop(columns=[c for c in columns if c not in set(keep)])


@register(
    parameters={"target": ConfigValue("target"), "by": LAG_MODE},
    contract={
        **ONE_ROW_PER_GROUP,
        "required_columns": ["{target}"],
        "rows_vs_input": "same",
    },
)
def series_history(frame: pd.DataFrame, target: str, by: LagMode) -> pd.DataFrame:
    """Add the target's history before each row's year as features: its lags 2 and 3, last
    year's and the mean yearly change and their volatility, the years the series has existed,
    and last year's facility and DRG figures (docs/data-versions.md, v14). Rows and their order
    are unchanged; nothing of a row's own year is used."""
    _check_lag_mode(by, "series_history")
    _require_columns(frame, [*SERIES_KEYS, "year", target, lag_column(target)], "series_history")
    _require_one_row_per_series_year(frame, "series_history")
    return series_history_features(frame, target, by)


def apply_transformation(name: str, frame: pd.DataFrame, parameters: dict) -> pd.DataFrame:
    """Run the transformation registered as ``name`` with keyword ``parameters``."""
    registry = registered_transformations()
    if name not in registry:
        known = ", ".join(registry)
        raise TransformationError(f"unknown transformation {name!r}; known: {known}")
    return registry[name].function(frame, **parameters)


def registered_transformations() -> dict[str, Transformation]:
    """Name -> entry of every registered transformation, in the order they are defined."""
    # Called after this module's decorators ran (at its import), so the registry is complete.
    return registered_so_far()


def registered_transformation(name: str) -> Transformation:
    """The entry of the transformation registered as ``name``.

    Raises:
        KeyError: No transformation is registered as ``name``.
    """
    registry = registered_transformations()
    if name not in registry:
        raise KeyError(f"unknown transformation {name!r}; known: {', '.join(registry)}")
    return registry[name]


def default_contracts() -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Name -> (description, default contract) of every maker of a version: ``ingest_raw``
    (v0, :data:`drg_workflow.names.RAW_TRANSFORMATION`: the rule that makes it and the name
    its contract is configured under) first, then every registered transformation."""
    return {
        RAW_TRANSFORMATION: (RAW_DESCRIPTION, RAW_CONTRACT),
        **{
            name: (entry.description, entry.contract)
            for name, entry in registered_transformations().items()
        },
    }
