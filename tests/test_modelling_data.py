"""Features, year split, year folds, baseline and metrics of drg_workflow.modelling."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from modelling_frames import modelling_frame, modelling_settings, small_config

from drg_workflow.errors import DrgWorkflowError
from drg_workflow.modelling.baseline import (
    baseline_cv_scores,
    baseline_predictions,
    evaluate_baseline,
)
from drg_workflow.modelling.data import (
    SAME_YEAR_FEATURES,
    fold_years,
    make_xy,
    prepare_modelling_data,
    select_features,
    split_by_year,
    year_folds,
)
from drg_workflow.modelling.metrics import regression_metrics
from drg_workflow.modelling.settings import FeatureSettings, YearSplit

SETTINGS = modelling_settings()
FEATURES = SETTINGS.features
TARGET = FEATURES.target
SPLIT = SETTINGS.split


@pytest.fixture(scope="module")
def v13() -> pd.DataFrame:
    return modelling_frame(seed=1)


# ----------------------------------------------------------------------------- year folds


def test_year_folds_are_time_ordered_last_k_years():
    years = np.array([2012, 2010, 2014, 2011, 2013, 2014, 2010, 2012, 2013, 2011])
    folds = year_folds(years, 3)
    assert len(folds) == 3
    val_years = []
    for train_idx, val_idx in folds:
        (val_year,) = np.unique(years[val_idx])
        val_years.append(int(val_year))
        assert (years[train_idx] < val_year).all()
        # every earlier row is in train, every row of the year in validation
        assert set(train_idx) == set(np.flatnonzero(years < val_year))
        assert set(val_idx) == set(np.flatnonzero(years == val_year))
    assert val_years == [2012, 2013, 2014]
    assert fold_years(pd.Series(years), 3) == [2012, 2013, 2014]


def test_year_folds_maximum_and_too_few_years():
    years = np.repeat([2010, 2011, 2012], 4)
    assert len(year_folds(years, 2)) == 2  # 2011 (train 2010), 2012 (train 2010-11)
    with pytest.raises(DrgWorkflowError, match=r"3 year folds need at least 4 distinct"):
        year_folds(years, 3)
    with pytest.raises(DrgWorkflowError, match="n_folds must be >= 1"):
        year_folds(years, 0)


def test_year_folds_on_synthetic_train(v13):
    train = split_by_year(v13, SPLIT)["train"]
    years = train["year"].to_numpy()
    for train_idx, val_idx in year_folds(years, 3):
        assert years[train_idx].max() < years[val_idx].min()


# ----------------------------------------------------------------------------- features


def test_features_exclude_same_year_target_and_year(v13):
    features = select_features(v13.columns, FEATURES)
    assert TARGET not in features
    assert "year" not in features
    assert not set(SAME_YEAR_FEATURES) & set(features)
    assert {"facility_id", "apr_drg_code"} <= set(features)
    lagged = {f"{c}_{s}" for c in FEATURES.lag_columns for s in ("lag1", "rolling2")}
    assert set(features) == lagged | {"facility_id", "apr_drg_code"}
    assert features == [c for c in v13.columns if c in set(features)]  # frame order


def test_feature_switches_put_columns_back(v13):
    features = select_features(v13.columns, FEATURES, include_same_year_features=True)
    assert set(SAME_YEAR_FEATURES) <= set(features)
    assert TARGET not in features and "year" not in features
    assert "year" in select_features(v13.columns, FEATURES, include_year=True)


def test_feature_selection_errors(v13):
    with pytest.raises(DrgWorkflowError, match="target column"):
        select_features(v13.drop(columns=[TARGET]).columns, FEATURES)
    with pytest.raises(DrgWorkflowError, match="leak"):
        select_features([*v13.columns, "w_mean_cost"], FEATURES)
    with pytest.raises(DrgWorkflowError, match="yearly_discharge_bin"):
        select_features(
            v13.drop(columns=["yearly_discharge_bin"]).columns,
            FEATURES,
            include_same_year_features=True,
        )


def test_leak_check_uses_the_configured_lag_list(v13):
    """A current-year column of the configured lag list leaks; one outside it is a feature."""
    custom = dataclasses.replace(FEATURES, lag_columns=(*FEATURES.lag_columns, "length_of_stay"))
    with pytest.raises(DrgWorkflowError, match="length_of_stay"):
        select_features([*v13.columns, "length_of_stay"], custom)
    shorter = dataclasses.replace(
        FEATURES, lag_columns=tuple(c for c in FEATURES.lag_columns if c != "w_mean_cost")
    )
    assert "w_mean_cost" in select_features([*v13.columns, "w_mean_cost"], shorter)


def test_make_xy(v13):
    features = select_features(v13.columns, FEATURES)
    X, y, years = make_xy(v13, features, TARGET)
    assert list(X.columns) == features
    assert y.dtype == float and len(y) == len(v13)
    assert (years == v13["year"].to_numpy()).all()
    bad = v13.copy()
    bad.loc[0, TARGET] = np.nan
    with pytest.raises(DrgWorkflowError, match="1 missing"):
        make_xy(bad, features, TARGET)


# ----------------------------------------------------------------------------- split


def test_prepare_modelling_data(v13):
    settings = dataclasses.replace(SETTINGS, include_same_year_features=True)
    data = prepare_modelling_data(v13, settings)
    assert set(SAME_YEAR_FEATURES) <= set(data.features)
    for name in ("train", "validation", "test"):
        assert list(data.X[name].columns) == data.features
        assert len(data.X[name]) == len(data.y[name]) == len(data.years[name])
        assert (data.y[name].to_numpy() == data.frames[name][TARGET].to_numpy()).all()
    assert set(data.years["validation"]) == {2014, 2015}


def test_split_by_year_config_defaults(v13):
    """The default split, from the data's years: the last 2 test, the 2 before validate."""
    parts = split_by_year(v13, SPLIT)
    assert sorted(parts["train"]["year"].unique()) == [2010, 2011, 2012, 2013]
    assert sorted(parts["validation"]["year"].unique()) == [2014, 2015]
    assert sorted(parts["test"]["year"].unique()) == [2016, 2017]
    assert sum(len(p) for p in parts.values()) == len(v13)


def test_split_from_config_and_errors(v13):
    split = YearSplit.from_config(
        {"train": [2010, 2013], "validation": [2014, 2015], "test": [2016, 2016]}
    )
    parts = split_by_year(v13, split)
    assert sorted(parts["validation"]["year"].unique()) == [2014, 2015]
    assert 2017 not in set(pd.concat(parts.values())["year"])
    with pytest.raises(DrgWorkflowError, match=r"split.test: no rows for years 2020-2021"):
        split_by_year(v13, dataclasses.replace(SPLIT, test=(2020, 2021)))


# ----------------------------------------------------------------------------- baseline


@pytest.mark.parametrize("window", [1, 2, 3])
def test_baseline_uses_lag1_then_the_configured_rolling_mean(window: int):
    features = FeatureSettings(TARGET, FEATURES.lag_columns, rolling_window=window)
    df = pd.DataFrame(
        {
            "year": [2011, 2012, 2013, 2014],
            TARGET: [10.0, 20.0, 30.0, 40.0],
            f"{TARGET}_lag1": [9.0, np.nan, 21.0, np.nan],
            f"{TARGET}_rolling{window}": [8.0, 15.0, 17.0, 33.0],
        }
    )
    np.testing.assert_array_equal(baseline_predictions(df, features), [9.0, 15.0, 21.0, 33.0])
    # fold years 2013, 2014 -> errors 9 and 7 on single rows
    assert baseline_cv_scores(df, 2, features) == {"rmse": [9.0, 7.0], "mae": [9.0, 7.0]}
    df.loc[1, f"{TARGET}_rolling{window}"] = np.nan
    with pytest.raises(DrgWorkflowError, match="1 rows have neither"):
        baseline_predictions(df, features)


def test_baseline_names_a_missing_rolling_column():
    features = FeatureSettings(TARGET, FEATURES.lag_columns, rolling_window=3)
    df = pd.DataFrame({TARGET: [1.0], f"{TARGET}_lag1": [1.0], f"{TARGET}_rolling2": [1.0]})
    with pytest.raises(DrgWorkflowError, match=f"no column {TARGET}_rolling3"):
        baseline_predictions(df, features)


def test_baseline_on_modelling_data_with_rolling_window_3():
    config = small_config(lags={"rolling_window": 3})
    frame = modelling_frame(config=config)
    features = modelling_settings(config).features
    lag, rolling = frame[f"{TARGET}_lag1"], frame[f"{TARGET}_rolling3"]
    np.testing.assert_array_equal(
        baseline_predictions(frame, features), lag.where(lag.notna(), rolling).to_numpy()
    )


def test_evaluate_baseline_row(v13):
    parts = split_by_year(v13, SPLIT)
    row = evaluate_baseline(parts, 3, FEATURES)
    val = parts["validation"]
    expected = regression_metrics(val[TARGET], baseline_predictions(val, FEATURES))
    assert row["model"] == "baseline"
    assert row["val_rmse"] == pytest.approx(expected["rmse"])
    assert row["val_r2"] == pytest.approx(expected["r2"])
    cv = baseline_cv_scores(parts["train"], 3, FEATURES)
    assert row["cv_rmse"] == pytest.approx(np.mean(cv["rmse"]))
    assert row["cv_mae"] == pytest.approx(np.mean(cv["mae"]))
    assert {"test_rmse", "test_mae", "test_r2"} <= set(row)


# ----------------------------------------------------------------------------- metrics


def test_regression_metrics_by_hand():
    y_true = [1.0, 2.0, 3.0, 4.0]
    y_pred = [2.0, 2.0, 2.0, 6.0]
    # errors 1, 0, -1, 2 -> squared 1, 0, 1, 4
    m = regression_metrics(np.array(y_true), pd.Series(y_pred))
    assert m["rmse"] == pytest.approx(math.sqrt(6 / 4))
    assert m["mae"] == pytest.approx(4 / 4)
    # R^2 = 1 - SSE/SST, mean 2.5 -> SST = 2.25 + 0.25 + 0.25 + 2.25 = 5
    assert m["r2"] == pytest.approx(1 - 6 / 5)
    assert all(type(v) is float for v in m.values())


def test_regression_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        regression_metrics([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        regression_metrics([1.0, 2.0], [1.0, np.nan])
    with pytest.raises(ValueError, match="empty"):
        regression_metrics([], [])
