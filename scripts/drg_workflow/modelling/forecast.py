"""The next-year forecast: the features of year T+1, split-conformal prediction intervals and
the forecast table.

The features of the year after the data's last year T come from the workflow's own
transformations, never from a copy of them: placeholder rows for T+1 (one per (facility, DRG)
of year T) are appended to the version the lags are taken from, and the chain's steps from
``lag_columns`` to the modelling data version are applied to it, exactly as they made the
modelling data. The rows of T+1 are then the modelling data of a year not yet seen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from drg_workflow.errors import DrgWorkflowError
from drg_workflow.transformations import apply_transformation

from .data import KEY_COLUMNS
from .target_form import signed_exp, signed_log

#: The forecast table's columns after the keys (the interval bounds at the configured level).
FORECAST_VALUE_COLUMNS: tuple[str, ...] = (
    "persistence",
    "prediction",
    "interval_lower",
    "interval_upper",
)
INTERVAL_METHODS: tuple[str, ...] = ("signed_log", "absolute")


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


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class ConformalInterval:
    """A split-conformal prediction interval calibrated on held-out residuals.

    ``signed_log``: the residuals are differences of signed logs (:func:`.target_form.
    signed_log`), so the interval ``[sexp(slog(p) - q), sexp(slog(p) + q)]`` is wider for
    larger predictions, as the errors of a heavy-tailed target are; ``absolute``: residuals in
    dollars, ``[p - q, p + q]``. ``quantile`` is the ``ceil((n + 1) * level) / n`` empirical
    quantile of the ``n`` absolute calibration residuals (infinite when n is too small), which
    gives coverage >= level for exchangeable rows.
    """

    method: str
    level: float
    quantile: float
    n_calibration: int

    @classmethod
    def calibrate(
        cls,
        y_true: np.ndarray | pd.Series,
        y_pred: np.ndarray | pd.Series,
        method: str,
        level: float,
    ) -> ConformalInterval:
        """Calibrate on held-out ``y_true`` and predictions ``y_pred`` (e.g. validation)."""
        if method not in INTERVAL_METHODS:
            raise ForecastError(
                f"unknown interval method {method!r}; known: {', '.join(INTERVAL_METHODS)}"
            )
        if not 0 < level < 1:
            raise ForecastError(f"interval level must lie in (0, 1), not {level}")
        residuals = np.abs(_scale(y_true, method) - _scale(y_pred, method))
        n = len(residuals)
        if n == 0:
            raise ForecastError("no calibration rows for the prediction interval")
        rank = math.ceil((n + 1) * level)
        quantile = math.inf if rank > n else float(np.sort(residuals)[rank - 1])
        return cls(method=method, level=float(level), quantile=quantile, n_calibration=n)

    def bounds(self, y_pred: np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """The interval ``(lower, upper)`` around each prediction (always containing it)."""
        scaled = _scale(y_pred, self.method)
        lower, upper = scaled - self.quantile, scaled + self.quantile
        if self.method == "signed_log":
            return signed_exp(lower), signed_exp(upper)
        return lower, upper

    def coverage(self, y_true: np.ndarray | pd.Series, y_pred: np.ndarray | pd.Series) -> float:
        """The share of rows whose ``y_true`` lies in the interval around ``y_pred``."""
        lower, upper = self.bounds(y_pred)
        truth = np.asarray(y_true, dtype=float)
        return float(np.mean((truth >= lower) & (truth <= upper)))

    def to_json(self) -> dict:
        return asdict(self)


def _scale(values: np.ndarray | pd.Series, method: str) -> np.ndarray:
    return signed_log(values) if method == "signed_log" else np.asarray(values, dtype=float)


def backtest_residual_rows(predictions: pd.DataFrame, model: str | None) -> pd.DataFrame:
    """The rows of the backtest's out-of-sample predictions (see
    :data:`.backtest.PREDICTION_COLUMNS`) that calibrate and test the forecast's interval:
    ``model``'s predictions, or persistence's (of any one model's rows) for ``None``; columns
    year, role, y_true, y_pred.

    Raises:
        ForecastError: the predictions hold no row of ``model``.
    """
    chosen = model if model is not None else str(predictions["model"].iloc[0])
    rows = predictions.loc[predictions["model"] == chosen]
    if rows.empty:
        raise ForecastError(f"the backtest has no predictions of model {chosen!r}")
    return pd.DataFrame(
        {
            "year": rows["year"].to_numpy(),
            "role": rows["role"].to_numpy(),
            "y_true": rows["actual"].to_numpy(dtype=float),
            "y_pred": rows["prediction" if model is not None else "persistence"].to_numpy(
                dtype=float
            ),
        }
    )


def coverage_by_year(rows: pd.DataFrame, interval: ConformalInterval) -> dict[str, float]:
    """The interval's coverage on each year of ``rows`` (columns year, y_true, y_pred), plus
    ``"all"``; empty without rows (no reporting origin to measure it on)."""
    if rows.empty:
        return {}
    result = {
        str(int(year)): interval.coverage(part["y_true"], part["y_pred"])
        for year, part in rows.groupby("year", sort=True)
    }
    result["all"] = interval.coverage(rows["y_true"], rows["y_pred"])
    return result


def forecast_table(
    features: pd.DataFrame,
    prediction: np.ndarray,
    persistence: np.ndarray,
    interval: ConformalInterval,
) -> pd.DataFrame:
    """The forecast: keys of year T+1, the persistence value, the prediction and its interval.

    Raises:
        ForecastError: a prediction or persistence value is not finite.
    """
    table = features.loc[:, list(KEY_COLUMNS)].reset_index(drop=True)
    table["persistence"] = np.asarray(persistence, dtype=float)
    table["prediction"] = np.asarray(prediction, dtype=float)
    table["interval_lower"], table["interval_upper"] = interval.bounds(table["prediction"])
    bad = ~np.isfinite(table[["persistence", "prediction"]].to_numpy()).all(axis=1)
    if bad.any():
        first = table.loc[bad, list(KEY_COLUMNS)].iloc[0].to_dict()
        raise ForecastError(f"{int(bad.sum())} forecast rows are not finite, e.g. {first}")
    return table
