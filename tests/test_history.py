"""series_history (v14): the target's history before each row's year, on hand-made frames, and
a leakage check through the real chain: changing every value of one year changes no feature
of that year's rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from modelling_frames import model_settings, small_config

from drg_workflow import transformations as t
from drg_workflow.chain import configured_parameters
from drg_workflow.columns import history_columns
from drg_workflow.config_validation import ConfigError, validate_config
from drg_workflow.hashing import file_sha256
from drg_workflow.modelling.data import (
    ModellingDataError,
    prepare_modelling_data,
    select_features,
)
from drg_workflow.modelling.final import fit_final_model
from drg_workflow.modelling.settings import FeatureSettings, MlflowSettings
from drg_workflow.modelling.tracking import (
    FinalRun,
    LoggedDataset,
    ensure_experiment,
    log_final_run,
)
from drg_workflow.signed_log import signed_log
from drg_workflow.synthetic import generate_raw

T = "p"
NAMES = history_columns(T)


def frame() -> pd.DataFrame:
    """Three series: (1, 10) with a placeholder year 2014 (target unknown, as the forecast's
    rows are), (1, 20) starting in 2011, and (2, 10), whose 2011 is known only from its 2012
    row's lag."""
    return pd.DataFrame(
        {
            "year": [2010, 2011, 2012, 2014, 2011, 2012, 2012],
            "facility_id": [1, 1, 1, 1, 1, 1, 2],
            "apr_drg_code": [10, 10, 10, 10, 20, 20, 10],
            T: [100.0, 110.0, 121.0, np.nan, 50.0, 60.0, 7.0],
            f"{T}_lag1": [90.0, 100.0, 110.0, np.nan, np.nan, 50.0, 5.0],
        }
    )


def change(new: float, old: float) -> float:
    logged = signed_log(np.array([new, old], dtype=float))
    return float(logged[0] - logged[1])


def column(out: pd.DataFrame, name: str) -> list[float]:
    return [None if np.isnan(v) else pytest.approx(v) for v in out[name]]


def test_series_features_by_year_come_from_earlier_years_only():
    out = t.series_history(frame(), T, by="year")
    assert list(out.columns[:5]) == list(frame().columns)
    assert out[list(frame().columns)].equals(frame())  # rows and their order unchanged
    lag2, lag3 = NAMES["lags"]
    # 2009's value is known from the 2010 row's lag; 2013 is missing, so 2014's lag 2 is 2012.
    assert column(out, lag2) == [None, 90.0, 100.0, 121.0, None, None, None]
    assert column(out, lag3) == [None, None, 90.0, 110.0, None, None, None]
    last_change, mean_change = NAMES["trend"]
    assert column(out, last_change) == [None, change(100, 90), change(110, 100)] + [None] * 4
    changes_before_2014 = [change(100, 90), change(110, 100), change(121, 110)]
    assert out[mean_change].iloc[3] == pytest.approx(np.mean(changes_before_2014))
    assert out[NAMES["volatility"][0]].iloc[3] == pytest.approx(np.std(changes_before_2014))
    assert np.isnan(out[NAMES["volatility"][0]].iloc[1])  # one change is no spread
    assert out[NAMES["age"][0]].tolist() == [1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 1.0]


def test_facility_and_drg_figures_are_last_years_own_rows():
    out = t.series_history(frame(), T, by="year")
    total, facility_change, drgs = NAMES["facility"]
    # Facility 1's own rows: 2010 100; 2011 110 + 50; 2012 121 + 60. The 2009 value known from
    # a lag is not a row of 2009, and facility 2's 2011 is known only from its 2012 row.
    assert column(out, total) == [None, 100.0, 160.0, None, 100.0, 160.0, None]
    assert column(out, drgs) == [None, 1.0, 2.0, None, 1.0, 2.0, None]
    # Median change into 2011 over facility 1's DRGs: (1, 20) has no 2010, so only (1, 10).
    assert out[facility_change].iloc[2] == pytest.approx(change(110, 100))
    mean, drg_change, facilities = NAMES["drg"]
    # DRG 10 in 2011: only facility 1's own row; in 2012 both facilities' rows.
    assert column(out, mean) == [None, 100.0, 110.0, None, None, 50.0, 110.0]
    assert column(out, facilities) == [None, 1.0, 1.0, None, None, 1.0, 1.0]
    assert out[drg_change].iloc[6] == pytest.approx(change(110, 100))


def test_by_row_the_lags_are_earlier_rows_whatever_their_year():
    out = t.series_history(frame(), T, by="row")
    lag2, lag3 = NAMES["lags"]
    assert column(out, lag2) == [None, None, 100.0, 110.0, None, None, None]
    assert column(out, lag3) == [None, None, None, 100.0, None, None, None]
    # The change into 2012 counts across the 2013 gap in row mode.
    assert out[NAMES["trend"][0]].iloc[3] == pytest.approx(change(121, 110))


def test_series_history_refuses_duplicate_rows_and_names_missing_columns():
    doubled = pd.concat([frame(), frame().iloc[:1]], ignore_index=True)
    with pytest.raises(t.TransformationError, match="several rows share"):
        t.series_history(doubled, T, by="year")
    with pytest.raises(t.TransformationError, match="lacks column.*p_lag1"):
        t.series_history(frame().drop(columns=[f"{T}_lag1"]), T, by="year")
    with pytest.raises(t.TransformationError, match="by must be"):
        t.series_history(frame(), T, by="month")


# ----------------------------------------------------------------------------- leakage


def chain_from_v10(config: dict, v10: pd.DataFrame) -> pd.DataFrame:
    """The configured chain's steps after v10 (lags to the modelling data) applied to ``v10``."""
    frames = {"v10": v10}
    after = [s for s in config["chain"] if int(s["version"][1:].split("_")[0]) > 10]
    for step in after:
        frames[step["version"]] = t.apply_transformation(
            step["transformation"],
            frames[step["input"]],
            configured_parameters(config, step["transformation"]),
        )
    return frames[config["modelling"]["data_version"]]


@pytest.fixture(scope="module")
def chain_config_and_v10():
    # The default chain with v14 appended, and the models learning from it (the optional step
    # of docs/data-versions.md).
    config = v14_config()
    frames = {"v0": generate_raw(**{**config["raw"]["synthetic"], "seed": 11})}
    for step in config["chain"]:
        frames[step["version"]] = t.apply_transformation(
            step["transformation"],
            frames[step["input"]],
            configured_parameters(config, step["transformation"]),
        )
        if step["version"] == "v10":
            break
    return config, frames["v10"]


def year_rows_features(config, v10, year):
    data = chain_from_v10(config, v10)
    features = select_features(
        data.columns,
        FeatureSettings(
            config["target"], tuple(config["lags"]["columns"]), config["lags"]["rolling_window"]
        ),
    )
    rows = data.loc[data["year"] == year].sort_values(["facility_id", "apr_drg_code"])
    return rows.reset_index(drop=True), features


def shifted_year(v10: pd.DataFrame, columns, year: int) -> pd.DataFrame:
    """``v10`` with every value of ``columns`` in ``year`` changed."""
    shifted = v10.copy()
    in_year = shifted["year"] == year
    for name in columns:
        shifted[name] = shifted[name].astype(float).where(~in_year, shifted[name] * 1.7 + 1000.0)
    return shifted


def changed_features(config, v10, shifted, year) -> list[str]:
    before, features = year_rows_features(config, v10, year)
    after, _ = year_rows_features(config, shifted, year)
    assert before[["facility_id", "apr_drg_code"]].equals(after[["facility_id", "apr_drg_code"]])
    return [name for name in features if not before[name].equals(after[name])]


def test_no_feature_of_a_year_changes_when_that_years_values_do(chain_config_and_v10):
    config, v10 = chain_config_and_v10
    assert config["modelling"]["data_version"] == "v14"
    added = [name for group in history_columns(config["target"]).values() for name in group]
    year = 2014
    assert set(added) <= set(year_rows_features(config, v10, year)[1])  # all are features
    # Every lag-list value of 2014 changes (the target's among them): no feature of a 2014 row.
    assert (
        changed_features(config, v10, shifted_year(v10, config["lags"]["columns"], year), year)
        == []
    )
    # The same change one year earlier reaches last year's lag and every history feature made
    # of last year's values (not the counts, the age or lags 2 and 3), so the comparison does
    # see a change where there is one.
    earlier = changed_features(
        config, v10, shifted_year(v10, config["lags"]["columns"], year - 1), year
    )
    names = history_columns(config["target"])
    of_last_year = [
        f"{config['target']}_lag1",
        *names["trend"],
        *names["volatility"],
        *names["facility"][:2],
        *names["drg"][:2],
    ]
    assert set(of_last_year) <= set(earlier), earlier


# ------------------------------------------------------------- groups a model leaves out

#: What a linear model of the history is given without (docs/models-and-tuning.md).
DROPPED = ("lags", "facility", "drg")


def v14_config() -> dict:
    """The small config with v14 in the chain and the models learning from it."""
    chain = [
        *small_config()["chain"],
        {"version": "v14", "transformation": "series_history", "input": "v13"},
    ]
    return small_config(chain=chain, modelling={"data_version": "v14"})


def forest(config: dict, dropped: tuple[str, ...]):
    return model_settings(
        "random_forest",
        {},
        {"n_estimators": 10, "max_depth": 6, "n_jobs": 1},
        config=config,
        drop_feature_groups=dropped,
    )


def shuffled(X: pd.DataFrame, columns, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = X.copy()
    for name in columns:
        out[name] = rng.permutation(out[name].to_numpy())
    return out


#: The bound and loss weights of the forests below (no tuning).
FOREST_PARAMS = {"max_log_change": 1.0, "loss_weight_power": 0.0}


@pytest.fixture(scope="module")
def dropping_forest(chain_config_and_v10):
    """The v14 modelling data (frame and split), and a forest fitted on its train years
    without the columns of :data:`DROPPED`."""
    config, v10 = chain_config_and_v10
    model = forest(config, DROPPED)
    frame = chain_from_v10(config, v10)
    data = prepare_modelling_data(frame, model.modelling)
    fitted = fit_final_model(model, FOREST_PARAMS, data.X["train"], data.y["train"])
    return frame, data, model, fitted


def test_a_model_never_sees_the_columns_of_the_groups_it_drops(
    chain_config_and_v10, dropping_forest
):
    config, _ = chain_config_and_v10
    _, data, model, fitted = dropping_forest
    names = history_columns(config["target"])
    dropped = [name for group in DROPPED for name in names[group]]
    assert list(model.dropped_features) == dropped
    X, y, X_val = data.X["train"], data.y["train"], data.X["validation"]
    seen = list(fitted.regressor_.feature_names_in_)
    assert not set(dropped) & set(seen) and set(names["trend"]) <= set(seen)
    # Shuffling what it dropped changes nothing; shuffling what it kept, or what a model that
    # drops nothing sees, does.
    before = fitted.predict(X_val)
    assert np.array_equal(fitted.predict(shuffled(X_val, dropped)), before)
    assert not np.array_equal(fitted.predict(shuffled(X_val, names["trend"])), before)
    everything = fit_final_model(forest(config, ()), FOREST_PARAMS, X, y)
    assert not np.array_equal(
        everything.predict(shuffled(X_val, dropped)), everything.predict(X_val)
    )
    # Data without the columns (a version not made by series_history) is named, not guessed.
    with pytest.raises(ModellingDataError, match="drop_feature_groups"):
        fitted.predict(X_val.drop(columns=list(names["lags"])))


def test_dropping_groups_needs_modelling_data_made_by_series_history():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    groups = schema["$defs"]["model_config"]["properties"]["drop_feature_groups"]
    assert groups["items"]["enum"] == list(history_columns(T))
    ridge = {"ridge": {**small_config()["modelling"]["models"]["ridge"]}}
    ridge["ridge"]["drop_feature_groups"] = list(DROPPED)
    v14 = v14_config()
    accepted = validate_config({**v14, "modelling": {**v14["modelling"], "models": ridge}}, schema)
    assert accepted["modelling"]["models"]["ridge"]["drop_feature_groups"] == list(DROPPED)
    # v14 is in the chain, but the models learn from v13.
    config = {"chain": v14["chain"], "modelling": {"data_version": "v13", "models": ridge}}
    with pytest.raises(ConfigError) as raised:
        validate_config(config, schema)
    assert str(raised.value) == (
        "config key modelling.models.ridge.drop_feature_groups: the groups are columns of "
        "series_history, but the modelling data (v13) does not come from it; add it to chain "
        "and set modelling.data_version (docs/data-versions.md, v14)"
    )


def test_a_model_that_drops_groups_loads_back_from_mlflow_and_predicts_the_same(
    chain_config_and_v10, dropping_forest, tmp_path
):
    """The champion is loaded from the registry where it is applied (the forecast): it keeps
    the columns it leaves out, and predicts from the whole modelling data as when fitted."""
    import mlflow
    import mlflow.sklearn

    config, _ = chain_config_and_v10
    frame, data, model, fitted = dropping_forest
    experiment = ensure_experiment(
        MlflowSettings(f"sqlite:///{tmp_path / 'mlflow.db'}", "drops", str(tmp_path / "art"))
    )
    data_file = tmp_path / "v14.parquet"
    frame.to_parquet(data_file)
    info = log_final_run(
        experiment,
        FinalRun(model=model.name, params=FOREST_PARAMS, metrics={}, config_hash="drops"),
        LoggedDataset(frame, "v14", str(data_file), config["target"], file_sha256(data_file)),
        estimator=fitted,
        X_example=data.X["train"],
    )
    mlflow.set_tracking_uri(experiment.tracking_uri)
    loaded = mlflow.sklearn.load_model(info["model_uri"])
    X_val = data.X["validation"]
    assert tuple(loaded.dropped_columns) == model.dropped_features
    np.testing.assert_array_equal(loaded.predict(X_val), fitted.predict(X_val))
