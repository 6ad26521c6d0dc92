"""Regression metrics shared by the models, the baseline and cross-validation."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

# scikit-learn's metrics are imported where they are computed: importing scikit-learn takes
# about 2 s, and jobs that only read or compare metrics (split_years, compare_models) import
# this module without computing any.

#: How a split's metrics are prefixed in MLflow and in the comparison (val_rmse, test_mae).
SPLIT_PREFIXES = {"validation": "val", "test": "test"}


def regression_metrics(
    y_true: np.ndarray | pd.Series, y_pred: np.ndarray | pd.Series
) -> dict[str, float]:
    """RMSE, MAE and R^2 as plain floats: ``{"rmse": ..., "mae": ..., "r2": ...}``.

    Raises:
        ValueError: lengths differ, inputs are empty or contain NaN / infinity (a silent NaN
            metric would hide a broken prediction).
    """
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    t, p = _checked(y_true, y_pred)
    return {
        "rmse": float(root_mean_squared_error(t, p)),
        "mae": float(mean_absolute_error(t, p)),
        "r2": float(r2_score(t, p)),
    }


def rmse(y_true: np.ndarray | pd.Series, y_pred: np.ndarray | pd.Series) -> float:
    """Root mean squared error alone (same checks as :func:`regression_metrics`; no R^2, which
    is undefined on a single row)."""
    from sklearn.metrics import root_mean_squared_error

    t, p = _checked(y_true, y_pred)
    return float(root_mean_squared_error(t, p))


def mae(y_true: np.ndarray | pd.Series, y_pred: np.ndarray | pd.Series) -> float:
    """Mean absolute error alone (same checks as :func:`regression_metrics`)."""
    from sklearn.metrics import mean_absolute_error

    t, p = _checked(y_true, y_pred)
    return float(mean_absolute_error(t, p))


def error_cap(
    y_true: np.ndarray | pd.Series, y_reference: np.ndarray | pd.Series, quantile: float
) -> float:
    """The ``quantile`` of the reference's absolute errors (e.g. persistence's): the largest
    error a row counts with in :func:`capped_rmse`. ``quantile`` 1 or more: no cap (infinity).
    """
    if quantile >= 1:
        return float("inf")
    t, r = _checked(y_true, y_reference)
    return float(np.quantile(np.abs(r - t), quantile))


def capped_rmse(
    y_true: np.ndarray | pd.Series, y_pred: np.ndarray | pd.Series, cap: float
) -> float:
    """RMSE with every row's absolute error counted as at most ``cap``.

    Dollar errors are heavy-tailed: one series' jump can make most of a year's squared error,
    and an RMSE over a few years then ranks models by that one series. Capping each row's error
    at a high quantile of persistence's errors (:func:`error_cap`) keeps every row's sign of
    better or worse but not its weight beyond the cap.
    """
    t, p = _checked(y_true, y_pred)
    return float(np.sqrt(np.mean(np.minimum(np.abs(p - t), cap) ** 2)))


def _checked(
    y_true: np.ndarray | pd.Series, y_pred: np.ndarray | pd.Series
) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {t.shape} vs {p.shape}")
    if t.size == 0:
        raise ValueError("cannot compute metrics on empty arrays")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("y_true / y_pred contain NaN or infinite values")
    return t, p


def flatten_metrics(by_split: Mapping[str, Mapping[str, float]], **cv: float) -> dict[str, float]:
    """``{"validation": {"rmse": 1}}`` -> ``{"val_rmse": 1}``, the names used in MLflow and
    in the comparison table, plus the cross-validation figures given as keywords (``cv_rmse``,
    ``cv_mae``, ...)."""
    flat = {
        f"{SPLIT_PREFIXES.get(split, split)}_{name}": float(value)
        for split, metrics in by_split.items()
        for name, value in metrics.items()
    }
    flat.update({name: float(value) for name, value in cv.items()})
    return flat
