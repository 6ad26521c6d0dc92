# Modelling and forecast settings (config `modelling`, `forecast`) and the input functions of
# models.smk and forecast.smk.
import json
import os

from drg_workflow.chain import forecast_chain
from drg_workflow.modelling.settings import (
    model_rule_settings,
    shared_rule_settings,
    tuning_rounds,
)
from drg_workflow.names import BASELINE_NAME, RAW_VERSION
from drg_workflow.urls import credentials_error

#: Models tuned, trained and compared (the keys of modelling.models), in config order.
MODELS = list(MODELLING["models"])
#: The data version the models learn from (modelling.data_version).
MODELLING_VERSION = MODELLING["data_version"]
#: Its files by kind (csv, metadata, arrow).
MODELLING_FILES = version_files(MODELLING_VERSION)


# Declared here, before any rule: global constraints added after rules exist are re-applied to
# those rules, which in Snakemake 9.27 breaks outputs in a default storage (S3).
wildcard_constraints:
    model="|".join(MODELS),
    shard=r"\d+",
    round=r"\d+",


def tracking_uri():
    """modelling.mlflow.tracking_uri, else $MLFLOW_TRACKING_URI, else the local sqlite store.

    It is a param of the MLflow rules, so Snakemake records it: one from the environment with a
    password in it stops the run (the config's is refused by the schema check)."""
    configured = MODELLING["mlflow"]["tracking_uri"]
    from_environment = os.environ.get("MLFLOW_TRACKING_URI")
    if not configured and from_environment:
        refused = credentials_error(
            "environment variable MLFLOW_TRACKING_URI", from_environment
        )
        if refused:
            raise WorkflowError(refused)
    return configured or from_environment or DEFAULT_TRACKING_URI


def mlflow_settings():
    """modelling.mlflow with the tracking URI resolved: setup_mlflow's params, so a new store,
    experiment name or artifact location re-runs it (and so every job that logs to MLflow).
    """
    return {**MODELLING["mlflow"], "tracking_uri": tracking_uri()}


def shared_modelling_settings():
    """Settings every modelling rule shares (drg_workflow.modelling.settings.shared_rule_settings)."""
    return shared_rule_settings(config)


def split_settings():
    """What split_years resolves against the data: the split (relative or explicit), the
    backtest's origins, and the folds and rolling window it checks them against."""
    return {
        "split": MODELLING["split"],
        "backtest_origins": MODELLING["backtest"]["origins"],
        "cv_folds": MODELLING["cv_folds"],
        "rolling_window": config["lags"]["rolling_window"],
    }


def settings_of_model(model):
    """Everything a model's setup, shards, final fit, backtest and refit depend on
    (drg_workflow.modelling.settings.model_rule_settings)."""
    return model_rule_settings(config, model)


# Threads of the jobs that fit a model, per model (MODEL_THREADS; 1 where not listed), and of
# the champion's refit. Snakemake schedules jobs by their threads and gives a job no more than
# --cores, so --cores bounds what the jobs use together; more threads never change results
# (drg_workflow.modelling.model_params.set_fit_threads: the forest's n_jobs during the fit, OpenMP
# for gradient boosting). The tuning shards, final fits and backtest refits run one thread
# each: on 2 cores (a laptop, CI) a 2-thread forest shard leaves no core for its sibling, so
# a round's shards would run one after the other instead of side by side, and gradient
# boosting's OpenMP threads on a busy machine fight each other for the cores, which makes its
# trials many times slower. The champion's refit runs when nothing else
# is left: it takes 2. Runtime settings, not configuration: change them with --set-threads or
# in a profile.
MODEL_THREADS = {}
#: The refit of the champion, whichever model it is (the build's last heavy job, alone).
REFIT_THREADS = 2
#: The priority of the jobs from the comparison to the forecast (refit_champion,
#: register_champion, forecast): when the comparison is done they are the build's critical
#: path, and the report's figures, ready at the same time, would otherwise take a core first and
#: make the 2-thread refit wait for both cores; the figures fill the cores beside the forecast.
FORECAST_PATH_PRIORITY = 1


def model_threads(wildcards):
    """The threads of a model's tuning shards, final fit and backtest refits."""
    return MODEL_THREADS.get(wildcards.model, 1)


def model_settings(wildcards):
    """A model's settings (settings_of_model) as the param of its rules, so any change
    re-runs them (and setup_study starts a new study)."""
    return settings_of_model(wildcards.model)


def backtest_settings():
    """modelling.backtest with the bootstrap's seed and the models in their order."""
    return {
        **MODELLING["backtest"],
        "random_state": MODELLING["random_state"],
        "models": MODELS,
    }


def modelling_data(wildcards):
    """The modelling data version: its Arrow copy (read) and metadata (sha256, version)."""
    release_stale_locks()
    return {
        "arrow": MODELLING_FILES["arrow"],
        "metadata": MODELLING_FILES["metadata"],
    }


def split_years_inputs(wildcards):
    """split_years reads the raw data's years (v0's metadata) and the modelling data's."""
    return {
        **modelling_data(wildcards),
        "raw_metadata": version_files(RAW_VERSION)["metadata"],
    }


def modelling_inputs(wildcards):
    """The modelling data and its years, resolved by split_years."""
    return {**modelling_data(wildcards), "split": MODELLING_SPLIT}


def round_shards(model, round_index):
    """The shard summaries of one tuning round of one model."""
    return expand(
        TUNING_SHARD,
        model=model,
        round=round_index,
        shard=range(MODELLING["tuning"]["n_shards"]),
    )


def tuning_shards(model):
    """Every tuning shard's summary of one model, round after round."""
    rounds = range(tuning_rounds(MODELLING["tuning"]))
    return [
        shard for round_index in rounds for shard in round_shards(model, round_index)
    ]


def study_inputs(wildcards):
    """The data, its years and the model's study (setup.json)."""
    return {
        **modelling_inputs(wildcards),
        "setup": TUNING_SETUP.format(model=wildcards.model),
    }


def shard_inputs(wildcards):
    """A shard needs its model's study and every shard of the round before its own: a round's
    candidates are asked from the results of the rounds before it."""
    round_index = int(wildcards.round)
    earlier = round_shards(wildcards.model, round_index - 1) if round_index else []
    return {**study_inputs(wildcards), "earlier_rounds": earlier}


def final_inputs(wildcards):
    """The final fit waits for every shard of every round of its model."""
    return {**study_inputs(wildcards), "shards": tuning_shards(wildcards.model)}


def baseline_inputs(wildcards):
    """The baseline needs the data, its years and the MLflow experiment, and nothing of any
    model."""
    return {**modelling_inputs(wildcards), "experiment": MLFLOW_EXPERIMENT}


def backtest_model_inputs(wildcards):
    """A model's backtest job: the data, its years and the model's study once its shards are
    done (its tuned parameters; not train_final, which the refits need not wait for)."""
    return final_inputs(wildcards)


def backtest_inputs(wildcards):
    """Every model's backtest predictions and fits, the years, the experiment and the data's
    metadata."""
    release_stale_locks()
    return {
        "predictions": expand(BACKTEST_MODEL_PREDICTIONS, model=MODELS),
        "fits": expand(BACKTEST_MODEL_FITS, model=MODELS),
        "split": MODELLING_SPLIT,
        "experiment": MLFLOW_EXPERIMENT,
        "metadata": MODELLING_FILES["metadata"],
    }


def refit_inputs(wildcards):
    """The champion's refit: the comparison names it; every model's tuned parameters and
    MLflow runs (which one is needed is known only then), the data and its years."""
    return {
        **modelling_inputs(wildcards),
        "comparison": COMPARISON,
        "experiment": MLFLOW_EXPERIMENT,
        "metrics": expand(MODEL_METRICS, model=MODELS),
        "runs": expand(MODEL_MLFLOW_RUN, model=MODELS),
    }


# ----------------------------------------------------------------------------- forecast

try:
    #: The version the forecast's next-year lags are taken from, and the chain's steps from
    #: lag_columns to the modelling data (re-applied to next year's placeholder rows).
    FORECAST_BASE_VERSION, FORECAST_STEPS = forecast_chain(config)
    FORECAST_CHAIN_ERROR = None
except ValueError as error:
    # Only the forecast needs it: a chain without lags still builds its versions.
    FORECAST_BASE_VERSION, FORECAST_STEPS = None, []
    FORECAST_CHAIN_ERROR = f"config key {error}"


def forecast_inputs(wildcards):
    """The champion, the base and modelling data with its years, the version the names come
    from, and the backtest's out-of-sample predictions (the champion's calibrate the
    intervals)."""
    if FORECAST_CHAIN_ERROR:
        raise WorkflowError(FORECAST_CHAIN_ERROR)
    base = version_files(FORECAST_BASE_VERSION)
    names_version = config["forecast"]["names"]["version"]
    if names_version not in VERSIONS:
        raise WorkflowError(
            f"config key forecast.names.version: {names_version!r} is not a version of the "
            f"chain ({', '.join(VERSIONS)})"
        )
    names = version_files(names_version)
    return {
        "champion": CHAMPION,
        "base_arrow": base["arrow"],
        "base_metadata": base["metadata"],
        "names_arrow": names["arrow"],
        "names_metadata": names["metadata"],
        **modelling_inputs(wildcards),
        "backtest_predictions": BACKTEST_PREDICTIONS,
    }


def forecast_settings():
    """What the forecast depends on besides its input files."""
    return {
        **shared_modelling_settings(),
        "forecast": config["forecast"],
        "steps": FORECAST_STEPS,
    }
