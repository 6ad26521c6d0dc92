"""The form in which a model learns the target, applied inside the estimator.

``modelling.target_form`` (config) chooses one of :data:`TARGET_FORMS`:

- ``raw``: the target in dollars, as it is;
- ``log``: its signed log, ``sign(y) * log(1 + |y|)``, so a few huge rows no longer decide
  every split or coefficient;
- ``relative``: the signed log of the target minus the signed log of its persistence value
  (last year's target, else its rolling mean: the baseline's prediction), i.e. the change over
  last year. Trees cannot extrapolate yearly growth beyond the train years; a change can be.

Profits can be zero or negative, so the log is the *signed* log, which is defined everywhere
and maps 0 to 0. :class:`TargetFormRegressor` wraps any regressor: it fits the regressor on the
target in its form and turns predictions back into dollars, so cross-validation, validation and
test metrics stay in dollars, and the model logged to MLflow predicts dollars from the modelling
data's columns directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone

from .baseline import persistence_values
from .data import ModellingDataError

if TYPE_CHECKING:
    from .settings import FeatureSettings

#: The forms ``modelling.target_form`` accepts (the schema lists the same values).
TARGET_FORMS: tuple[str, ...] = ("raw", "log", "relative")


def signed_log(values: np.ndarray | pd.Series) -> np.ndarray:
    """``sign(x) * log1p(|x|)``: a log that keeps the sign and maps 0 to 0."""
    x = np.asarray(values, dtype=float)
    return np.sign(x) * np.log1p(np.abs(x))


def signed_exp(values: np.ndarray | pd.Series) -> np.ndarray:
    """The inverse of :func:`signed_log`: ``sign(z) * expm1(|z|)``."""
    z = np.asarray(values, dtype=float)
    return np.sign(z) * np.expm1(np.abs(z))


def _check_form(target_form: str) -> None:
    if target_form not in TARGET_FORMS:
        raise ModellingDataError(
            f"unknown target form {target_form!r}; known: {', '.join(TARGET_FORMS)}"
        )


def to_target_form(
    y: np.ndarray | pd.Series, target_form: str, reference: np.ndarray | None = None
) -> np.ndarray:
    """The target ``y`` (dollars) in ``target_form``; ``reference`` (the persistence values)
    is needed by ``relative`` only."""
    _check_form(target_form)
    if target_form == "raw":
        return np.asarray(y, dtype=float)
    if target_form == "log":
        return signed_log(y)
    return signed_log(y) - signed_log(reference)


def from_target_form(
    z: np.ndarray | pd.Series, target_form: str, reference: np.ndarray | None = None
) -> np.ndarray:
    """Dollars from values in ``target_form``: the inverse of :func:`to_target_form`."""
    _check_form(target_form)
    if target_form == "raw":
        return np.asarray(z, dtype=float)
    if target_form == "log":
        return signed_exp(z)
    return signed_exp(np.asarray(z, dtype=float) + signed_log(reference))


class TargetFormRegressor(RegressorMixin, BaseEstimator):
    """A regressor that learns the target in ``target_form`` and predicts dollars.

    Parameters:
        regressor: the scikit-learn regressor (or Pipeline) fitted on the transformed target;
            cloned on fit.
        target_form: one of :data:`TARGET_FORMS`.
        reference_columns: the persistence columns of ``X`` (the target's lag, then its
            rolling mean as the fallback where the lag is missing), used by ``relative``.

    Hyper-parameters of the wrapped regressor are set as ``regressor__<name>``;
    :func:`.models.configure` routes the config's bare names there.
    """

    def __init__(self, regressor: Any, target_form: str, reference_columns: Sequence[str]):
        self.regressor = regressor
        self.target_form = target_form
        self.reference_columns = reference_columns

    def _reference(self, X: pd.DataFrame) -> np.ndarray | None:
        if self.target_form != "relative":
            return None
        lag, rolling = self.reference_columns
        return persistence_values(X, lag, rolling)

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> TargetFormRegressor:
        """Fit a clone of ``regressor`` on ``y`` in ``target_form``."""
        z = to_target_form(y, self.target_form, self._reference(X))
        self.regressor_ = clone(self.regressor).fit(X, z)
        if hasattr(self.regressor_, "n_features_in_"):
            self.n_features_in_ = self.regressor_.n_features_in_
        if hasattr(self.regressor_, "feature_names_in_"):
            self.feature_names_in_ = self.regressor_.feature_names_in_
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predictions in dollars."""
        return from_target_form(self.regressor_.predict(X), self.target_form, self._reference(X))


def wrap_target_form(
    regressor: BaseEstimator, target_form: str, features: FeatureSettings
) -> TargetFormRegressor:
    """``regressor`` learning the target in ``target_form``; the persistence columns are the
    target's lag and rolling-mean columns of ``features``."""
    _check_form(target_form)
    return TargetFormRegressor(
        regressor, target_form, (features.target_lag, features.target_rolling)
    )
