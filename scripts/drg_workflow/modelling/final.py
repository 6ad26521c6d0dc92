"""Final refit with the chosen parameters, evaluation, predictions and importances."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.inspection import permutation_importance

from .data import KEY_COLUMNS
from .metrics import flatten_metrics, regression_metrics
from .models import final_estimator, model_estimator
from .settings import ModelSettings
from .tuning import merge_params

__all__ = ["flatten_metrics"]  # re-exported: where the final fit's metrics come from


def fit_final_model(
    model: ModelSettings,
    best_params: Mapping[str, Any],
    X_train: pd.DataFrame,
    y_train: pd.Series | np.ndarray,
) -> BaseEstimator:
    """Fit ``model`` with its fixed parameters overlaid by ``best_params`` on the training
    split, learning the target in its target form (it predicts dollars).

    Deterministic for the model's ``random_state`` (unlike the parallel search that chose the
    parameters). Fitting on train only keeps the validation metrics an honest forecast of an
    unseen year, comparable with the baseline's.
    """
    estimator = model_estimator(model, merge_params(model.fixed_params, best_params))
    return estimator.fit(X_train, np.asarray(y_train, dtype=float))


def evaluate_model(
    estimator: BaseEstimator, data: Mapping[str, tuple[pd.DataFrame, pd.Series | np.ndarray]]
) -> dict[str, dict[str, float]]:
    """Metrics per split: ``{"validation": {"rmse":..., "mae":..., "r2":...}, "test": {...}}``."""
    return {split: regression_metrics(y, estimator.predict(X)) for split, (X, y) in data.items()}


def predictions_frame(
    frame: pd.DataFrame, split: str, y_true: pd.Series | np.ndarray, y_pred: np.ndarray
) -> pd.DataFrame:
    """Predictions with their keys: year, facility_id, apr_drg_code, split, y_true, y_pred."""
    out = frame.loc[:, list(KEY_COLUMNS)].reset_index(drop=True)
    out["split"] = split
    out["y_true"] = np.asarray(y_true, dtype=float)
    out["y_pred"] = np.asarray(y_pred, dtype=float)
    return out


def predict_splits(
    estimator: BaseEstimator,
    frames: Mapping[str, pd.DataFrame],
    features: list[str],
    target: str,
) -> pd.DataFrame:
    """:func:`predictions_frame` of every split in ``frames``, concatenated in their order."""
    parts = [
        predictions_frame(df, split, df[target], estimator.predict(df.loc[:, features]))
        for split, df in frames.items()
    ]
    return pd.concat(parts, ignore_index=True)


def permutation_importances(
    estimator: BaseEstimator,
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    n_repeats: int,
    random_state: int,
    max_samples: float,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Permutation importance on held-out data (validation): the RMSE increase when a feature's
    values are shuffled, on a random ``max_samples`` share of the rows (drawn once, without
    replacement, for every feature and repeat). Columns feature, importance_mean,
    importance_std; sorted descending.

    The rows are drawn here, not by scikit-learn's own ``max_samples``: it scores the shuffled
    subsample against the unshuffled score of *all* rows, and an RMSE of a heavy-tailed target
    differs between a subsample and the whole by more than most features matter (on the
    default data every feature but one came out at about -$1.8M, a column the model ignores
    included). Against the same rows, a feature the model does not use scores exactly 0.
    """
    y = np.asarray(y, dtype=float)
    if max_samples < 1.0:
        rng = np.random.default_rng(random_state)
        n_rows = max(1, int(max_samples * len(X)))
        rows = np.sort(rng.choice(len(X), size=n_rows, replace=False))
        X, y = X.iloc[rows], y[rows]
    result = permutation_importance(
        estimator,
        X,
        y,
        scoring="neg_root_mean_squared_error",
        n_repeats=n_repeats,
        random_state=random_state,
        n_jobs=n_jobs,
    )
    df = pd.DataFrame(
        {
            "feature": list(X.columns),
            "importance_mean": result.importances_mean,
            "importance_std": result.importances_std,
        }
    )
    return df.sort_values("importance_mean", ascending=False, ignore_index=True)


def impurity_importances(estimator: BaseEstimator, features: list[str]) -> pd.DataFrame | None:
    """``feature_importances_`` of tree models as feature, importance (sorted descending);
    ``None`` for models without it (Ridge, HistGradientBoosting)."""
    values = getattr(final_estimator(estimator), "feature_importances_", None)
    if values is None:
        return None
    df = pd.DataFrame({"feature": features, "importance": np.asarray(values, dtype=float)})
    return df.sort_values("importance", ascending=False, ignore_index=True)
