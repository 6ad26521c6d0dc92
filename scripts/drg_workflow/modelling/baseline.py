"""Naive persistence baseline: next year's target equals last year's.

It is evaluated exactly like the models (same metrics, same year folds, same splits), so the
comparison tells whether tuning bought anything over "nothing changes".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .data import TARGET, year_folds
from .metrics import regression_metrics, rmse

BASELINE_NAME = "baseline"


def baseline_predictions(df: pd.DataFrame, target: str = TARGET) -> np.ndarray:
    """Predict ``<target>_lag1``, falling back to ``<target>_rolling2`` where lag1 is NaN.

    Calendar lags leave lag1 missing when year t-1 is absent; rolling2 then holds t-2's value.

    Raises:
        ValueError: a row has neither value (v12 should have dropped it).
    """
    lag1 = df[f"{target}_lag1"].astype(float)
    pred = lag1.where(lag1.notna(), df[f"{target}_rolling2"].astype(float))
    n_missing = int(pred.isna().sum())
    if n_missing:
        raise ValueError(
            f"baseline: {n_missing} rows have neither {target}_lag1 nor {target}_rolling2"
        )
    return pred.to_numpy()


def baseline_cv_scores(df: pd.DataFrame, n_folds: int, target: str = TARGET) -> list[float]:
    """RMSE of the baseline on each validation year of :func:`year_folds` over ``df`` (train).

    The baseline does not train, so only the validation rows of each fold matter; using the same
    folds keeps ``cv_rmse`` comparable with the tuned models'.
    """
    pred = baseline_predictions(df, target)
    y = df[target].to_numpy(dtype=float)
    return [
        rmse(y[val_idx], pred[val_idx]) for _, val_idx in year_folds(df["year"].to_numpy(), n_folds)
    ]


def evaluate_baseline(
    splits: Mapping[str, pd.DataFrame], n_folds: int, target: str = TARGET
) -> dict[str, Any]:
    """A comparison row for the baseline (see :func:`.comparison.build_comparison`).

    ``splits`` holds the ``train``, ``validation`` and ``test`` frames of
    :func:`.data.split_by_year`.
    """
    row: dict[str, Any] = {"model": BASELINE_NAME}
    row["cv_rmse"] = float(np.mean(baseline_cv_scores(splits["train"], n_folds, target)))
    for split, prefix in (("validation", "val"), ("test", "test")):
        frame = splits[split]
        m = regression_metrics(frame[target], baseline_predictions(frame, target))
        row.update({f"{prefix}_{k}": v for k, v in m.items()})
    row.update(n_trials_complete=0, n_trials_pruned=0, best_params={})
    return row
