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

**Fit what is scored.** Models are scored in dollars, but the squared error of a log weighs a
$20k series like a $20M one. Every model therefore has two parameters of its own (set in its
``fixed_params`` or tuned in its ``search_space``, :data:`TARGET_FORM_PARAMS`):
``loss_weight_power``: in the ``log`` and ``relative`` forms each row's loss is weighted by
``|last year's value| ** loss_weight_power`` (1 makes a row's weight proportional to its dollar
size, since a log error e costs about ``|value| * e`` dollars); and ``max_log_change``, tuned
from 0 in every search space: predictions are bounded to last year's value give or take
``max_log_change`` in signed-log terms, so ``max_log_change = 0`` is persistence exactly (the
region of every search space that reduces to it, :data:`PERSISTENCE_PARAMS`) and small values
keep a single wild prediction of a huge series from deciding the dollar RMSE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone

from drg_workflow.signed_log import signed_exp, signed_log

from .baseline import persistence_values
from .data import ModellingDataError
from .model_params import fit_threads

if TYPE_CHECKING:
    from .settings import FeatureSettings

#: The forms ``modelling.target_form`` accepts (the schema lists the same values).
TARGET_FORMS: tuple[str, ...] = ("raw", "log", "relative")
#: Forms whose loss is weighted by last year's value (``raw`` is in dollars already).
WEIGHTED_FORMS: tuple[str, ...] = ("log", "relative")


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


def loss_weights(reference: np.ndarray, power: float) -> np.ndarray | None:
    """Each row's weight in the loss: ``|reference| ** power`` scaled to mean 1 (so a
    regularisation strength means the same as unweighted), or ``None`` (unweighted) for power
    0 or when every weight would be 0."""
    if power == 0:
        return None
    weights = np.abs(np.asarray(reference, dtype=float)) ** power
    mean = float(weights.mean()) if weights.size else 0.0
    if not np.isfinite(mean) or mean <= 0:
        return None
    return weights / mean


def fit_weighted(
    regressor: BaseEstimator, X: pd.DataFrame, y: np.ndarray, weights: np.ndarray | None
) -> BaseEstimator:
    """``regressor.fit(X, y)`` with ``weights`` as its sample weights (for a Pipeline, its
    last step's)."""
    from sklearn.pipeline import Pipeline

    final = regressor.steps[-1][1] if isinstance(regressor, Pipeline) else regressor
    # The fit alone runs in the process's fit threads (.model_params.set_fit_threads): a forest
    # left at n_jobs=None builds its trees in that many, then is put back to None, so its
    # predictions stay single-threaded and its parameters are the configured ones.
    threaded = "n_jobs" in final.get_params(deep=False) and final.n_jobs is None
    if threaded:
        final.set_params(n_jobs=fit_threads())
    try:
        if weights is None:
            return regressor.fit(X, y)
        if isinstance(regressor, Pipeline):
            return regressor.fit(X, y, **{f"{regressor.steps[-1][0]}__sample_weight": weights})
        return regressor.fit(X, y, sample_weight=weights)
    finally:
        if threaded:
            final.set_params(n_jobs=None)


class TargetFormRegressor(RegressorMixin, BaseEstimator):
    """A regressor that learns the target in ``target_form`` and predicts dollars.

    Parameters:
        regressor: the scikit-learn regressor (or Pipeline) fitted on the transformed target;
            cloned on fit.
        target_form: one of :data:`TARGET_FORMS`.
        reference_columns: the persistence columns of ``X`` (the target's lag, then its
            rolling mean as the fallback where the lag is missing): the reference of
            ``relative``, the loss weights and the bound of the predictions.
        loss_weight_power: in the forms of :data:`WEIGHTED_FORMS`, each row's loss is weighted
            by ``|persistence value| ** loss_weight_power`` (:func:`loss_weights`); 0 fits
            unweighted.
        max_log_change: the largest change over the persistence value a prediction may make,
            in signed-log units (0.2: at most about 22% up or 18% down); 0 predicts persistence
            exactly; ``None`` leaves predictions unbounded.
        dropped_columns: columns of ``X`` the regressor never sees (the model's
            ``drop_feature_groups``); the persistence columns are read from ``X`` as it is.

    Hyper-parameters of the wrapped regressor are set as ``regressor__<name>``;
    :func:`.models.configure` routes the config's bare names there.
    """

    def __init__(
        self,
        regressor: Any,
        target_form: str,
        reference_columns: Sequence[str],
        loss_weight_power: float = 0.0,
        max_log_change: float | None = None,
        dropped_columns: Sequence[str] = (),
    ):
        self.regressor = regressor
        self.target_form = target_form
        self.reference_columns = reference_columns
        self.loss_weight_power = loss_weight_power
        self.max_log_change = max_log_change
        self.dropped_columns = dropped_columns

    def _regressor_input(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` without :attr:`dropped_columns`."""
        if not self.dropped_columns:
            return X
        missing = [column for column in self.dropped_columns if column not in X.columns]
        if missing:
            raise ModellingDataError(
                f"columns {missing} to leave out (drop_feature_groups) are not in the data: "
                "they come from series_history"
            )
        return X.drop(columns=list(self.dropped_columns))

    def _persistence(self, X: pd.DataFrame) -> np.ndarray:
        lag, rolling = self.reference_columns
        return persistence_values(X, lag, rolling)

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> TargetFormRegressor:
        """Fit a clone of ``regressor`` on ``y`` in ``target_form`` (weighted, see
        ``loss_weight_power``)."""
        if self.max_log_change is not None and not self.max_log_change >= 0:
            raise ModellingDataError(f"max_log_change must be >= 0, not {self.max_log_change}")
        if self.max_log_change == 0:
            # Bounded to persistence: predictions never use the regressor, so it is not fitted
            # (the persistence trial of every study costs nothing).
            self.regressor_ = clone(self.regressor)
            used = self._regressor_input(X)
            self.n_features_in_ = used.shape[1]
            self.feature_names_in_ = np.asarray(used.columns, dtype=object)
            return self
        needs_reference = self.target_form == "relative" or (
            self.target_form in WEIGHTED_FORMS and self.loss_weight_power != 0
        )
        reference = self._persistence(X) if needs_reference else None
        z = to_target_form(y, self.target_form, reference)
        weights = (
            loss_weights(reference, self.loss_weight_power)
            if self.target_form in WEIGHTED_FORMS and reference is not None
            else None
        )
        self.regressor_ = fit_weighted(clone(self.regressor), self._regressor_input(X), z, weights)
        if hasattr(self.regressor_, "n_features_in_"):
            self.n_features_in_ = self.regressor_.n_features_in_
        if hasattr(self.regressor_, "feature_names_in_"):
            self.feature_names_in_ = self.regressor_.feature_names_in_
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predictions in dollars, within ``max_log_change`` of the persistence value."""
        bounded = self.max_log_change is not None
        persistence = self._persistence(X) if bounded or self.target_form == "relative" else None
        if bounded and self.max_log_change == 0:
            return persistence.copy()
        reference = persistence if self.target_form == "relative" else None
        prediction = from_target_form(
            self.regressor_.predict(self._regressor_input(X)), self.target_form, reference
        )
        if not bounded:
            return prediction
        last = signed_log(persistence)
        lower = signed_exp(last - self.max_log_change)
        upper = signed_exp(last + self.max_log_change)
        return np.clip(prediction, lower, upper)


def wrap_target_form(
    regressor: BaseEstimator,
    target_form: str,
    features: FeatureSettings,
    params: Mapping[str, Any] | None = None,
    dropped_columns: Sequence[str] = (),
) -> TargetFormRegressor:
    """``regressor`` learning the target in ``target_form``; the persistence columns are the
    target's lag and rolling-mean columns of ``features``; ``params`` sets the wrapper's own
    parameters (:data:`TARGET_FORM_PARAMS`: the loss weights and the bound of predictions);
    the regressor never sees ``dropped_columns``."""
    _check_form(target_form)
    return TargetFormRegressor(
        regressor,
        target_form,
        (features.target_lag, features.target_rolling),
        **dict(params or {}),
        dropped_columns=tuple(dropped_columns),
    )
