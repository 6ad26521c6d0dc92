"""Target forms, conformal intervals, next-year features, the champion and the persistence
fallback of the forecast (the package's functions; the workflow's own run is in
test_models_workflow.py)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from modelling_frames import (
    model_settings,
    modelling_frame,
    modelling_years,
    shared_params,
    small_config,
)

from drg_workflow.chain import configured_parameters, forecast_chain
from drg_workflow.modelling.baseline import baseline_predictions, evaluate_baseline
from drg_workflow.modelling.comparison import (
    NO_CHAMPION_WARNING,
    build_comparison,
    champion_model,
    comparison_warnings,
)
from drg_workflow.modelling.data import KEY_COLUMNS, ModellingDataError, prepare_modelling_data
from drg_workflow.modelling.final import evaluate_model, fit_final_model
from drg_workflow.modelling.forecast import (
    ChainStep,
    ForecastError,
    IntervalSettings,
    assess_intervals,
    backtest_residual_rows,
    calibrate_intervals,
    forecast_table,
    last_year_names,
    next_year_features,
    split_conformal,
    with_group_column,
    with_names,
)
from drg_workflow.modelling.models import build_model, final_estimator
from drg_workflow.modelling.settings import MlflowSettings
from drg_workflow.modelling.target_form import (
    TARGET_FORMS,
    TargetFormRegressor,
    from_target_form,
    signed_log,
    to_target_form,
)
from drg_workflow.synthetic import generate_raw
from drg_workflow.tables import write_arrow
from drg_workflow.transformations import apply_transformation

CONFIG = small_config()
TARGET = CONFIG["target"]
LAG, ROLLING = f"{TARGET}_lag1", f"{TARGET}_rolling2"


# --------------------------------------------------------------------------- target forms


def test_every_target_form_round_trips_zero_negative_and_huge_values():
    frame = pd.DataFrame(
        {
            "y": [0.0, -1.0, 1.0, -2.5e7, 3.2e8, 0.5, -0.25, 12_345.678],
            "reference": [5.0, -3.0, 0.0, 1.0e6, -4.0e5, 0.0, 2.0, 12_000.0],
        }
    )
    for form in TARGET_FORMS:
        z = to_target_form(frame["y"], form, frame["reference"].to_numpy())
        back = from_target_form(z, form, frame["reference"].to_numpy())
        np.testing.assert_allclose(back, frame["y"], rtol=1e-12, atol=1e-12, err_msg=form)
    # log and relative are the signed log, 0 stays 0 and signs are kept.
    log = to_target_form(frame["y"], "log")
    assert log[0] == 0.0 and (np.sign(log) == np.sign(frame["y"])).all()
    relative = to_target_form(frame["y"], "relative", frame["reference"].to_numpy())
    np.testing.assert_allclose(relative, signed_log(frame["y"]) - signed_log(frame["reference"]))
    with pytest.raises(ModellingDataError, match="unknown target form 'sqrt'"):
        to_target_form(frame["y"], "sqrt")


def growth_frame(
    n: int = 600, seed: int = 0, losses: bool = True
) -> tuple[pd.DataFrame, np.ndarray]:
    """Last year's value (heavy-tailed, some lags missing: the rolling mean stands in) and a
    target that grows 10% on it: a model of the change learns one number per sign."""
    rng = np.random.default_rng(seed)
    last = rng.lognormal(12, 2, n)
    if losses:
        last *= rng.choice([1, -1], n, p=[0.8, 0.2])
    frame = pd.DataFrame({LAG: last, ROLLING: last * 0.97, "noise": rng.normal(size=n)})
    frame.loc[frame.index[::10], LAG] = np.nan
    reference = frame[LAG].fillna(frame[ROLLING]).to_numpy()
    return frame, 1.1 * reference


def relative_errors(model: TargetFormRegressor, X: pd.DataFrame, y: np.ndarray) -> np.ndarray:
    return np.abs(model.fit(X, y).predict(X) / y - 1)


def test_a_relative_model_learns_the_change_and_predicts_dollars():
    from sklearn.ensemble import HistGradientBoostingRegressor

    def trees(form: str) -> TargetFormRegressor:
        return TargetFormRegressor(
            HistGradientBoostingRegressor(max_iter=100, learning_rate=0.3), form, (LAG, ROLLING)
        )

    # Profits and losses: predictions are 1.1 x persistence, in dollars, over eight orders of
    # magnitude and both signs; in raw dollars the same trees cannot follow the heavy tail.
    X, y = growth_frame()
    relative, raw = relative_errors(trees("relative"), X, y), relative_errors(trees("raw"), X, y)
    assert np.median(relative) < 1e-3 and np.max(relative) < 0.05
    assert np.median(raw) > 0.05 and np.max(raw) > 100
    fitted = trees("relative").fit(X, y)
    assert final_estimator(fitted) is fitted.regressor_
    # The workflow's ridge (log features) learns the same change of profits.
    X, y = growth_frame(losses=False)
    ridge = TargetFormRegressor(
        build_model("ridge", {"alpha": 1e-6}, 0), "relative", (LAG, ROLLING)
    )
    assert np.max(relative_errors(ridge, X, y)) < 0.01


def test_the_configured_model_learns_in_its_form_and_its_metrics_are_dollars():
    data = prepare_modelling_data(modelling_frame(seed=5), model_settings("ridge", {}).modelling)
    predictions = {}
    for form in ("raw", "relative"):
        config = small_config(modelling={"target_form": form})
        model = model_settings("ridge", {}, config=config)
        fitted = fit_final_model(model, {"alpha": 1.0}, data.X["train"], data.y["train"])
        assert isinstance(fitted, TargetFormRegressor) and fitted.target_form == form
        predictions[form] = fitted.predict(data.X["validation"])
        metrics = evaluate_model(
            fitted, {"validation": (data.X["validation"], data.y["validation"])}
        )
        # Dollars: the RMSE is of the order of the target's spread, not of a log ratio.
        assert metrics["validation"]["rmse"] > 0.01 * data.y["validation"].std()
    assert not np.allclose(predictions["raw"], predictions["relative"])


# --------------------------------------------------------------------------- intervals


def held_out(seed: int, n: int = 4000) -> pd.DataFrame:
    """Held-out predictions (keys, split, y_true, y_pred): log-normal errors, validation then
    test."""
    rng = np.random.default_rng(seed)
    prediction = rng.lognormal(12, 1.5, n)
    return pd.DataFrame(
        {
            "year": np.where(np.arange(n) < n // 2, 2015, 2016),
            "facility_id": np.arange(n) % 97,
            "apr_drg_code": np.arange(n),
            "split": np.where(np.arange(n) < n // 2, "validation", "test"),
            "y_true": prediction * np.exp(rng.normal(0, 0.3, n)),
            "y_pred": prediction,
        }
    )


@pytest.mark.parametrize("method", ["signed_log", "absolute"])
def test_split_conformal_coverage_lands_near_the_nominal_levels(method):
    rows = held_out(1, 8000)
    if method == "absolute":
        rows["y_true"] = rows["y_pred"] + np.random.default_rng(2).normal(0, 5e4, len(rows))
    settings = IntervalSettings(method, (0.5, 0.8, 0.95), "constant", None)
    rows["constant"] = 0
    calibration, test = rows[rows["split"] == "validation"], rows[rows["split"] == "test"]
    intervals = calibrate_intervals(calibration, settings)
    assert intervals.n_calibration == (4000,)
    report = assess_intervals(intervals, split_conformal(calibration, settings), test)
    for level in ("0.5", "0.8", "0.95"):
        assert abs(report["by_group"][level]["all"]["coverage"] - float(level)) < 0.02
    assert report["years"] == [2016] and report["rows"] == 4000
    assert set(report["by_year"]["0.8"]) == {"2016", "all"}


def test_conformal_coverage_on_generated_data_near_the_nominal_level():
    """The real generator and chain: calibrate a ridge model's intervals per group of last
    year's discharges on one year, measure them on the next years (not exchangeable: coverage
    drifts a little, but stays near each level)."""
    data = prepare_modelling_data(modelling_frame(seed=8), model_settings("ridge", {}).modelling)
    model = fit_final_model(
        model_settings("ridge", {}), {"alpha": 1.0}, data.X["train"], data.y["train"]
    )
    settings = IntervalSettings.from_params(CONFIG["forecast"])
    rows = {
        split: data.frames[split].assign(
            y_true=data.y[split], y_pred=model.predict(data.X[split]), split=split
        )
        for split in ("validation", "test")
    }
    intervals = calibrate_intervals(rows["validation"], settings)
    report = assess_intervals(
        intervals, split_conformal(rows["validation"], settings), rows["test"]
    )
    for level in ("0.5", "0.8", "0.95"):
        assert abs(report["by_group"][level]["all"]["coverage"] - float(level)) < 0.1


def test_the_grouping_column_is_joined_by_key_and_must_exist():
    rows = held_out(3, 10)
    frame = rows[list(KEY_COLUMNS)].assign(sum_discharges_lag1=np.arange(10.0))
    joined = with_group_column(rows, frame, "sum_discharges_lag1")
    np.testing.assert_array_equal(joined["sum_discharges_lag1"], np.arange(10.0))
    with pytest.raises(ForecastError, match="forecast.interval_groups.column: 'nope'"):
        with_group_column(rows, frame, "nope")
    with pytest.raises(ForecastError, match="2 held-out predictions have no row"):
        with_group_column(rows, frame.iloc[2:], "sum_discharges_lag1")


def test_the_interval_calibrates_on_the_champions_backtest_residuals_or_persistences():
    predictions = pd.DataFrame(
        {
            "origin": [2015, 2015, 2016, 2016],
            "role": ["choosing", "choosing", "reporting", "reporting"],
            "model": ["ridge", "forest", "ridge", "forest"],
            "year": [2015, 2015, 2016, 2016],
            "facility_id": [1, 1, 1, 1],
            "apr_drg_code": [10, 10, 10, 10],
            "actual": [10.0, 10.0, 20.0, 20.0],
            "prediction": [11.0, 12.0, 19.0, 18.0],
            "persistence": [9.0, 9.0, 10.0, 10.0],
        }
    )
    forest = backtest_residual_rows(predictions, "forest")
    assert forest["y_pred"].tolist() == [12.0, 18.0] and forest["role"].tolist()[0] == "choosing"
    assert forest["year"].tolist() == [2015, 2016]
    persistence = backtest_residual_rows(predictions, None)
    assert persistence["y_pred"].tolist() == [9.0, 10.0]
    assert persistence["y_true"].tolist() == [10.0, 20.0]
    with pytest.raises(ForecastError, match="no predictions of model 'gbm'"):
        backtest_residual_rows(predictions, "gbm")
    with pytest.raises(ForecastError, match="no predictions to calibrate"):
        backtest_residual_rows(predictions.iloc[:0], None)


# --------------------------------------------------------------------------- next year


def chain_frames(config: dict) -> dict[str, pd.DataFrame]:
    frames = {"v0": generate_raw(**{**config["raw"]["synthetic"], "seed": 3})}
    for step in config["chain"]:
        frames[step["version"]] = apply_transformation(
            step["transformation"],
            frames[step["input"]],
            configured_parameters(config, step["transformation"]),
        )
    return frames


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return chain_frames(CONFIG)


def test_next_year_features_come_from_the_chains_own_lag_steps(frames):
    base_version, steps = forecast_chain(CONFIG)
    assert base_version == "v10" and [s["version"] for s in steps] == ["v11", "v12", "v13"]
    base = frames[base_version]
    features = next_year_features(base, [ChainStep(**s) for s in steps], CONFIG["lags"]["columns"])
    last = base.loc[base["year"] == base["year"].max()]
    # One row per (facility, DRG) of the last year, for the year after it.
    assert len(features) == len(last)
    assert set(features["year"]) == {int(base["year"].max()) + 1}
    keys = ["facility_id", "apr_drg_code"]
    assert not features.duplicated(keys).any()
    lag_list = CONFIG["lags"]["columns"]
    last_values = last[[*keys, *lag_list]].rename(columns={c: f"{c}_last" for c in lag_list})
    merged = features.merge(last_values, on=keys)
    assert len(merged) == len(last)
    # The modelling data's columns, with lag1 = the last year's values.
    assert list(features.columns) == list(frames["v13"].columns)
    for column in lag_list:
        np.testing.assert_allclose(merged[f"{column}_lag1"], merged[f"{column}_last"])
    # Rolling means over the window (last year and the one before, where present), the same as
    # the chain's rolling_columns computes for the last year's own rows from the year before.
    previous = base.loc[base["year"] == base["year"].max() - 1, [*keys, TARGET]]
    both = merged.merge(previous, on=keys, how="left", suffixes=("", "_before"))
    expected = both[[f"{TARGET}_last", f"{TARGET}_before"]].mean(axis=1)
    np.testing.assert_allclose(both[ROLLING], expected)
    assert features[TARGET].isna().all()  # unknown: that is what is forecast


def test_forecast_chain_needs_the_lag_step():
    config = copy.deepcopy(CONFIG)
    config["modelling"]["data_version"] = "v9"
    with pytest.raises(ValueError, match="'v9' is not made through lag_columns"):
        forecast_chain(config)


def test_forecast_table_holds_nested_intervals_in_cents_around_each_prediction(frames):
    base_version, steps = forecast_chain(CONFIG)
    features = next_year_features(
        frames[base_version], [ChainStep(**s) for s in steps], CONFIG["lags"]["columns"]
    )
    settings = model_settings("ridge", {}).modelling
    persistence = baseline_predictions(features, settings.features)
    rows = held_out(4, 2000).assign(sum_discharges_lag1=np.arange(2000.0) % 300)
    intervals = calibrate_intervals(rows, IntervalSettings.from_params(CONFIG["forecast"]))
    prediction = persistence * 1.0512345
    table = forecast_table(features, prediction, persistence, intervals)
    bounds = ["lower_0.5", "upper_0.5", "lower_0.8", "upper_0.8", "lower_0.95", "upper_0.95"]
    assert list(table.columns) == [
        "year",
        "facility_id",
        "apr_drg_code",
        "interval_group",
        "persistence",
        "prediction",
        *bounds,
    ]
    values = table[["persistence", "prediction", *bounds]]
    assert np.isfinite(values.to_numpy()).all()
    # Cents: no value has more than two decimals.
    np.testing.assert_array_equal(values.to_numpy(), np.round(values.to_numpy(), 2))
    np.testing.assert_allclose(table["prediction"], prediction, atol=0.005)
    assert (table["lower_0.95"] <= table["lower_0.8"]).all()
    assert (table["lower_0.8"] <= table["lower_0.5"]).all()
    assert (table["lower_0.5"] <= table["prediction"]).all()
    assert (table["prediction"] <= table["upper_0.5"]).all()
    assert (table["upper_0.5"] <= table["upper_0.8"]).all()
    assert (table["upper_0.8"] <= table["upper_0.95"]).all()
    assert set(table["interval_group"]) <= {*intervals.groups, "missing"}
    broken = persistence.copy()
    broken[3] = np.nan
    with pytest.raises(ForecastError, match="1 forecast rows are not finite"):
        forecast_table(features, broken, persistence, intervals)


def test_names_are_those_of_the_last_year_a_key_appears_in():
    names = pd.DataFrame(
        {
            "year": [2016, 2017, 2016, 2017, 2015, 2016],
            "facility_id": [1, 1, 2, 2, 3, 3],
            "facility_name": ["Old Name", "New Name", "Two", "Two", "Three", "Three Renamed"],
            "apr_drg_code": [10, 10, 20, 20, 30, 30],
            "apr_drg_description": ["Ten", "Ten", "Twenty (old)", "Twenty", "30", "Thirty"],
        }
    )
    # Row order must not matter: the newest year wins however the rows are sorted.
    shuffled = names.sample(frac=1.0, random_state=0)
    assert last_year_names(shuffled, "facility_id", "facility_name").to_dict("list") == {
        "facility_id": [1, 2, 3],
        "facility_name": ["New Name", "Two", "Three Renamed"],
    }
    table = pd.DataFrame(
        {"year": 2018, "facility_id": [2, 1], "apr_drg_code": [20, 30], "prediction": [1.0, 2.0]}
    )
    named = with_names(table, shuffled, CONFIG["forecast"]["names"]["columns"])
    assert list(named.columns) == [
        "year",
        "facility_id",
        "facility_name",
        "apr_drg_code",
        "apr_drg_description",
        "prediction",
    ]
    assert named["facility_name"].tolist() == ["Two", "New Name"]
    assert named["apr_drg_description"].tolist() == ["Twenty", "Thirty"]
    with pytest.raises(ForecastError, match="has no column facility_name"):
        last_year_names(names.drop(columns="facility_name"), "facility_id", "facility_name")


# --------------------------------------------------------------------------- fallback


@pytest.fixture()
def constant_target_data(frames):
    """Modelling data where the target never changes: persistence is exact, no model can beat
    it."""
    frame = frames["v13"].copy()
    frame[[TARGET, LAG, ROLLING]] = 250_000.0
    return frame


def test_with_a_constant_target_no_model_passes_the_gate_and_the_forecast_is_persistence(
    tmp_path, frames, constant_target_data
):
    """The package's own steps, end to end: the backtest of two models, the gate, no refit,
    the alias removed, and the forecast falls back to persistence with its warning."""
    from drg_workflow.modelling.backtest import fit_at_origin, score_backtest
    from drg_workflow.modelling.data import select_features
    from drg_workflow.modelling.settings import BacktestSettings
    from drg_workflow.modelling.steps.champion import refit_champion, register_champion
    from drg_workflow.modelling.steps.forecast import forecast
    from drg_workflow.modelling.tracking import ensure_experiment

    years = modelling_years(CONFIG)
    settings = model_settings("hist_gradient_boosting", {})
    data = prepare_modelling_data(constant_target_data, settings.modelling)
    baseline = evaluate_baseline(
        data.frames, settings.modelling.cv_folds, settings.modelling.features
    )
    features = select_features(constant_target_data.columns, settings.modelling.features)
    rows, predictions, training = [baseline], [], {}
    for model, params in (("ridge", {"alpha": 1.0}), ("hist_gradient_boosting", {"max_iter": 10})):
        rows.append({**comparison_row(model), "best_params": params})
        for origin in years.origins:
            fit = fit_at_origin(
                model_settings(model, {}),
                params,
                constant_target_data,
                features,
                origin,
                years.role(origin),
            )
            predictions.append(fit.predictions)
            training[(model, origin)] = fit.training_years
    backtest_predictions = pd.concat(predictions, ignore_index=True)
    scores = score_backtest(
        backtest_predictions,
        training,
        BacktestSettings(200, 0.9, CONFIG["modelling"]["random_state"]),
    )
    table = build_comparison(rows, scores.table, scores.skill_test)
    assert champion_model(table) is None
    assert NO_CHAMPION_WARNING in comparison_warnings(table)
    comparison_path = tmp_path / "comparison.csv"
    table.to_csv(comparison_path, index=False)

    experiment = ensure_experiment(
        MlflowSettings(f"sqlite:///{tmp_path / 'mlflow.db'}", "drg-test", str(tmp_path / "art"))
    )
    refit = refit_champion(
        {}, comparison_path, {}, {}, years.to_json(), experiment.to_json(), "unused", "unused"
    )
    assert refit == {"champion": None, "fallback": "persistence"}
    champion = register_champion(refit, experiment.to_json(), "drg-test-model")
    assert champion["champion"] is None and champion["fallback"] == "persistence"

    base_version, steps = forecast_chain(CONFIG)
    base = frames[base_version].copy()
    base[TARGET] = 250_000.0
    paths = {name: tmp_path / f"{name}.arrow" for name in ("base", "v13", "v1")}
    import pyarrow as pa

    write_arrow(pa.Table.from_pandas(base, preserve_index=False), paths["base"])
    write_arrow(pa.Table.from_pandas(constant_target_data, preserve_index=False), paths["v13"])
    write_arrow(pa.Table.from_pandas(frames["v1"], preserve_index=False), paths["v1"])
    params = {
        **shared_params(CONFIG),
        "forecast": CONFIG["forecast"],
        "steps": steps,
    }
    result = forecast(
        params,
        champion,
        paths["base"],
        paths["v13"],
        paths["v1"],
        backtest_predictions,
        years.to_json(),
    )
    assert result.warning == NO_CHAMPION_WARNING
    assert (
        result.provenance["model"] == "baseline" and result.provenance["fallback"] == "persistence"
    )
    interval = result.provenance["interval"]
    assert interval["calibration"]["years"] == [2014, 2015, 2016, 2017]
    assert interval["test"]["calibration_years"] == [2014, 2015]
    assert interval["test"]["years"] == [2016, 2017]
    np.testing.assert_array_equal(result.table["prediction"], result.table["persistence"])
    assert (result.table["prediction"] == 250_000.0).all()
    assert result.table["facility_name"].notna().all()


def comparison_row(model: str) -> dict:
    return {
        "model": model,
        **{
            metric: 1.0
            for metric in (
                "cv_rmse",
                "cv_mae",
                "val_rmse",
                "val_mae",
                "val_r2",
                "test_rmse",
                "test_mae",
                "test_r2",
            )
        },
        "n_trials_complete": 3,
        "n_trials_pruned": 0,
        "best_params": {},
    }
