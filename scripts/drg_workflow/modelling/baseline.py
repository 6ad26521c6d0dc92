"""Naive persistence baseline: next year's target equals last year's.

It is evaluated exactly like the models (same metrics, same year folds, same splits), so the
comparison tells whether tuning bought anything over "nothing changes".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from drg_workflow.names import BASELINE_NAME, HELD_OUT_SPLITS

from .data import ModellingDataError, year_folds
from .metrics import flatten_metrics, mae, regression_metrics, rmse
from .settings import FeatureSettings


def baseline_rule(features: FeatureSettings) -> str:
    """What the baseline predicts, in words naming the columns (logged as its MLflow param)."""
    return f"{features.target_lag}, else {features.target_rolling}"


def persistence_values(frame: pd.DataFrame, lag: str, rolling: str) -> np.ndarray:
    """Column ``lag``, falling back to column ``rolling`` where the lag is missing.

    Raises:
        ModellingDataError: a column is missing, or a row has neither value.
    """
    missing_columns = [c for c in (lag, rolling) if c not in frame.columns]
    if missing_columns:
        raise ModellingDataError(
            f"persistence: the data has no column {' or '.join(missing_columns)}"
        )
    previous = frame[lag].astype(float)
    values = previous.where(previous.notna(), frame[rolling].astype(float))
    n_missing = int(values.isna().sum())
    if n_missing:
        raise ModellingDataError(f"persistence: {n_missing} rows have neither {lag} nor {rolling}")
    return values.to_numpy()


def baseline_predictions(df: pd.DataFrame, features: FeatureSettings) -> np.ndarray:
    """Predict the target's lag column, falling back to its rolling-mean column where the lag
    is missing.

    Calendar lags leave the lag missing when year t-1 is absent; the rolling mean over the
    configured window then holds the mean of the earlier years that are present.

    Raises:
        ModellingDataError: a column is missing (the message names lags.rolling_window) or a
            row has neither value (rolling_columns should have dropped it).
    """
    try:
        return persistence_values(df, features.target_lag, features.target_rolling)
    except ModellingDataError as error:
        raise ModellingDataError(
            f"baseline: {error} (lags.rolling_window is {features.rolling_window})"
        ) from None


def baseline_cv_scores(
    df: pd.DataFrame, n_folds: int, features: FeatureSettings
) -> dict[str, list[float]]:
    """RMSE and MAE of the baseline on each validation year of :func:`year_folds` over ``df``
    (train): ``{"rmse": [...], "mae": [...]}``.

    The baseline does not train, so only the validation rows of each fold matter; using the same
    folds keeps ``cv_rmse`` and ``cv_mae`` comparable with the tuned models'.
    """
    pred = baseline_predictions(df, features)
    y = df[features.target].to_numpy(dtype=float)
    folds = [val_idx for _, val_idx in year_folds(df["year"].to_numpy(), n_folds)]
    return {
        "rmse": [rmse(y[val_idx], pred[val_idx]) for val_idx in folds],
        "mae": [mae(y[val_idx], pred[val_idx]) for val_idx in folds],
    }


def evaluate_baseline(
    splits: Mapping[str, pd.DataFrame], n_folds: int, features: FeatureSettings
) -> dict[str, Any]:
    """A comparison row for the baseline (see :func:`.comparison.build_comparison`).

    ``splits`` holds the ``train``, ``validation`` and ``test`` frames of
    :func:`.data.split_by_year`.
    """
    target = features.target
    row: dict[str, Any] = {"model": BASELINE_NAME}
    cv = baseline_cv_scores(splits["train"], n_folds, features)
    row["cv_rmse"], row["cv_mae"] = float(np.mean(cv["rmse"])), float(np.mean(cv["mae"]))
    # Persistence against itself.
    row["cv_loss_ratio"] = 1.0
    held_out = {
        split: regression_metrics(
            splits[split][target], baseline_predictions(splits[split], features)
        )
        for split in HELD_OUT_SPLITS
    }
    row.update(flatten_metrics(held_out))
    row.update(n_trials_complete=0, n_trials_pruned=0, best_params={})
    return row
