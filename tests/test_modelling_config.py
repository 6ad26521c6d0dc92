"""The modelling config: parse-time checks, their scikit-learn-free path and cache, study
naming, study results of the current shards, the comparison's warning, the baseline's run."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from modelling_frames import modelling_frame, modelling_settings, modelling_years
from optuna.trial import TrialState

from drg_workflow.config_validation import ConfigError, validate_config
from drg_workflow.modelling.baseline import evaluate_baseline
from drg_workflow.modelling.data import split_by_year
from drg_workflow.modelling.steps.shared import study_name
from drg_workflow.modelling.tuning import StudyRef, open_storage, study_results

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


#: An explicit split (year ranges instead of the default numbers of years).
EXPLICIT = {"train": [2010, 2014], "validation": [2015, 2015], "test": [2016, 2017]}
#: What every search space holds: the region that reduces to persistence, and the loss weights.
TARGET_FORM_SPACE = {
    "max_log_change": {"type": "float", "low": 0.0, "high": 1.0},
    "loss_weight_power": {"type": "categorical", "values": [0.0, 1.0]},
}


def with_modelling(**modelling) -> dict:
    return {"modelling": copy.deepcopy(modelling)}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            with_modelling(models={"ridge": {"search_space": {"alpha": {"type": "float"}}}}),
            "config key modelling.models.ridge.search_space.alpha: 'low' is a required",
        ),
        (
            with_modelling(
                models={"ridge": {"search_space": {"alpha": {"type": "float", "low": 1}}}}
            ),
            "config key modelling.models.ridge.search_space.alpha: 'high' is a required",
        ),
        (
            # YAML 1.1 reads 1.0e4 (no exponent sign) as a string.
            with_modelling(
                models={
                    "ridge": {
                        "search_space": {"alpha": {"type": "float", "low": 1, "high": "1.0e4"}}
                    }
                }
            ),
            "config key modelling.models.ridge.search_space.alpha.high: '1.0e4' is not of type",
        ),
        (
            with_modelling(models={"ridge": {"search_space": {"alpha": {"type": "categorical"}}}}),
            "config key modelling.models.ridge.search_space.alpha: 'values' is a required",
        ),
        (
            with_modelling(
                models={
                    "ridge": {
                        "search_space": {
                            "alpha": {"type": "float", "low": 1, "high": 2, "values": [1]}
                        }
                    }
                }
            ),
            "config key modelling.models.ridge.search_space.alpha: unknown key(s) 'values'",
        ),
        (
            with_modelling(
                models={
                    "ridge": {"search_space": {"alpha": {"type": "float", "low": 5, "high": 1}}}
                }
            ),
            "config key modelling.models.ridge.search_space.alpha: low (5) must be < high (1)",
        ),
        (
            with_modelling(
                models={
                    "ridge": {
                        "search_space": {
                            "alpha": {"type": "float", "low": 0, "high": 1, "log": True}
                        }
                    }
                }
            ),
            "config key modelling.models.ridge.search_space.alpha: log: true needs low > 0",
        ),
        (
            with_modelling(
                models={"gbm": {"search_space": {"eta": {"type": "float", "low": 0.1, "high": 1}}}}
            ),
            "config key modelling.models.gbm: unknown model 'gbm'",
        ),
        (
            with_modelling(models={"ridge": {"fixed_params": {"alpha": 1.0}}}),
            "config key modelling.models.ridge: 'search_space' is a required property",
        ),
        (with_modelling(models={}), "config key modelling.models: {} should be non-empty"),
        (
            with_modelling(split={**EXPLICIT, "train": [2010, 2012]}),
            "config key modelling.cv_folds: 3 year folds need at least 4 train years",
        ),
        (
            with_modelling(split={**EXPLICIT, "validation": [2016, 2015]}),
            "config key modelling.split.validation: 2016 is after 2015",
        ),
        (
            with_modelling(split={**EXPLICIT, "test": [2015, 2017]}),
            "config key modelling.split: validation years ([2015, 2015]) must end before test",
        ),
        (
            # Explicit train years, relative validation and test years (the defaults).
            with_modelling(split={"train": [2010, 2012]}),
            "config key modelling.split: train: [2010, 2012], validation: 2, test: 2 mixes two "
            "forms; give validation and test as numbers of years with train: null",
        ),
        (with_modelling(split={"test": 0}), "config key modelling.split.test: 0 is not valid"),
        (
            with_modelling(backtest={"origins": []}),
            "config key modelling.backtest.origins: [] should be non-empty",
        ),
        (
            with_modelling(
                models={
                    "ridge": {"search_space": {"alpha": {"type": "float", "low": 1, "high": 2}}}
                }
            ),
            "config key modelling.models.ridge.search_space.max_log_change: every search space "
            "tunes max_log_change from 0.0 (at 0.0 the model predicts last year's value",
        ),
        (
            with_modelling(
                models={
                    "ridge": {
                        "search_space": {
                            "max_log_change": {"type": "float", "low": 0.1, "high": 1.0}
                        }
                    }
                }
            ),
            "config key modelling.models.ridge.search_space.max_log_change.low: must be 0.0 "
            "(persistence), not 0.1",
        ),
        (
            with_modelling(
                models={
                    "ridge": {
                        "search_space": {
                            "max_log_change": {"type": "categorical", "values": [0.2, 0.5]}
                        }
                    }
                }
            ),
            "search_space.max_log_change.values: numbers >= 0 including 0.0 (persistence)",
        ),
        (
            with_modelling(
                models={
                    "ridge": {
                        "search_space": {"alpha": {"type": "float", "low": 1, "high": 2}},
                        "fixed_params": {"max_log_change": 0.3},
                    }
                }
            ),
            "search_space.max_log_change: every search space tunes max_log_change",
        ),
        (
            with_modelling(
                models={
                    "ridge": {
                        "search_space": {
                            "max_log_change": {"type": "float", "low": 0.0, "high": 1.0}
                        }
                    }
                }
            ),
            "config key modelling.models.ridge: set loss_weight_power in fixed_params (1: each "
            "row's loss weighted by last year's value",
        ),
        (
            with_modelling(
                models={
                    "ridge": {
                        "search_space": {
                            "max_log_change": {"type": "float", "low": 0.0, "high": 1.0}
                        },
                        "fixed_params": {"loss_weight_power": -1},
                    }
                }
            ),
            "config key modelling.models.ridge.fixed_params.loss_weight_power: a number >= 0",
        ),
        (
            with_modelling(tuning={"storage": "results/{study}.journal"}),
            "config key modelling.tuning.storage",
        ),
        (with_modelling(tuning={"n_shards": 0}), "config key modelling.tuning.n_shards"),
        (
            with_modelling(tuning={"pruner": {"n_warmup_steps": 0}}),
            "config key modelling.tuning.pruner.n_warmup_steps",
        ),
        (
            with_modelling(split={"test": 1, "minimum": {"test": 2}}),
            "config key modelling.split.minimum.test: 2 is more than modelling.split.test (1)",
        ),
        (
            with_modelling(cv_folds=2, split={"minimum": {"cv_folds": 3}}),
            "config key modelling.split.minimum.cv_folds: 3 is more than modelling.cv_folds (2)",
        ),
        (with_modelling(tuning={"shards": 2}), "unknown key(s) 'shards'"),
    ],
)
def test_bad_modelling_config_names_the_key(config, expected):
    with pytest.raises(ConfigError) as raised:
        validate_config(config, SCHEMA)
    assert expected in str(raised.value)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (
            with_modelling(tuning={"storage": "postgresql://alice:s3cret@db.example.org/optuna"}),
            "config key modelling.tuning.storage: 'postgresql://db.example.org/optuna'",
        ),
        (
            with_modelling(mlflow={"tracking_uri": "http://alice:s3cret@mlflow.example.org:5000"}),
            "config key modelling.mlflow.tracking_uri: 'http://mlflow.example.org:5000'",
        ),
    ],
)
def test_a_password_in_a_url_is_refused_saying_how_to_pass_it(config, key):
    """Both keys give the one message: where the password goes instead, never the password."""
    with pytest.raises(ConfigError) as raised:
        validate_config(config, SCHEMA)
    message = str(raised.value)
    assert message.startswith(key) and "s3cret" not in message and "alice" not in message
    for way in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "storage_env: OPTUNA"):
        assert way in message


def test_a_user_name_alone_and_a_storage_variable_are_accepted():
    config = with_modelling(
        tuning={"storage": "postgresql://alice@db/optuna", "storage_env": "OPTUNA_STORAGE"}
    )
    assert validate_config(config, SCHEMA)["modelling"]["tuning"]["storage_env"] == (
        "OPTUNA_STORAGE"
    )
    with pytest.raises(ConfigError, match="modelling.tuning.storage_env"):
        validate_config(with_modelling(tuning={"storage_env": "not a name"}), SCHEMA)


def test_a_password_in_mlflow_tracking_uri_stops_the_run_before_any_job(tmp_path: Path):
    """The tracking URI from the environment becomes a rule param too: refused the same way."""
    import os

    from conftest import SMALL_CONFIG, snakemake_command, write_config

    write_config(tmp_path, SMALL_CONFIG)
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://alice:s3cret@mlflow.example.org:5000"}
    result = subprocess.run(
        snakemake_command(tmp_path, "-n"), capture_output=True, text=True, env=env, timeout=300
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        "environment variable MLFLOW_TRACKING_URI: 'http://mlflow.example.org:5000' carries a "
        "user:password" in output
    )
    assert "MLFLOW_TRACKING_PASSWORD" in output and "s3cret" not in output


def test_defaults_fill_every_model_and_setting():
    config = validate_config({}, SCHEMA)["modelling"]
    assert list(config["models"]) == ["random_forest", "ridge", "hist_gradient_boosting"]
    assert all(model["fixed_params"] is not None for model in config["models"].values())
    assert config["tuning"]["storage"] == "results/optuna/{model}.journal"
    assert config["mlflow"]["tracking_uri"] is None
    assert config["split"] == {
        "train": None,
        "validation": 2,
        "test": 2,
        "minimum": {"test": 1, "validation": 1, "cv_folds": 1},
    }
    assert (config["tuning"]["rounds"], config["tuning"]["pruner"]["n_warmup_steps"]) == (2, 1)
    assert config["backtest"] == {
        "origins": None,
        "bootstrap_resamples": 1000,
        "interval_level": 0.9,
    }
    # Every default search space reaches persistence (max_log_change from 0), and every model
    # says how its loss is weighted.
    for model in config["models"].values():
        assert model["search_space"]["max_log_change"]["low"] == 0.0
        assert "loss_weight_power" in {**model["search_space"], **model["fixed_params"]}
    # Listing only some models runs only those.
    space = {"alpha": {"type": "float", "low": 0.1, "high": 1.0}, **TARGET_FORM_SPACE}
    only = validate_config(with_modelling(models={"ridge": {"search_space": space}}), SCHEMA)
    assert list(only["modelling"]["models"]) == ["ridge"]
    # Explicit years are still allowed.
    explicit = validate_config(with_modelling(split=EXPLICIT), SCHEMA)["modelling"]["split"]
    assert {k: explicit[k] for k in EXPLICIT} == EXPLICIT


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT / "scripts",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_parse_path_never_imports_scikit_learn():
    """The Snakefile validates the config on every parse; the estimator checks, which import
    scikit-learn (about a second), are left to the setup_study jobs."""
    code = f"""
        import sys, yaml
        from drg_workflow.config_validation import validate_config
        schema = yaml.safe_load(open({str(ROOT / "workflow/schemas/config.schema.yaml")!r}))
        validate_config({{}}, schema)
        print("sklearn" in sys.modules)
    """
    assert run_python(code) == "False"


def test_estimator_errors_are_left_to_the_setup_job():
    """A parameter the estimator does not know passes the config validation (the setup_study
    job names it, see test_models_workflow.py)."""
    space = {"alpah": {"type": "float", "low": 1, "high": 2}, **TARGET_FORM_SPACE}
    config = validate_config(with_modelling(models={"ridge": {"search_space": space}}), SCHEMA)
    assert config["modelling"]["models"]["ridge"]["search_space"] == space


SETTINGS = {
    "model": "ridge",
    "target": "w_total_median_profit",
    "search_space": {"alpha": {"type": "float", "low": 0.1, "high": 10.0}},
    "tuning": {"n_shards": 2, "trials_per_shard": 3},
}


def test_study_name_changes_with_data_settings_and_years():
    name = study_name(SETTINGS, "a" * 64)
    assert name.startswith("ridge-") and len(name) == len("ridge-") + 12
    assert study_name(SETTINGS, "b" * 64) != name
    years = modelling_years().to_json()
    assert study_name(SETTINGS, "a" * 64, years) != name
    other = modelling_years(years=range(2010, 2019)).to_json()  # one more year of data
    assert study_name(SETTINGS, "a" * 64, other) != study_name(SETTINGS, "a" * 64, years)
    wider = copy.deepcopy(SETTINGS)
    wider["search_space"]["alpha"]["high"] = 100.0
    assert study_name(wider, "a" * 64) != name
    more = copy.deepcopy(SETTINGS)
    more["tuning"]["trials_per_shard"] = 4
    assert study_name(more, "a" * 64) != name
    assert study_name(copy.deepcopy(SETTINGS), "a" * 64) == name


def test_study_results_count_this_setups_finished_trials_not_the_interrupted(tmp_path: Path):
    """Trials of an earlier setup of the same study (replace_existing_study: false) and trials
    killed while running do not count; a failed trial does."""
    storage = str(tmp_path / "s.journal")
    study = optuna.create_study(study_name="s", storage=open_storage(storage))
    x = {"x": optuna.distributions.FloatDistribution(0, 10)}
    for setup, value, state, attrs in (
        ("old", 0.5, TrialState.COMPLETE, {}),
        ("now", 5.0, TrialState.COMPLETE, {}),
        ("now", 1.0, TrialState.FAIL, {"interrupted": True}),
        ("now", 3.0, TrialState.COMPLETE, {}),
        ("now", 2.0, TrialState.COMPLETE, {}),
        ("now", 4.0, TrialState.FAIL, {}),
    ):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": value},
                distributions=x,
                value=value if state == TrialState.COMPLETE else None,
                state=state,
                user_attrs={
                    "setup": setup,
                    "shard": 0,
                    "fold_rmse": [value * 10],
                    "fold_mae": [value * 5],
                    **attrs,
                },
            )
        )
    ref = StudyRef("s", storage, "sqlite:///unused.db", "1", "now")
    results = study_results(ref)
    assert results["n_trials"] == 4 and results["n_complete"] == 3 and results["n_fail"] == 1
    assert results["n_interrupted"] == 1 and results["n_running"] == 0
    assert results["best_params"] == {"x": 2.0} and results["best_trial_number"] == 4
    assert results["best_cv_rmse"] == 20.0 and results["best_cv_mae"] == 10.0
    assert study_results(StudyRef("s", storage, "", "1", "old"))["best_value"] == 0.5


def test_study_name_differs_per_mlflow_experiment():
    """Two runs sharing one Optuna storage and one MLflow server, with other experiments,
    get a study each."""
    first = {"tracking_uri": "http://mlflow:5000", "experiment_name": "a", "experiment_id": "1"}
    second = {**first, "experiment_name": "b", "experiment_id": "2"}
    assert study_name(SETTINGS, "a" * 64, first) != study_name(SETTINGS, "a" * 64, second)
    assert study_name(SETTINGS, "a" * 64, first) == study_name(SETTINGS, "a" * 64, dict(first))


def test_the_baseline_row_holds_its_cv_mae_and_a_loss_ratio_of_one():
    settings = modelling_settings()
    frame = modelling_frame(seed=5)
    baseline = evaluate_baseline(split_by_year(frame, settings.split), 3, settings.features)
    assert baseline["cv_loss_ratio"] == 1.0
    assert 0 < baseline["cv_mae"] < baseline["cv_rmse"]


def test_baseline_is_logged_like_a_model_without_one(tmp_path: Path):
    from mlflow import MlflowClient

    from drg_workflow.modelling.settings import MlflowSettings
    from drg_workflow.modelling.tracking import (
        FinalRun,
        LoggedDataset,
        ensure_experiment,
        log_final_run,
    )

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = ensure_experiment(MlflowSettings(uri, "e", str(tmp_path / "artifacts")))
    frame = modelling_frame(seed=6)
    predictions = pd.DataFrame({"y_true": [1.0], "y_pred": [2.0]})
    sha = "0123456789abcdef" * 4
    run = log_final_run(
        experiment,
        FinalRun(
            model="baseline",
            params={"prediction": "lag1"},
            metrics={"val_rmse": 1.5},
            config_hash="c" * 64,
            stage="baseline",
            documents={"settings.json": {"cv_folds": 3}},
            tables={"predictions/predictions.csv": predictions},
        ),
        LoggedDataset(frame, "v13", None, "w_total_median_profit", sha),
    )
    assert run["model_uri"] is None
    logged = MlflowClient(uri).get_run(run["run_id"])
    assert logged.data.tags["stage"] == "baseline"
    assert logged.data.metrics == {"val_rmse": 1.5}
    (dataset_input,) = logged.inputs.dataset_inputs
    assert dataset_input.dataset.digest == sha[:32]
    assert {t.key: t.value for t in dataset_input.tags}["data_sha256"] == sha
    schema = dataset_input.dataset.schema
    # Columns with missing values (lags of absent years) are not required; the keys are.
    assert '"name": "year", "required": true' in schema
    for column in frame.columns[frame.isna().any()]:
        assert f'"name": "{column}", "required": false' in schema


def test_the_budget_is_spread_over_at_most_as_many_rounds_as_trials_per_shard():
    from drg_workflow.modelling.settings import TuningSettings, tuning_rounds

    tuning = validate_config(with_modelling(tuning={"trials_per_shard": 5, "rounds": 3}), SCHEMA)[
        "modelling"
    ]["tuning"]
    settings = TuningSettings.from_params(tuning)
    assert settings.rounds == 3
    assert [settings.trials_per_round(r) for r in range(3)] == [2, 2, 1]
    assert list(settings.shard_candidates(1, 1)) == [2, 3]
    assert list(settings.shard_candidates(2, 1)) == [1]
    # Fewer trials than rounds: one trial per shard and round.
    assert tuning_rounds({**tuning, "trials_per_shard": 2}) == 2
