"""The next-year forecast: the features of year T+1, the calibration and assessment of its
group-conditional prediction intervals (the intervals themselves are :mod:`.intervals`), the
facility and DRG names of the last year, and the forecast table.

The features of the year after the data's last year T come from the workflow's own
transformations, never from a copy of them: placeholder rows for T+1 (one per (facility, DRG)
of year T) are appended to the version the lags are taken from, and the chain's steps from
``lag_columns`` to the modelling data version are applied to it, exactly as they made the
modelling data. The rows of T+1 are then the modelling data of a year not yet seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from drg_workflow.errors import DrgWorkflowError
from drg_workflow.transformations import apply_transformation

from .data import KEY_COLUMNS
from .intervals import (
    MondrianIntervals,
    assessment_json,
    bound_columns,
    interval_assessment,
)


class ForecastError(DrgWorkflowError):
    """The forecast cannot be made from this data or these settings."""


@dataclass(frozen=True)
class ChainStep:
    """One step of the chain re-applied for the forecast: a transformation and its params."""

    version: str
    transformation: str
    parameters: Mapping


def next_year_rows(frame: pd.DataFrame, lag_list: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """``frame`` with one placeholder row for year T+1 per row of its last year T; returns the
    frame and T+1.

    A placeholder copies its year-T row with the year set to T+1 and the current-year values of
    the lag list (the target among them) unknown (NaN): only their lags are known. Columns
    outside the lag list (e.g. the same-year features, if switched on) are carried over from
    year T.
    """
    if frame.empty:
        raise ForecastError("the data has no rows to forecast from")
    last_year = int(frame["year"].max())
    placeholders = frame.loc[frame["year"] == last_year].copy()
    placeholders["year"] = last_year + 1
    unknown = [c for c in lag_list if c in placeholders.columns]
    placeholders[unknown] = np.nan
    return pd.concat([frame, placeholders], ignore_index=True), last_year + 1


def next_year_features(
    frame: pd.DataFrame, steps: Sequence[ChainStep], lag_list: Sequence[str]
) -> pd.DataFrame:
    """The modelling data of year T+1: the placeholders of :func:`next_year_rows` taken
    through ``steps`` (the chain from ``lag_columns`` to the modelling data version), keeping
    only the rows of T+1, sorted by facility and DRG."""
    extended, next_year = next_year_rows(frame, lag_list)
    for step in steps:
        extended = apply_transformation(step.transformation, extended, dict(step.parameters))
    rows = extended.loc[extended["year"] == next_year]
    return rows.sort_values(list(KEY_COLUMNS[1:]), kind="stable", ignore_index=True)


# --------------------------------------------------------------------------- names


def last_year_names(frame: pd.DataFrame, key: str, name: str) -> pd.DataFrame:
    """Each ``key``'s ``name`` in the last year it appears in: ``(key, name)``, one row per key.

    A facility renamed between years reads by its newest name; two names of one key in its
    last year (not expected) resolve to the alphabetically last, so the choice never depends
    on row order.
    """
    missing = [c for c in ("year", key, name) if c not in frame.columns]
    if missing:
        raise ForecastError(f"the names' data version has no column {', '.join(missing)}")
    rows = frame.loc[frame[name].notna(), ["year", key, name]]
    latest = rows.sort_values([key, "year", name], kind="stable").drop_duplicates(key, keep="last")
    return latest.loc[:, [key, name]].reset_index(drop=True)


def with_names(
    table: pd.DataFrame, names_source: pd.DataFrame, name_columns: Mapping[str, str]
) -> pd.DataFrame:
    """``table`` with, right after each key column of ``name_columns`` (key -> name column),
    that key's name of its last year in ``names_source`` (see :func:`last_year_names`)."""
    result = table
    for key, name in name_columns.items():
        names = last_year_names(names_source, key, name)
        result = result.merge(names, on=key, how="left", validate="many_to_one", sort=False)
    order: list[str] = []
    for column in table.columns:
        order.append(column)
        order.extend(name for key, name in name_columns.items() if key == column)
    return result.loc[:, order]


def backtest_residual_rows(predictions: pd.DataFrame, model: str | None) -> pd.DataFrame:
    """The rows of the backtest's out-of-sample predictions (see
    :data:`.backtest.PREDICTION_COLUMNS`) that calibrate and assess the forecast's intervals:
    ``model``'s predictions, or persistence's (of any one model's rows) for ``None``; columns
    role, the keys (year is the origin), y_true, y_pred.

    Raises:
        ForecastError: the predictions hold no row of ``model``.
    """
    if predictions.empty:
        raise ForecastError("the backtest has no predictions to calibrate the intervals on")
    chosen = model if model is not None else str(predictions["model"].iloc[0])
    rows = predictions.loc[predictions["model"] == chosen]
    if rows.empty:
        raise ForecastError(f"the backtest has no predictions of model {chosen!r}")
    result = rows.loc[:, ["role", *KEY_COLUMNS]].reset_index(drop=True)
    result["y_true"] = rows["actual"].to_numpy(dtype=float)
    result["y_pred"] = rows["prediction" if model is not None else "persistence"].to_numpy(
        dtype=float
    )
    return result


# --------------------------------------------------------------------------- table


def cents(values: np.ndarray | pd.Series) -> np.ndarray:
    """Dollars rounded to cents (and -0.0 written as 0)."""
    return np.round(np.asarray(values, dtype=float), 2) + 0.0


def forecast_table(
    features: pd.DataFrame,
    prediction: np.ndarray,
    persistence: np.ndarray,
    intervals: MondrianIntervals,
) -> pd.DataFrame:
    """The forecast: keys of year T+1, each row's interval group (by the calibration's
    grouping column), the persistence value, the prediction and its interval at every level
    (``lower_<level>``, ``upper_<level>``, narrowest first), all money in cents.

    Raises:
        ForecastError: a prediction or persistence value is not finite.
    """
    table = features.loc[:, list(KEY_COLUMNS)].reset_index(drop=True)
    group_values = features[intervals.binning.column].to_numpy()
    table["interval_group"] = intervals.group_labels(group_values)
    table["persistence"] = np.asarray(persistence, dtype=float)
    table["prediction"] = np.asarray(prediction, dtype=float)
    bad = ~np.isfinite(table[["persistence", "prediction"]].to_numpy()).all(axis=1)
    if bad.any():
        first = table.loc[bad, list(KEY_COLUMNS)].iloc[0].to_dict()
        raise ForecastError(f"{int(bad.sum())} forecast rows are not finite, e.g. {first}")
    for level, (lower, upper) in intervals.bounds(table["prediction"], group_values).items():
        low_column, high_column = bound_columns(level)
        table[low_column], table[high_column] = cents(lower), cents(upper)
    table["persistence"], table["prediction"] = cents(persistence), cents(prediction)
    return table


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class IntervalSettings:
    """``forecast.interval_method``, ``interval_levels`` and ``interval_groups`` (the column
    rows are grouped by and its bins, or ``None``: the column's values are the groups)."""

    method: str
    levels: tuple[float, ...]
    column: str
    bins: int | None

    @classmethod
    def from_params(cls, forecast: Mapping[str, Any]) -> IntervalSettings:
        """From the validated config's ``forecast`` section."""
        groups = forecast["interval_groups"]
        return cls(
            method=forecast["interval_method"],
            levels=tuple(sorted(float(level) for level in forecast["interval_levels"])),
            column=groups["column"],
            bins=None if groups["bins"] is None else int(groups["bins"]),
        )


def with_group_column(predictions: pd.DataFrame, frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Held-out ``predictions`` (keys, y_true, y_pred) with the grouping ``column`` of their
    rows in the modelling data ``frame`` (joined by key, unless they carry it already).

    Raises:
        ForecastError: the column is in neither, or a prediction's row is not in ``frame``.
    """
    if column in predictions.columns:
        return predictions
    if column not in frame.columns:
        raise ForecastError(
            f"config key forecast.interval_groups.column: {column!r} is not a column of the "
            "modelling data"
        )
    keys = list(KEY_COLUMNS)
    joined = predictions.merge(
        frame.loc[:, [*keys, column]], on=keys, how="left", validate="many_to_one", indicator=True
    )
    lost = int((joined.pop("_merge") != "both").sum())
    if lost:
        raise ForecastError(f"{lost} held-out predictions have no row in the modelling data")
    return joined


def split_conformal(calibration: pd.DataFrame, settings: IntervalSettings) -> MondrianIntervals:
    """Plain split-conformal intervals (one quantile per level for every row), the reference
    the group-conditional intervals are measured against."""
    return MondrianIntervals.calibrate(
        calibration["y_true"],
        calibration["y_pred"],
        np.zeros(len(calibration)),
        method=settings.method,
        levels=settings.levels,
        column=settings.column,
        bins=None,
    )


def calibrate_intervals(
    calibration: pd.DataFrame,
    settings: IntervalSettings,
    groups_of: MondrianIntervals | None = None,
) -> MondrianIntervals:
    """Group-conditional intervals calibrated on held-out rows (y_true, y_pred and the grouping
    column); in the groups of ``groups_of`` (its binning) if given, else in bins of these
    rows."""
    return MondrianIntervals.calibrate(
        calibration["y_true"],
        calibration["y_pred"],
        calibration[settings.column],
        method=settings.method,
        levels=settings.levels,
        column=settings.column,
        bins=settings.bins,
        binning=None if groups_of is None else groups_of.binning,
    )


def assess_intervals(
    intervals: MondrianIntervals, reference: MondrianIntervals, assessment: pd.DataFrame
) -> dict[str, Any]:
    """How ``intervals`` (and the plain split-conformal ``reference``) did on held-out rows
    never used to calibrate them (y_true, y_pred, year and the grouping column): per level,
    coverage, mean Winkler score and median width per group and for all rows (``by_group``,
    ``split_conformal_by_group``), and per year (``by_year``); and the quantiles per group and
    level of ``intervals`` (``quantiles``), so the coverage can be recomputed."""
    column = intervals.binning.column
    labels = intervals.group_labels(assessment[column])
    bounds = intervals.bounds(assessment["y_pred"], assessment[column])
    reference_bounds = reference.bounds(assessment["y_pred"], np.zeros(len(assessment)))
    years = assessment["year"].astype(int).astype(str).to_numpy()
    return {
        "years": sorted(int(y) for y in set(years)),
        "rows": len(assessment),
        "quantiles": {
            group: figures["quantiles"]
            for group, figures in intervals.to_json()["by_group"].items()
        },
        "by_group": assessment_json(
            interval_assessment(assessment["y_true"], bounds, labels, intervals.groups)
        ),
        "split_conformal_by_group": assessment_json(
            interval_assessment(assessment["y_true"], reference_bounds, labels, intervals.groups)
        ),
        "by_year": assessment_json(
            interval_assessment(assessment["y_true"], bounds, years, sorted(set(years)))
        ),
    }
