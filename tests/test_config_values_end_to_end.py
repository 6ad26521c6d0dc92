"""The whole default target (raw data to the model comparison) with non-default values of the
settings the modelling reads, so that a valid config can never crash after the expensive part.

Two small real Snakemake runs cover every value: a rolling window of 1 with row lags, 2 volume
bins and no rare-DRG threshold, the log target form and absolute intervals (ridge alone); a
rolling window of 3 with the same-year features and the year as features and the raw target
form (the two tree models). The tuning budget is tiny (1 shard x 2 trials per model); both end
with the forecast.

A third run is the default configuration on other generated data (another seed, another
scale) with a small budget: the champion must beat naive persistence at every backtest origin,
so the default target form and models are not fitted to the default data alone. On every run
no tuned model's CV RMSE or MAE is worse than persistence's."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_CONFIG, snakemake_command, write_config
from modelling_frames import rare_drg_threshold, small_config

from drg_workflow.columns import history_columns
from drg_workflow.documents import read_json
from drg_workflow.tables import read_arrow

pytestmark = pytest.mark.workflow

TARGET = "w_total_median_profit"
KEYS = ["year", "facility_id", "apr_drg_code"]
METRICS = ("cv_rmse", "val_rmse", "val_mae", "val_r2", "test_rmse", "test_mae", "test_r2")

#: What every search space holds: the region that reduces to persistence, and the loss weights.
TARGET_FORM_SPACE = {
    "max_log_change": {"type": "float", "low": 0.0, "high": 1.0},
    "loss_weight_power": {"type": "categorical", "values": [0.0, 1.0]},
}
#: One shard of two trials per model in one round, each model as small as it gets.
TINY_MODELLING: dict = {
    "tuning": {"n_shards": 1, "trials_per_shard": 2, "rounds": 1},
    "importance": {"n_repeats": 1},
    "models": {
        "random_forest": {
            "search_space": {
                "max_depth": {"type": "int", "low": 2, "high": 4},
                **TARGET_FORM_SPACE,
            },
            "fixed_params": {"n_estimators": 5, "n_jobs": 1},
        },
        "ridge": {
            "search_space": {
                "alpha": {"type": "float", "low": 0.1, "high": 10.0},
                **TARGET_FORM_SPACE,
            }
        },
        "hist_gradient_boosting": {
            "search_space": {
                "max_iter": {"type": "int", "low": 5, "high": 10},
                **TARGET_FORM_SPACE,
            }
        },
    },
}

#: The default chain (the schema's).
SMALL_CONFIG_CHAIN = small_config()["chain"]
#: The 8-year run: a raw file of 2009-2016.
EIGHT_YEARS = "window1-by-row-2-bins-no-threshold"
RUNS = {
    EIGHT_YEARS: {
        # 2009-2016: too few years for the default split, which shrinks to fit them.
        "raw": {
            "source": "synthetic",
            "synthetic": {"seed": 7, "scale": 0.02, "first_year": 2009, "last_year": 2016},
        },
        "lags": {"rolling_window": 1, "by": "row"},
        "transformations": {
            "yearly_discharge_bin": {"bins": 2},
            "drop_rare_drgs": {"threshold": 0},
        },
        # The optional v14 (series_history, by row) as the models' data, ridge leaving out
        # three of its groups.
        "chain": [
            *SMALL_CONFIG_CHAIN,
            {"version": "v14", "transformation": "series_history", "input": "v13"},
        ],
        # These values change the data and the baseline; one model (the quickest) is enough.
        "modelling": {
            **TINY_MODELLING,
            "data_version": "v14",
            "models": {
                "ridge": {
                    **TINY_MODELLING["models"]["ridge"],
                    "drop_feature_groups": ["lags", "facility", "drg"],
                }
            },
            "target_form": "log",
        },
        "forecast": {"interval_method": "absolute"},
    },
    "window3-same-year-features-and-year": {
        "lags": {"rolling_window": 3},
        "transformations": SMALL_CONFIG["transformations"],
        # The tree models (ridge runs in the other two): a model adds processes, not coverage.
        "modelling": {
            **TINY_MODELLING,
            "models": {
                model: TINY_MODELLING["models"][model]
                for model in ("random_forest", "hist_gradient_boosting")
            },
            "include_same_year_features": True,
            "include_year": True,
            "target_form": "raw",
            # Not every validation and test year: one reporting origin measures the intervals.
            "backtest": {"origins": [2014, 2015, 2017], "bootstrap_resamples": 200},
        },
    },
    # The default models, search spaces and target form on other data: 4 trials per model in
    # 2 rounds.
    "seed-2027-scale-0.05-default-models": {
        "raw": {"source": "synthetic", "synthetic": {"seed": 2027, "scale": 0.05}},
        "transformations": {"drop_rare_drgs": {"threshold": rare_drg_threshold(0.05)}},
        "modelling": {
            "tuning": {
                "n_shards": 1,
                "trials_per_shard": 4,
                "rounds": 2,
                "tpe_n_startup_trials": 2,
            }
        },
    },
}
DEFAULTS = "seed-2027-scale-0.05-default-models"
#: The schema's defaults of the modelling settings (models and search spaces among them).
MODELLING_DEFAULTS = small_config()["modelling"]


def configured_models(config: dict) -> list[str]:
    """The models a run's config tunes (the schema's defaults unless it lists its own)."""
    return list(config.get("modelling", {}).get("models", MODELLING_DEFAULTS["models"]))


def run_default_target(workdir: Path, config: dict, *targets: str) -> subprocess.CompletedProcess:
    write_config(workdir, {"raw": SMALL_CONFIG["raw"], **config})
    # An MLFLOW_TRACKING_URI of the developer's shell would send the test's runs elsewhere.
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return subprocess.run(
        snakemake_command(workdir, *targets), capture_output=True, text=True, timeout=900, env=env
    )


@pytest.fixture(scope="module", params=sorted(RUNS))
def finished_run(request, tmp_path_factory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp(request.param)
    config = RUNS[request.param]
    # The run on other data needs the models and the forecast, not the report's figures.
    targets = ("results/forecast/forecast.csv",) if request.param == DEFAULTS else ()
    result = run_default_target(workdir, config, *targets)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, config


def test_comparison_has_every_model_and_the_baseline_with_finite_metrics(finished_run):
    workdir, config = finished_run
    table = pd.read_csv(workdir / "results/models/comparison.csv")
    assert sorted(table["model"]) == sorted([*configured_models(config), "baseline"])
    for column in METRICS:
        assert all(math.isfinite(value) for value in table[column]), column


def test_baseline_predicts_the_lag_else_the_configured_rolling_mean(finished_run):
    workdir, config = finished_run
    window = config.get("lags", {}).get("rolling_window", 2)
    lag, rolling = f"{TARGET}_lag1", f"{TARGET}_rolling{window}"
    version = config["modelling"].get("data_version", "v13")
    data = read_arrow(workdir / f"results/{version}/{version}.arrow")
    predictions = pd.read_csv(workdir / "results/models/baseline/predictions.csv")
    merged = predictions.merge(data, on=KEYS, how="left", validate="one_to_one")
    assert len(merged) == len(predictions) > 0
    expected = np.where(merged[lag].notna(), merged[lag], merged[rolling])
    np.testing.assert_allclose(merged["y_pred"], expected, rtol=1e-12)
    np.testing.assert_allclose(merged["y_true"], merged[TARGET], rtol=1e-12)


def test_models_use_the_configured_features(finished_run):
    workdir, config = finished_run
    modelling = config["modelling"]
    for model in configured_models(config):
        features = read_json(workdir / f"results/models/{model}/metrics.json")["features"]
        assert ("year" in features) == modelling.get("include_year", False)
        assert ("yearly_discharge_bin" in features) == modelling.get(
            "include_same_year_features", False
        )
        window = config.get("lags", {}).get("rolling_window", 2)
        assert f"{TARGET}_rolling{window}" in features
        history = history_columns(TARGET)
        dropped = modelling.get("models", {}).get(model, {}).get("drop_feature_groups", [])
        for group, columns in history.items():
            # Every column of the group where the model sees it, none where it does not.
            sees_it = modelling.get("data_version") == "v14" and group not in dropped
            assert set(columns) & set(features) == (set(columns) if sees_it else set()), group


def test_models_learn_in_the_configured_form_and_the_forecast_follows(finished_run):
    workdir, config = finished_run
    form = config["modelling"].get("target_form", "relative")
    method = config.get("forecast", {}).get("interval_method", "signed_log")
    for model in configured_models(config):
        settings = read_json(workdir / f"results/models/{model}/metrics.json")
        assert settings["target_form"] == form
    forecast = pd.read_csv(workdir / "results/forecast/forecast.csv")
    metadata = read_json(workdir / "results/forecast/forecast_metadata.json")
    assert metadata["interval"]["method"] == method and len(forecast) == metadata["rows"] > 0
    levels = metadata["interval"]["levels"]
    bounds = [f"{side}_{level:g}" for level in levels for side in ("lower", "upper")]
    values = forecast[["persistence", "prediction", *bounds]]
    assert np.isfinite(values.to_numpy()).all()
    for level in levels:
        assert (forecast[f"lower_{level:g}"] <= forecast["prediction"]).all()
        assert (forecast["prediction"] <= forecast[f"upper_{level:g}"]).all()


def test_no_tuned_model_is_worse_than_persistence_in_cv(finished_run):
    """Every study starts with the trial that reduces to persistence and minimises the larger
    of its capped-RMSE and MAE ratios to persistence's: whatever the data and the budget, the
    best trial's loss ratio is at most 1 and its CV MAE at most persistence's (its plain CV
    RMSE may be above, when one series' jump makes most of a fold's squared error)."""
    workdir, config = finished_run
    table = pd.read_csv(workdir / "results/models/comparison.csv").set_index("model")
    for model in configured_models(config):
        metrics = read_json(workdir / f"results/models/{model}/metrics.json")
        assert metrics["cv_loss_ratio"] <= 1.0, (model, metrics["cv_loss_ratio"])
        assert table.loc[model, "cv_mae"] <= table.loc["baseline", "cv_mae"], model


def test_the_backtest_follows_the_configured_origins(finished_run):
    workdir, config = finished_run
    last_year = config.get("raw", {}).get("synthetic", {}).get("last_year", 2017)
    every_origin = [2014, 2015, 2016, 2017] if last_year == 2017 else [2014, 2015, 2016]
    origins = config["modelling"].get("backtest", {}).get("origins") or every_origin
    backtest = pd.read_csv(workdir / "results/backtest/backtest.csv")
    assert sorted(backtest["origin"].unique()) == origins
    interval = read_json(workdir / "results/forecast/forecast_metadata.json")["interval"]
    # The forecast's intervals are calibrated on every origin; their coverage is measured at
    # the reporting origins with intervals calibrated on the choosing ones.
    assert interval["calibration"]["years"] == origins
    assert interval["test"]["calibration_years"] == [o for o in origins if o <= 2015]
    assert interval["test"]["years"] == [o for o in origins if o > 2015]


def test_on_other_data_a_champion_passes_the_gate_and_beats_persistence_in_mae_every_year(
    finished_run,
):
    """On other data the default models and target form give a champion: it beats persistence
    in MAE on the choosing origins and is not significantly worse in RMSE on any (the gate),
    and it beats persistence in MAE at the reporting origins too.
    RMSE at a reporting origin is not asserted: on this small data (4 trials per model) a few
    series can decide it (the ridge champion of 2026-11-29 lost 2016 by 8% in RMSE, won it by
    8% in MAE)."""
    workdir, config = finished_run
    if config is not RUNS[DEFAULTS]:
        pytest.skip("checked on the default configuration's run only")
    table = pd.read_csv(workdir / "results/models/comparison.csv").set_index("model")
    best = table.loc[table["champion"]].iloc[0]
    assert best.name != "baseline", "no model passes the skill gate"
    assert best["skill_rmse_lower"] > 0 and best["skill_mae_lower"] > 0
    assert "paired bootstrap" in best["gate_test"]
    backtest = pd.read_csv(workdir / "results/backtest/backtest.csv")
    rows = backtest[backtest["model"] == best.name]
    choosing = rows[rows["role"] == "choosing"]
    assert (choosing["skill_mae"] > 0).all() and (choosing["skill_rmse_upper"] > 0).all(), rows
    assert (rows["skill_mae"] > 0).all(), rows


def test_eight_years_of_data_run_with_the_default_split_and_forecast_the_next_year(
    finished_run,
):
    """2009-2016: 7 modelling years are too few for 2 test + 2 validation + 4 train years, so
    the default split shrinks its test years to 1 (and says so); the forecast is for 2017."""
    workdir, config = finished_run
    if config is not RUNS[EIGHT_YEARS]:
        pytest.skip("checked on the 8-year run only")
    split = read_json(workdir / "results/models/split.json")
    assert split["split"] == {
        "train": [2010, 2013],
        "validation": [2014, 2015],
        "test": [2016, 2016],
    }
    assert split["cv_folds"] == 3 and split["cv_fold_years"] == [2011, 2012, 2013]
    log = (workdir / "logs/split_years/split_years.log").read_text()
    assert "using 1 test, 2 validation and 4 train years (3 tuning folds)" in log
    assert read_json(workdir / "results/forecast/forecast_metadata.json")["forecast_year"] == 2017
