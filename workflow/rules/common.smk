# Config validation, derived settings and input functions shared by the rules.
import json
import os
import shutil
import sys
from pathlib import Path

import yaml

# The rules' Python package lives in scripts/; the Snakefile needs its config validation.
sys.path.insert(0, str(Path(workflow.basedir).parent / "scripts"))
from drg_workflow.config_validation import ConfigError, validate_config
from drg_workflow.run_lock import record_lock_holder, remove_stale_locks
from drg_workflow.chain import configured_parameters, forecast_chain

#: The run holding this directory's Snakemake locks, recorded so that the locks a killed run
#: leaves behind can be told from a live run's (see drg_workflow/run_lock.py).
LOCK_HOLDER = Path(".snakemake") / "drg-workflow" / "lock-holder.json"
killed_run = remove_stale_locks(Path(".snakemake") / "locks", LOCK_HOLDER)
if killed_run is not None:
    logger.warning(f"Removed the locks left by a killed run (process {killed_run}).")

RAW_VERSION = "v0"
CONFIG_SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"

try:
    # Schema, chain and modelling checks that need no scikit-learn; the models' estimator
    # checks run in their setup_study jobs.
    validate_config(config, yaml.safe_load(CONFIG_SCHEMA.read_text()))
except ConfigError as error:
    # One message naming the key, before any job runs.
    raise WorkflowError(str(error)) from None

#: version -> its chain entry ({version, transformation, input}).
CHAIN = {step["version"]: step for step in config["chain"]}
#: Every version the workflow can build, v0 first.
VERSIONS = [RAW_VERSION, *CHAIN]
#: Transformations used by the chain, in first-use order: one rule each.
CHAIN_TRANSFORMATIONS = list(
    dict.fromkeys(step["transformation"] for step in CHAIN.values())
)


wildcard_constraints:
    version="|".join(VERSIONS),


def version_csv(version):
    return f"results/{version}/{version}.csv"


def version_metadata(version):
    return f"results/{version}/{version}_metadata.json"


def version_arrow(version):
    """The Arrow copy of a version: the same data, read by the next rule far faster."""
    return f"results/{version}/{version}.arrow"


def versions_made_by(transformation):
    """Regex matching the versions a transformation makes (used as its rule's constraint)."""
    return "|".join(
        v for v, step in CHAIN.items() if step["transformation"] == transformation
    )


def input_version_files(wildcards):
    """The data and metadata of the version the requested version is made from."""
    source = CHAIN[wildcards.version]["input"]
    return {"arrow": version_arrow(source), "metadata": version_metadata(source)}


def transformation_parameters(transformation):
    """Keyword parameters of a transformation, from the config."""
    return configured_parameters(config, transformation)


#: Where download_raw puts the CSV of raw.source url (in the default storage, if any).
RAW_DOWNLOAD = "resources/raw/download.csv"


def raw_input_files(wildcards):
    """The raw CSV that v0 is read from (nothing for the synthetic generator).

    file: a local path, kept local even with --default-storage-provider; url: the CSV that
    download_raw fetched; s3: the object itself, through snakemake-storage-plugin-s3 (endpoint
    and credentials from its --storage-s3-* flags or SNAKEMAKE_STORAGE_S3_* variables).
    """
    raw = config["raw"]
    if raw["source"] == "file":
        return {"raw": local(raw["path"])}
    if raw["source"] == "url":
        return {"raw": RAW_DOWNLOAD}
    if raw["source"] == "s3":
        return {"raw": storage.s3(raw["s3"])}
    return {}


def raw_parameters():
    """Settings of the configured raw source, as recorded in the v0 metadata."""
    raw = config["raw"]
    if raw["source"] == "synthetic":
        return {"source": "synthetic", **raw["synthetic"]}
    # The URL / URI is recorded (the schema refuses credentials in it); a new one reruns v0.
    where = (
        {raw["source"]: raw[raw["source"]]} if raw["source"] in ("url", "s3") else {}
    )
    return {
        "source": raw["source"],
        **where,
        "on_bad_rows": raw["on_bad_rows"],
        "plausible_years": raw["plausible_years"],
    }


def version_targets():
    """Every version's CSV and metadata."""
    return [path for v in VERSIONS for path in (version_csv(v), version_metadata(v))]


def all_targets():
    """Every version's CSV and metadata, the comparison of the tuned models, the next-year
    forecast and the report's figures and tables."""
    return [*version_targets(), COMPARISON, FORECAST, *report_targets()]


# ---------------------------------------------------------------------------- modelling

MODELLING = config["modelling"]
#: Models tuned, trained and compared (the keys of modelling.models), in config order.
MODELS = list(MODELLING["models"])
#: The data version the models learn from (modelling.data_version).
MODELLING_VERSION = MODELLING["data_version"]
DEFAULT_TRACKING_URI = "sqlite:///results/mlflow/mlflow.db"
#: Written by setup_mlflow: the experiment every run goes to (its id, URI, artifact location).
MLFLOW_EXPERIMENT = "results/mlflow/experiment.json"
BASELINE_METRICS = "results/models/baseline/metrics.json"
COMPARISON = "results/models/comparison.csv"


# Declared here, before any rule: global constraints added after rules exist are re-applied to
# those rules, which in Snakemake 9.27 breaks outputs in a default storage (S3).
wildcard_constraints:
    model="|".join(MODELS),
    shard=r"\d+",


def tracking_uri():
    """modelling.mlflow.tracking_uri, else $MLFLOW_TRACKING_URI, else the local sqlite store."""
    return (
        MODELLING["mlflow"]["tracking_uri"]
        or os.environ.get("MLFLOW_TRACKING_URI")
        or DEFAULT_TRACKING_URI
    )


def mlflow_settings():
    """modelling.mlflow with the tracking URI resolved: setup_mlflow's params, so a new store,
    experiment name or artifact location re-runs it (and so every job that logs to MLflow).
    """
    return {**MODELLING["mlflow"], "tracking_uri": tracking_uri()}


def shared_modelling_settings():
    """Settings every modelling rule shares (target, lag list and window, data, features,
    split, folds, seed)."""
    return {
        "target": config["target"],
        "lags": {
            "columns": config["lags"]["columns"],
            "rolling_window": config["lags"]["rolling_window"],
        },
        "data_version": MODELLING_VERSION,
        "include_same_year_features": MODELLING["include_same_year_features"],
        "include_year": MODELLING["include_year"],
        "split": MODELLING["split"],
        "cv_folds": MODELLING["cv_folds"],
        "random_state": MODELLING["random_state"],
    }


def model_settings(wildcards):
    """Everything a model's setup, shards and final fit depend on: passed as a param, so any
    change re-runs them (and setup_study starts a new study)."""
    model = wildcards.model
    tuning = MODELLING["tuning"]
    return {
        **shared_modelling_settings(),
        "model": model,
        "search_space": MODELLING["models"][model]["search_space"],
        "fixed_params": MODELLING["models"][model]["fixed_params"],
        "target_form": MODELLING["target_form"],
        "tuning": {**tuning, "storage": tuning["storage"].format(model=model)},
    }


def setup_json(model):
    return f"results/tuning/{model}/setup.json"


def shard_json(model, shard):
    return f"results/tuning/{model}/shard_{shard}.json"


def model_metrics(model):
    return f"results/models/{model}/metrics.json"


def modelling_data(wildcards):
    """The modelling data version: its Arrow copy (read) and metadata (sha256, version)."""
    return {
        "arrow": version_arrow(MODELLING_VERSION),
        "metadata": version_metadata(MODELLING_VERSION),
    }


def shard_inputs(wildcards):
    """A shard needs the data and its model's study (setup.json)."""
    return {**modelling_data(wildcards), "setup": setup_json(wildcards.model)}


def final_inputs(wildcards):
    """The final fit waits for every shard of its model."""
    n_shards = MODELLING["tuning"]["n_shards"]
    shards = [shard_json(wildcards.model, shard) for shard in range(n_shards)]
    return {**shard_inputs(wildcards), "shards": shards}


def baseline_inputs(wildcards):
    """The baseline needs the data and the MLflow experiment, and nothing of any model."""
    return {**modelling_data(wildcards), "experiment": MLFLOW_EXPERIMENT}


def comparison_metrics():
    """Every model's metrics and the baseline's."""
    return [*map(model_metrics, MODELS), BASELINE_METRICS]


def final_run_documents():
    """Every model's mlflow_run.json (its final run and logged model), in MODELS order."""
    return [f"results/models/{model}/mlflow_run.json" for model in MODELS]


# ----------------------------------------------------------------------------- forecast

CHAMPION = "results/models/champion.json"
FORECAST = "results/forecast/forecast.csv"
FORECAST_METADATA = "results/forecast/forecast_metadata.json"
try:
    #: The version the forecast's next-year lags are taken from, and the chain's steps from
    #: lag_columns to the modelling data (re-applied to next year's placeholder rows).
    FORECAST_BASE_VERSION, FORECAST_STEPS = forecast_chain(config)
    FORECAST_CHAIN_ERROR = None
except ValueError as error:
    # Only the forecast needs it: a chain without lags still builds its versions.
    FORECAST_BASE_VERSION, FORECAST_STEPS = None, []
    FORECAST_CHAIN_ERROR = f"config key {error}"


def model_predictions(model):
    return f"results/models/{model}/predictions.csv"


def forecast_inputs(wildcards):
    """The champion, the base and modelling data, and every model's (and the baseline's)
    held-out predictions: the champion's calibrate the interval."""
    if FORECAST_CHAIN_ERROR:
        raise WorkflowError(FORECAST_CHAIN_ERROR)
    return {
        "champion": CHAMPION,
        "base_arrow": version_arrow(FORECAST_BASE_VERSION),
        "base_metadata": version_metadata(FORECAST_BASE_VERSION),
        **modelling_data(wildcards),
        # In the order of the rule's params.models.
        "predictions": [model_predictions(m) for m in [*MODELS, "baseline"]],
    }


def forecast_settings():
    """What the forecast depends on besides its input files."""
    return {
        **shared_modelling_settings(),
        "forecast": config["forecast"],
        "steps": FORECAST_STEPS,
    }


# ------------------------------------------------------------------------------- verify

#: The verification report of `snakemake verify` and of the default target (verify.smk).
VERIFY_REPORT = "results/verify.json"


def verify_chain_files():
    """Every version of the chain and its files, in build order (the verify script's params)."""
    return [
        {
            "version": version,
            "transformation": (
                CHAIN[version]["transformation"] if version in CHAIN else "ingest_raw"
            ),
            "input_version": CHAIN[version]["input"] if version in CHAIN else None,
            "csv": version_csv(version),
            "arrow": version_arrow(version),
            "metadata": version_metadata(version),
        }
        for version in VERSIONS
    ]


def verified_build_inputs(wildcards):
    """What the default target's check runs after: every version's files (named
    `<version>_csv`, `_arrow`, `_metadata`, so the script reads them where the job has them,
    e.g. local copies of a default storage) and the comparison."""
    files = {
        f"{v}_{kind}": path(v)
        for v in VERSIONS
        for kind, path in (
            ("csv", version_csv),
            ("arrow", version_arrow),
            ("metadata", version_metadata),
        )
    }
    return {**files, "comparison": COMPARISON}


# ------------------------------------------------------------------------------- report

#: Figures and tables of `snakemake --report` (rules in report.smk), built by the default target.
REPORT = "results/report"
#: Permutation importances drawn per model; lag features drawn against the target.
REPORT_TOP_FEATURES = 15
REPORT_LAG_FEATURES = 4


def report_model_figures(kind, name):
    """(model, path) of one figure per model: results/report/<kind>/<model>_<name>.png."""
    return [(model, f"{REPORT}/{kind}/{model}_{name}.png") for model in MODELS]


def report_targets():
    """Every figure and table of the report (the per-version metadata copies included)."""
    per_model = [
        path
        for kind, name in (
            ("tuning", "optimisation_history"),
            ("tuning", "param_importances"),
            ("models", "predicted_vs_actual"),
            ("models", "residuals_by_year"),
            ("models", "feature_importances"),
        )
        for _model, path in report_model_figures(kind, name)
    ]
    return [
        f"{REPORT}/data_versions/lineage.html",
        f"{REPORT}/data_versions/rows_along_chain.png",
        *report_metadata_copies().values(),
        f"{REPORT}/features/target_by_year.png",
        f"{REPORT}/features/lag_features_vs_target.png",
        f"{REPORT}/tuning/trials_per_shard.png",
        f"{REPORT}/models/comparison.html",
        *per_model,
        f"{REPORT}/forecast/forecast_changes.png",
        f"{REPORT}/forecast/interval_coverage.png",
    ]


def report_labels(figure, model="all models"):
    """Labels of a report item: its figure name, its model and, read when the report is made,
    the data version and short sha256 it was made from (the rule's input.metadata).
    """

    def labels(wildcards, input):
        metadata = json.loads(Path(input.metadata).read_text())
        return {
            "model": model,
            "figure": figure,
            "data": f"{metadata['version']}, sha256 {metadata['sha256'][:12]}",
        }

    return labels


def report_metadata_copies():
    """version -> the copy of its metadata shown in the report."""
    return {v: f"{REPORT}/data_versions/metadata/{v}_metadata.json" for v in VERSIONS}


def copy_files(sources, copies):
    """Copy each source file to its copy, byte for byte."""
    for source, copy in zip(sources, copies, strict=True):
        shutil.copyfile(source, copy)


def version_report_labels(version):
    """Labels of a version's metadata in the report (version, transformation, rows, short
    sha256), read from the version's metadata when the report is made."""

    def labels(wildcards, input):
        (path,) = [f for f in input if f.endswith(f"{version}_metadata.json")]
        metadata = json.loads(Path(path).read_text())
        return {
            "version": version,
            "transformation": metadata["transformation"]["name"],
            "rows": metadata["rows"],
            "sha256": metadata["sha256"][:12],
        }

    return labels


def tuning_shard_summaries():
    """Every tuning shard's summary of every model, model by model."""
    n_shards = MODELLING["tuning"]["n_shards"]
    return [shard_json(model, shard) for model in MODELS for shard in range(n_shards)]
