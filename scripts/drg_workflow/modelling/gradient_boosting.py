"""``HistGradientBoosting``: scikit-learn's ``HistGradientBoostingRegressor`` that takes a
feature with no value in its training rows.

Gradient boosting handles missing values natively, but its binning (scikit-learn 1.9) fails on
a column that is missing in *every* training row ("window shape cannot be larger than input
array shape"). The series-history features make such columns in the earliest tuning folds:
a fold trained on the data's first modelling year alone has no series with three earlier years,
so ``<target>_lag3`` and the volatility of yearly changes are missing throughout. Such a column
can teach the model nothing; this class fits and predicts with it set to 0 (a constant, which no
split can use), so the same column with values at prediction time changes nothing either.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor


def _with_columns_zeroed(X: Any, columns: np.ndarray) -> Any:
    """``X`` (a DataFrame or an array) with the columns at positions ``columns`` set to 0."""
    if not len(columns):
        return X
    if isinstance(X, pd.DataFrame):
        X = X.copy()
        X.iloc[:, columns] = 0.0
        return X
    X = np.array(X, dtype=float)
    X[:, columns] = 0.0
    return X


class HistGradientBoosting(HistGradientBoostingRegressor):
    """``HistGradientBoostingRegressor`` that fits and predicts with the columns missing in every
    training row set to 0 (``unobserved_columns_``), instead of failing on them."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> HistGradientBoosting:
        values = X.to_numpy(dtype=float) if isinstance(X, pd.DataFrame) else np.asarray(X, float)
        self.unobserved_columns_ = np.flatnonzero(np.isnan(values).all(axis=0))
        return super().fit(
            _with_columns_zeroed(X, self.unobserved_columns_), y, sample_weight=sample_weight
        )

    def predict(self, X: Any) -> np.ndarray:
        return super().predict(_with_columns_zeroed(X, self.unobserved_columns_))
