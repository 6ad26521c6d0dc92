"""Model registry: a model name maps to a builder ``(params, random_state) -> estimator``.

Adding a model = one small builder function below + an entry in ``MODEL_BUILDERS`` + its
``search_space`` (and optional ``fixed_params``) in the config.

Parameter names are the estimator's own ``get_params()`` names. For a :class:`Pipeline` a bare
name (``alpha``) goes to the final step (the regressor); a ``step__param`` name addresses any
step (``impute__strategy``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

# scikit-learn is imported inside the functions that build estimators: `import sklearn` takes
# about a second, and the Snakefile imports this module (through the config validation) on every
# parse, where only the registry's names and the structural checks are needed.
if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

    from .settings import ModelSettings

from drg_workflow.errors import DrgWorkflowError

from .model_params import RESERVED_PARAMS, TARGET_FORM_PARAMS

ModelBuilder = Callable[[dict[str, Any], int], "BaseEstimator"]


class ModelConfigError(DrgWorkflowError):
    """A model configuration (``modelling.models.<model>``) the workflow cannot use; the message
    names the config key."""


def configure(estimator: BaseEstimator, params: Mapping[str, Any]) -> BaseEstimator:
    """Apply ``params`` to ``estimator``; bare names on a Pipeline go to its final step."""
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        final = estimator.steps[-1][0]
        params = {k if "__" in k else f"{final}__{k}": v for k, v in params.items()}
    return estimator.set_params(**params)


def accepted_params(estimator: BaseEstimator) -> set[str]:
    """Parameter names :func:`configure` accepts for ``estimator`` (minus reserved ones)."""
    from sklearn.pipeline import Pipeline

    names = set(estimator.get_params(deep=True))
    if isinstance(estimator, Pipeline):
        names -= {"steps", "memory", "verbose", "transform_input"}
        names -= {name for name, _ in estimator.steps}  # replacing whole steps is not tuning
        names |= set(estimator.steps[-1][1].get_params(deep=False))
    return {n for n in names if n.rsplit("__", 1)[-1] not in RESERVED_PARAMS}


def _random_forest(params: dict[str, Any], random_state: int) -> BaseEstimator:
    # sklearn >= 1.4 forests split on NaN natively; `max_samples` (with the default bootstrap)
    # subsamples rows per tree, which keeps big real-data fits affordable.
    from sklearn.ensemble import RandomForestRegressor

    return configure(RandomForestRegressor(random_state=random_state), params)


def _ridge(params: dict[str, Any], random_state: int) -> BaseEstimator:
    # The money columns are heavy-tailed and a linear model of the target's (log) change needs
    # them on a log scale: signed log first (0 stays 0, signs are kept). Lag features are NaN
    # where year t-1 is absent and Ridge cannot take NaN: impute (median), then scale so one
    # alpha fits all features.
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from drg_workflow.signed_log import signed_log

    from .imputation import MedianImputer

    pipe = Pipeline(
        [
            ("log_features", FunctionTransformer(signed_log, feature_names_out="one-to-one")),
            ("impute", MedianImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("ridge", Ridge(random_state=random_state)),
        ]
    )
    return configure(pipe, params)


def _hist_gradient_boosting(params: dict[str, Any], random_state: int) -> BaseEstimator:
    # Native NaN support; random_state fixes the early-stopping split and feature subsampling.
    from .gradient_boosting import HistGradientBoosting

    return configure(HistGradientBoosting(random_state=random_state), params)


MODEL_BUILDERS: dict[str, ModelBuilder] = {
    "random_forest": _random_forest,
    "ridge": _ridge,
    "hist_gradient_boosting": _hist_gradient_boosting,
}

#: Parameters that make a model's fit as cheap as possible, used only by the estimator check of
#: the config (:func:`.search_space.check_model_estimator`), which fits tiny probe models.
CHEAP_FIT_PARAMS: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 1},
    "hist_gradient_boosting": {"max_iter": 1},
}


def build_model(model: str, params: Mapping[str, Any], random_state: int) -> BaseEstimator:
    """Build an unfitted estimator of registry model ``model`` with ``params``.

    Raises:
        ModelConfigError: unknown model name.
    """
    if model not in MODEL_BUILDERS:
        raise ModelConfigError(f"unknown model {model!r}; known models: {sorted(MODEL_BUILDERS)}")
    return MODEL_BUILDERS[model](dict(params), random_state)


def split_target_form_params(
    params: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``params`` split into the regressor's and those of the target-form wrapper itself
    (:data:`.model_params.TARGET_FORM_PARAMS`, e.g. ``max_log_change``)."""
    own = {k: v for k, v in params.items() if k in TARGET_FORM_PARAMS}
    return {k: v for k, v in params.items() if k not in TARGET_FORM_PARAMS}, own


def model_estimator(model: ModelSettings, params: Mapping[str, Any]) -> BaseEstimator:
    """The estimator tuning, the final fit, the backtest and the champion's refit use:
    ``model``'s regressor with ``params``, learning the target in ``model.target_form``, its
    loss weighted by last year's value (``loss_weight_power``), its predictions bounded by
    ``max_log_change`` and in dollars, blind to the columns of its ``drop_feature_groups``
    (:class:`.target_form.TargetFormRegressor`)."""
    from .target_form import wrap_target_form

    regressor_params, form_params = split_target_form_params(params)
    regressor = build_model(model.name, regressor_params, model.modelling.random_state)
    return wrap_target_form(
        regressor,
        model.target_form,
        model.modelling.features,
        form_params,
        dropped_columns=model.dropped_features,
    )


def final_estimator(estimator: BaseEstimator) -> BaseEstimator:
    """The regressor itself: unwrapped from its target form (the fitted one if fitted), then
    the last step of a Pipeline."""
    from sklearn.pipeline import Pipeline

    from .target_form import TargetFormRegressor

    if isinstance(estimator, TargetFormRegressor):
        estimator = getattr(estimator, "regressor_", estimator.regressor)
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
