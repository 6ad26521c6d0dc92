"""Model registry and search-space validation / suggestion of drg_workflow.modelling."""

import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from modelling_frames import modelling_frame, modelling_settings, small_config
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from drg_workflow.errors import DrgWorkflowError
from drg_workflow.modelling.data import prepare_modelling_data
from drg_workflow.modelling.models import MODEL_BUILDERS, build_model
from drg_workflow.modelling.search_space import (
    check_model_estimator,
    check_model_structure,
    suggest_params,
)

PACKAGE = Path(__file__).resolve().parents[1] / "scripts" / "drg_workflow"

SMALL_PARAMS = {
    "random_forest": {"n_estimators": 5, "max_depth": 4, "n_jobs": 1, "max_samples": 0.5},
    "ridge": {"alpha": 1.0},
    "hist_gradient_boosting": {"max_iter": 20},
}


# ----------------------------------------------------------------------------- registry


def test_registry_builds_fits_and_predicts_with_nans():
    data = prepare_modelling_data(modelling_frame(seed=2), modelling_settings())
    X, y, X_val = data.X["train"], data.y["train"], data.X["validation"]
    assert X.isna().any().any() and X_val.isna().any().any()  # calendar lags leave NaN
    assert set(MODEL_BUILDERS) == {"random_forest", "ridge", "hist_gradient_boosting"}
    for name in MODEL_BUILDERS:
        model = build_model(name, SMALL_PARAMS[name], random_state=0)
        pred = model.fit(X, y).predict(X_val)
        assert pred.shape == (len(X_val),) and np.isfinite(pred).all(), name
        again = build_model(name, SMALL_PARAMS[name], random_state=0).fit(X, y).predict(X_val)
        np.testing.assert_allclose(pred, again, err_msg=f"{name} not deterministic")


def test_ridge_params_go_to_final_step_or_named_step():
    model = build_model("ridge", {"alpha": 3.0, "impute__strategy": "mean"}, random_state=0)
    assert model.named_steps["ridge"].alpha == 3.0
    assert model.named_steps["impute"].strategy == "mean"


def test_unknown_model():
    with pytest.raises(DrgWorkflowError, match="unknown model 'xgboost'"):
        build_model("xgboost", {}, 0)
    with pytest.raises(DrgWorkflowError, match=r"modelling.models.xgboost: unknown model"):
        check_model_structure(
            "xgboost", {"search_space": {"a": {"type": "int", "low": 1, "high": 2}}}
        )


@pytest.mark.parametrize("model", sorted(MODEL_BUILDERS))
def test_the_default_config_passes_the_estimator_check(model):
    check_model_estimator(model, small_config()["modelling"]["models"][model])


# ----------------------------------------------------------------------------- validation

#: Mistakes the schema cannot see (its own shape errors are tested on whole configs).
STRUCTURAL_ERRORS = [
    (
        "ridge",
        {"alpha": {"type": "float", "low": 10, "high": 1}},
        "modelling.models.ridge.search_space.alpha: low (10) must be < high (1)",
    ),
    (
        "ridge",
        {"alpha": {"type": "float", "low": 0, "high": 1, "log": True}},
        "modelling.models.ridge.search_space.alpha: log: true needs low > 0",
    ),
    (
        "random_forest",
        {"n_estimators": {"type": "int", "low": 10.5, "high": 20}},
        "modelling.models.random_forest.search_space.n_estimators.low: type int needs an integer",
    ),
    (
        "random_forest",
        {"n_estimators": {"type": "int", "low": 10, "high": 20, "step": 2.5}},
        "random_forest.search_space.n_estimators.step: type int needs an integer step",
    ),
    (
        "random_forest",
        {"random_state": {"type": "int", "low": 1, "high": 5}},
        "modelling.models.random_forest.search_space.random_state: 'random_state' is set by",
    ),
    (
        "hist_gradient_boosting",
        {"learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True, "step": 0.01}},
        "hist_gradient_boosting.search_space.learning_rate: step cannot be combined with log",
    ),
]

#: What every search space holds: the region that reduces to persistence, and the loss weights.
TARGET_FORM_SPACE = {
    "max_log_change": {"type": "float", "low": 0.0, "high": 1.0},
    "loss_weight_power": {"type": "categorical", "values": [0.0, 1.0]},
}

#: Mistakes only the estimator can see.
ESTIMATOR_ERRORS = [
    (
        "ridge",
        {"alpah": {"type": "float", "low": 0.1, "high": 1}, **TARGET_FORM_SPACE},
        "modelling.models.ridge.search_space.alpah: ridge does not accept a parameter 'alpah'",
    ),
    (
        "ridge",
        {"alpha": {"type": "float", "low": -1.0, "high": 1.0}, **TARGET_FORM_SPACE},
        "modelling.models.ridge.search_space.alpha.low: value -1.0 rejected by ridge",
    ),
    (
        "random_forest",
        {"max_features": {"type": "categorical", "values": ["sqrt", "cube"]}, **TARGET_FORM_SPACE},
        "modelling.models.random_forest.search_space.max_features.values[1]: value 'cube'",
    ),
]


@pytest.mark.parametrize(("model", "space", "message"), STRUCTURAL_ERRORS)
def test_structural_errors_name_the_key(model, space, message):
    with pytest.raises(DrgWorkflowError) as info:
        check_model_structure(model, {"search_space": space})
    assert message in str(info.value)


@pytest.mark.parametrize(("model", "space", "message"), STRUCTURAL_ERRORS + ESTIMATOR_ERRORS)
def test_estimator_check_names_the_key_in_one_line(model, space, message):
    with pytest.raises(DrgWorkflowError) as info:
        check_model_estimator(model, {"search_space": space})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("model", "space", "message"), ESTIMATOR_ERRORS)
def test_structural_check_needs_no_estimator(model, space, message):
    check_model_structure(model, {"search_space": space})  # left to the setup_study job


def test_fixed_params_errors_name_the_key():
    with pytest.raises(DrgWorkflowError, match=r"random_forest.fixed_params.n_jobz: random_forest"):
        check_model_estimator(
            "random_forest", {"search_space": TARGET_FORM_SPACE, "fixed_params": {"n_jobz": 2}}
        )
    with pytest.raises(DrgWorkflowError, match=r"forest.fixed_params.max_depth: value 0 rejected"):
        check_model_estimator(
            "random_forest", {"search_space": TARGET_FORM_SPACE, "fixed_params": {"max_depth": 0}}
        )
    with pytest.raises(
        DrgWorkflowError, match=r"random_forest: parameters \['max_depth'\] are both"
    ):
        check_model_structure(
            "random_forest",
            {
                "search_space": {"max_depth": {"type": "int", "low": 2, "high": 4}},
                "fixed_params": {"max_depth": 3},
            },
        )


def test_search_values_are_checked_beside_the_fixed_params():
    """Every trial has the fixed parameters: a value that is valid alone but not beside them
    (max_samples needs bootstrap) is refused at setup, not by every trial; and one that needs
    a fixed parameter to be valid is accepted."""
    space = {"max_samples": {"type": "float", "low": 0.1, "high": 0.5}, **TARGET_FORM_SPACE}
    with pytest.raises(
        DrgWorkflowError, match=r"random_forest.search_space.max_samples.low: value 0.1 rejected"
    ):
        check_model_estimator(
            "random_forest", {"search_space": space, "fixed_params": {"bootstrap": False}}
        )
    check_model_estimator(
        "random_forest", {"search_space": TARGET_FORM_SPACE, "fixed_params": {"max_samples": 0.2}}
    )


def test_no_code_reaches_into_library_internals():
    """Parameter checks use scikit-learn's public API; MLflow objects are built, not patched."""
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        assert "_validate_params" not in text, path
        assert "__dict__[" not in text, path


# ----------------------------------------------------------------------------- suggestion


def test_suggest_params_respects_bounds_log_step_categorical():
    space = {
        "n_estimators": {"type": "int", "low": 10, "high": 100, "step": 10},
        "min_samples_leaf": {"type": "int", "low": 1, "high": 64, "log": True},
        "max_samples": {"type": "float", "low": 0.2, "high": 0.8, "step": 0.2},
        "ccp_alpha": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        "max_features": {"type": "categorical", "values": ["sqrt", 0.5, 1.0]},
        **TARGET_FORM_SPACE,
    }
    check_model_structure("random_forest", {"search_space": space})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(60):
        trial = study.ask()
        params = suggest_params(trial, space)
        study.tell(trial, 0.0)
        seen.append(params)
        assert set(params) == set(space)
        assert 10 <= params["n_estimators"] <= 100 and params["n_estimators"] % 10 == 0
        assert 1 <= params["min_samples_leaf"] <= 64
        assert any(math.isclose(params["max_samples"], v) for v in (0.2, 0.4, 0.6, 0.8))
        assert 1e-4 <= params["ccp_alpha"] <= 1.0
        assert params["max_features"] in ("sqrt", 0.5, 1.0)
    dists = study.trials[0].distributions
    assert dists["n_estimators"] == IntDistribution(10, 100, step=10)
    assert dists["min_samples_leaf"] == IntDistribution(1, 64, log=True)
    assert dists["ccp_alpha"] == FloatDistribution(1e-4, 1.0, log=True)
    assert isinstance(dists["max_features"], CategoricalDistribution)
    assert {p["max_features"] for p in seen} == {"sqrt", 0.5, 1.0}
    # log sampling: many draws below the geometric midpoint 0.01 (uniform would give ~1 %)
    assert sum(p["ccp_alpha"] < 0.01 for p in seen) > 15


@pytest.mark.parametrize("rows", [1, 2, 7, 8, 1001])
@pytest.mark.parametrize("keep_empty_features", [False, True])
def test_median_imputer_is_simple_imputer_bit_for_bit(rows, keep_empty_features):
    from sklearn.impute import SimpleImputer

    from drg_workflow.modelling.imputation import MedianImputer

    rng = np.random.default_rng(rows)
    X = rng.lognormal(3, 2, size=(rows, 6)) * rng.choice([-1, 1], size=(rows, 6))
    X[rng.random((rows, 6)) < 0.3] = np.nan
    X[:, 4] = np.nan  # a column with no value
    X[:, 5] = np.round(X[:, 5])  # ties
    mine = MedianImputer(strategy="median", keep_empty_features=keep_empty_features).fit(X)
    theirs = SimpleImputer(strategy="median", keep_empty_features=keep_empty_features).fit(X)
    assert mine.statistics_.tobytes() == theirs.statistics_.tobytes()
    assert mine.transform(X).tobytes() == theirs.transform(X).tobytes()


def test_signed_log_is_the_plain_formula_bit_for_bit():
    from drg_workflow.modelling.target_form import signed_log

    rng = np.random.default_rng(3)
    x = rng.lognormal(5, 4, size=(500, 3)) * rng.choice([-1, 0, 1], size=(500, 3))
    x[0, 0] = np.nan
    assert signed_log(x).tobytes() == (np.sign(x) * np.log1p(np.abs(x))).tobytes()


def test_fits_use_the_jobs_threads_and_predictions_do_not_change():
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from threadpoolctl import threadpool_limits

    from drg_workflow.modelling.model_params import set_fit_threads
    from drg_workflow.modelling.target_form import fit_weighted

    class Recorder(RegressorMixin, BaseEstimator):
        def __init__(self, n_jobs=None):
            self.n_jobs = n_jobs

        def fit(self, X, y):
            self.n_jobs_seen_ = self.n_jobs
            return self

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 8))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = np.nan_to_num(X[:, 0]) * 3 + rng.normal(size=3000)
    predictions = {}
    try:
        for threads in (1, 2):
            set_fit_threads(threads)
            recorder = fit_weighted(Recorder(), X, y, None)
            assert recorder.n_jobs_seen_ == threads
            assert recorder.n_jobs is None  # as configured again: predictions in one thread
            forest = RandomForestRegressor(n_estimators=30, max_samples=0.3, random_state=0)
            with threadpool_limits(threads):
                boosting = HistGradientBoostingRegressor(max_iter=30, random_state=0)
                boosting = fit_weighted(boosting, X, y, np.abs(y) + 1)
            predictions[threads] = (
                fit_weighted(forest, X, y, None).predict(X),
                boosting.predict(X),
            )
    finally:
        set_fit_threads(1)
    for one, two in zip(predictions[1], predictions[2], strict=True):
        assert one.tobytes() == two.tobytes()


def test_gradient_boosting_fits_with_a_column_missing_in_every_training_row():
    """A fold trained on the first modelling year alone has no lag 3 at all: scikit-learn's
    binning fails on such a column; the model sets it aside (0) in the fit and the prediction."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": np.nan, "c": rng.normal(size=200)})
    y = 3 * X["a"].to_numpy() + rng.normal(scale=0.1, size=200)
    model = build_model("hist_gradient_boosting", {"max_iter": 20}, 0).fit(X, y)
    with_values = X.assign(b=rng.normal(size=200))
    np.testing.assert_array_equal(model.predict(X), model.predict(with_values))
    assert np.corrcoef(model.predict(X), y)[0, 1] > 0.9
