"""The workflow's modelling steps, one function per Snakemake rule (paths and dicts in, plain
results out).

The rule scripts only read ``snakemake.input``/``params``, call one function here and write its
results; keeping the steps here makes them testable without Snakemake and keeps the rule
scripts thin. The params dicts come from ``workflow/rules/common/modelling.smk``
(``mlflow_settings``, ``shared_modelling_settings``, ``model_settings``) and become the typed
settings of :mod:`.settings` here, once, with the years resolved from the data by the
``split_years`` rule (``results/models/split.json``, :class:`.years.ModellingYears`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drg_workflow.files import atomic_output
from drg_workflow.hashing import config_hash
from drg_workflow.names import CHOOSING_ROLE, HELD_OUT_SPLITS, REPORTING_ROLE, SKILL_COLUMNS
from drg_workflow.profiling import timed
from drg_workflow.versions import arrow_columns, read_arrow, read_json

from .baseline import BASELINE_NAME, baseline_predictions, baseline_rule, evaluate_baseline
from .comparison import NO_CHAMPION_WARNING, build_comparison, comparison_warnings
from .data import ModellingData, prepare_modelling_data
from .settings import (
    BacktestSettings,
    ImportanceSettings,
    MlflowSettings,
    ModellingSettings,
    ModelSettings,
)
from .years import ModellingYears


def metrics_summary(metrics: Mapping[str, Any]) -> str:
    """One log line of a model's (or the baseline's) CV, validation and test figures."""
    return (
        f"CV RMSE {metrics['cv_rmse']:.2f} MAE {metrics['cv_mae']:.2f}, validation RMSE "
        f"{metrics['val_rmse']:.2f} "
        f"MAE {metrics['val_mae']:.2f} R2 {metrics['val_r2']:.4f}, test RMSE "
        f"{metrics['test_rmse']:.2f} MAE {metrics['test_mae']:.2f} R2 {metrics['test_r2']:.4f}"
    )


@timed("write")
def write_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write an output table as CSV, atomically (see :func:`drg_workflow.files.atomic_output`)."""
    with atomic_output(path) as temporary:
        table.to_csv(temporary, index=False)


def settings_hash(params: Mapping[str, Any]) -> str:
    """sha256 of a rule's settings params (what determines a model's tuning and fit, or the
    baseline's evaluation; where runs are logged is not among them).

    Tagged on every MLflow run as ``config_hash``; the settings themselves are logged as the
    run's ``settings.json`` artifact.
    """
    return config_hash(dict(params))


def study_name(
    params: Mapping[str, Any],
    data_sha256: str,
    years: Mapping[str, Any] | None = None,
    experiment: Mapping[str, Any] | None = None,
) -> str:
    """``<model>-<12 hex>``: the hash covers the model's settings, the data's sha256, the
    resolved years (``split.json``'s split and origins) and the MLflow experiment the study
    logs to (tracking URI, experiment name and id).

    A change of data, configuration or split therefore always starts a new study: trials
    computed on other data, other train years or with another search space can never be mixed
    into it, even with ``tuning.replace_existing_study: false``. Two workflow runs that share
    one Optuna storage and one MLflow server with different experiment names get a study each:
    neither's setup replaces the other's study, and each shard index has one process per study.
    """
    where = {k: (experiment or {}).get(k) for k in ("tracking_uri", "experiment_name")}
    where["experiment_id"] = (experiment or {}).get("experiment_id")
    digest = config_hash(
        {
            "settings": settings_hash(params),
            "data_sha256": data_sha256,
            "years": years,
            "experiment": where,
        }
    )
    return f"{params['model']}-{digest[:12]}"


def model_settings(params: Mapping[str, Any], years: ModellingYears) -> ModelSettings:
    """A model's typed settings from its rule params and the resolved years."""
    return ModelSettings.from_params(params, years.split, years.cv_folds)


def modelling_settings(params: Mapping[str, Any], years: ModellingYears) -> ModellingSettings:
    """The shared typed settings from the rule params and the resolved years."""
    return ModellingSettings.from_params(params, years.split, years.cv_folds)


def load_modelling_data(
    arrow_path: str | Path, settings: ModellingSettings
) -> tuple[pd.DataFrame, ModellingData]:
    """The data version (its Arrow copy) and its features / year splits as configured."""
    frame = read_arrow(arrow_path)
    return frame, prepare_modelling_data(frame, settings)


# --------------------------------------------------------------------------- split_years


@dataclass
class SplitYearsResult:
    """What :func:`split_years` finds: the document of ``results/models/split.json`` and the
    log lines the rule writes (a warning for years no model fits or scores)."""

    document: dict[str, Any]
    info: list[str]
    warning: str | None


def split_years(
    params: Mapping[str, Any],
    raw_metadata: Mapping[str, Any],
    modelling_metadata: Mapping[str, Any],
    modelling_years: Sequence[int],
) -> SplitYearsResult:
    """Resolve ``modelling.split`` and ``modelling.backtest.origins`` against the years of the
    modelling data (``modelling_years``, its year column), and name the years of the raw data
    (v0's metadata ``years``) that no model fits or scores.

    ``params``: ``split``, ``backtest_origins``, ``cv_folds`` and ``rolling_window`` of the
    config. The document holds the resolved split and origins (:class:`.years.ModellingYears`),
    the year folds of tuning, the years of the raw and of the modelling data, the raw data's
    missing years and the unused years with their reasons.
    """
    from .data import fold_years
    from .years import distinct_years, resolve_years, unused_years, years_message

    present = distinct_years(modelling_years)
    years = resolve_years(
        params["split"], params["backtest_origins"], int(params["cv_folds"]), present
    )
    train = [y for y in present if years.split.train[0] <= y <= years.split.train[1]]
    raw_years = raw_metadata["years"]
    unused = unused_years(
        raw_years["present"],
        present,
        years.split,
        modelling_metadata["version"],
        int(params["rolling_window"]),
    )
    info, warning = years_message(unused, present[0])
    document = {
        **years.to_json(),
        "split_setting": dict(params["split"]),
        "cv_fold_years": fold_years(np.asarray(train), years.cv_folds),
        "years": {
            "raw": list(raw_years["present"]),
            "missing_in_raw": list(raw_years["missing"]),
            "modelling": present,
        },
        "unused_years": {str(year): reason for year, reason in sorted(unused.items())},
        "data": {"version": modelling_metadata["version"], "sha256": modelling_metadata["sha256"]},
    }
    split = years.split
    lines = [
        f"split of the {len(present)} years of {modelling_metadata['version']}: train "
        f"{split.train[0]}-{split.train[1]} (tuning folds "
        f"{', '.join(map(str, document['cv_fold_years']))}), validation "
        f"{split.validation[0]}-{split.validation[1]}, test {split.test[0]}-{split.test[1]}",
        f"backtest origins: {', '.join(map(str, years.choosing_origins))} choose the champion"
        + (
            f"; {', '.join(map(str, years.reporting_origins))} report"
            if years.reporting_origins
            else ""
        ),
        info,
    ]
    shrunk = split_shrink_message(params, present)
    if shrunk:
        lines.insert(0, shrunk)
    return SplitYearsResult(document, lines, warning)


def split_shrink_message(params: Mapping[str, Any], present: Sequence[int]) -> str | None:
    """The log line saying how a relative split shrank to fit the data's years ``present``
    (:func:`.years.relative_split_sizes`), or ``None`` when it did not."""
    from .years import SplitSizes, is_relative_split, relative_split_sizes

    split, cv_folds = params["split"], int(params["cv_folds"])
    if not is_relative_split(split):
        return None
    configured = SplitSizes(int(split["test"]), int(split["validation"]), cv_folds)
    chosen = relative_split_sizes(split, present, cv_folds)
    if chosen == configured:
        return None
    return (
        f"the {len(present)} years of the modelling data ({present[0]}-{present[-1]}) are too "
        f"few for modelling.split and modelling.cv_folds ({configured.describe()}, "
        f"{configured.years_needed} years): using {chosen.describe()}, the split shrunk "
        "towards modelling.split.minimum"
    )


# --------------------------------------------------------------------------- setup_mlflow


def setup_mlflow(mlflow_params: Mapping[str, Any]) -> dict[str, str]:
    """Create (or get) the MLflow experiment every run goes to, and the store if it is a fresh
    local sqlite file. Returns the document of ``results/mlflow/experiment.json``: tracking
    URI, experiment name and id, artifact location."""
    from .tracking import ensure_experiment

    return ensure_experiment(MlflowSettings.from_params(mlflow_params)).to_json()


# --------------------------------------------------------------------------- setup_study


def setup_study(
    params: Mapping[str, Any],
    experiment_document: Mapping[str, Any],
    data_metadata_path: str | Path,
    years_document: Mapping[str, Any],
) -> dict[str, Any]:
    """Check the model's configuration against its estimator, then create its Optuna study
    (whose first trial, shard 0's, is at :data:`.models.PERSISTENCE_PARAMS`, which predicts
    persistence) and the study's MLflow parent run.

    Returns the document written to ``results/tuning/{model}/setup.json``: what the shards need
    (study name, storage, tracking URI, experiment and parent run ids) plus the data's sha256
    and the settings hash.

    Raises:
        ModelConfigError: a parameter name or value the estimator does not accept (one line
            naming the config key).
    """
    from .models import ModelConfigError
    from .search_space import check_model_estimator
    from .tracking import MlflowExperiment, create_parent_run
    from .tuning import create_study, resolve_storage, storage_label

    years = ModellingYears.from_json(years_document)
    model = model_settings(params, years)
    try:
        check_model_estimator(
            model.name, {"search_space": model.search_space, "fixed_params": model.fixed_params}
        )
    except ModelConfigError as error:
        raise ModelConfigError(f"config key {error}") from None
    experiment = MlflowExperiment.from_json(experiment_document)
    metadata = read_json(data_metadata_path)
    name = study_name(params, metadata["sha256"], years.to_json(), experiment_document)
    tuning = model.tuning
    study = create_study(
        name,
        resolve_storage(tuning.storage, tuning.storage_env),
        replace_existing=tuning.replace_existing_study,
    )
    # The storage as named in files and tags: never the URL of storage_env (it may hold a
    # password); the jobs read that from their environment.
    storage = None if tuning.storage_env else tuning.storage
    provenance = {
        "data_version": metadata["version"],
        "data_sha256": metadata["sha256"],
        "config_hash": settings_hash(params),
        "n_shards": tuning.n_shards,
        "trials_per_shard": tuning.trials_per_shard,
        "rounds": tuning.rounds,
    }
    parent_run_id = create_parent_run(
        experiment,
        model.name,
        {
            "optuna_study": name,
            "optuna_storage": storage_label(storage, tuning.storage_env),
            **{k: str(v) for k, v in provenance.items()},
        },
    )
    # Also on the study, so a shard or a later inspection can find the MLflow side.
    study.set_user_attr("mlflow_experiment_id", experiment.experiment_id)
    study.set_user_attr("mlflow_parent_run_id", parent_run_id)
    return {
        "model": model.name,
        "study_name": name,
        "storage": storage,
        "storage_env": tuning.storage_env,
        "direction": "minimize",
        **experiment.to_json(),
        "parent_run_id": parent_run_id,
        **provenance,
    }


# --------------------------------------------------------------------------- tune_shard


def tune_shard(
    params: Mapping[str, Any],
    setup: Mapping[str, Any],
    arrow_path: str | Path,
    shard_index: int,
    years_document: Mapping[str, Any],
    round_index: int = 0,
) -> dict[str, Any]:
    """Run the shard's slice of its round's candidates as trials of the model's study; return
    the shard summary of
    :func:`.tuning.run_tuning_shard` plus ``seconds`` and ``trials_per_minute`` (wall time of the
    trials alone, without imports and data loading) and the epoch times ``started`` and
    ``finished`` of the trials (to see which shards overlapped)."""
    from .tuning import StudyRef, run_tuning_shard

    model = model_settings(params, ModellingYears.from_json(years_document))
    _, data = load_modelling_data(arrow_path, model.modelling)
    started, started_at = time.perf_counter(), time.time()
    summary = run_tuning_shard(
        StudyRef.from_setup(setup),
        model,
        data.X["train"],
        data.y["train"],
        data.years["train"],
        shard_index,
        round_index=round_index,
    )
    seconds = time.perf_counter() - started
    summary.update(
        started=round(started_at, 3),
        finished=round(started_at + seconds, 3),
        seconds=round(seconds, 3),
        trials_per_minute=round(summary["n_trials_run"] * 60.0 / max(seconds, 1e-9), 3),
        n_train_rows=len(data.y["train"]),
    )
    return summary


# --------------------------------------------------------------------------- train_final


@dataclass
class FinalResult:
    """What :func:`train_final` produces; the rule script writes each part to its file."""

    metrics: dict[str, Any]
    mlflow_run: dict[str, Any]
    predictions: pd.DataFrame
    permutation_importance: pd.DataFrame
    impurity_importance: pd.DataFrame | None


@dataclass
class _FittedModel:
    """The refit model and what was measured on it."""

    estimator: Any
    params: dict[str, Any]
    metrics: dict[str, float]
    predictions: pd.DataFrame
    permutation: pd.DataFrame
    impurity: pd.DataFrame | None


def _fit_and_evaluate(
    model: ModelSettings,
    importance: ImportanceSettings,
    data: ModellingData,
    results: Mapping[str, Any],
) -> _FittedModel:
    """Refit the best parameters on train; metrics, predictions and importances on held-out
    years."""
    from .final import (
        evaluate_model,
        fit_final_model,
        flatten_metrics,
        impurity_importances,
        permutation_importances,
        predict_splits,
    )
    from .tuning import merge_params

    random_state = model.modelling.random_state
    estimator = fit_final_model(model, results["best_params"], data.X["train"], data.y["train"])
    held_out = {split: (data.X[split], data.y[split]) for split in HELD_OUT_SPLITS}
    return _FittedModel(
        estimator=estimator,
        params=merge_params(model.fixed_params, results["best_params"]),
        metrics=flatten_metrics(
            evaluate_model(estimator, held_out),
            cv_rmse=results["best_cv_rmse"],
            cv_mae=results["best_cv_mae"],
            cv_loss_ratio=results["best_value"],
        ),
        predictions=predict_splits(
            estimator,
            {split: data.frames[split] for split in HELD_OUT_SPLITS},
            data.features,
            model.modelling.features.target,
        ),
        permutation=permutation_importances(
            estimator,
            data.X["validation"],
            data.y["validation"],
            n_repeats=importance.n_repeats,
            random_state=random_state,
            max_samples=importance.max_samples,
        ),
        impurity=impurity_importances(estimator, data.features),
    )


def _metrics_document(
    model: ModelSettings,
    fitted: _FittedModel,
    results: Mapping[str, Any],
    data: ModellingData,
    setup: Mapping[str, Any],
) -> dict[str, Any]:
    """The model's ``metrics.json``: a comparison row plus what it was computed from."""
    return {
        "model": model.name,
        **fitted.metrics,
        "n_trials_complete": results["n_complete"],
        "n_trials_pruned": results["n_pruned"],
        "n_trials_fail": results["n_fail"],
        "n_trials_interrupted": results["n_interrupted"],
        "best_params": results["best_params"],
        "best_trial_number": results["best_trial_number"],
        "fixed_params": dict(model.fixed_params),
        "target_form": model.target_form,
        "features": data.features,
        "years": {
            split: list(getattr(model.modelling.split, split))
            for split in ("train", *HELD_OUT_SPLITS)
        },
        "rows": {split: len(data.y[split]) for split in ("train", *HELD_OUT_SPLITS)},
        "study_name": setup["study_name"],
        "data_version": setup["data_version"],
        "data_sha256": setup["data_sha256"],
        "config_hash": setup["config_hash"],
    }


def train_final(
    params: Mapping[str, Any],
    importance_params: Mapping[str, Any],
    setup: Mapping[str, Any],
    shard_summaries: Sequence[Mapping[str, Any]],
    arrow_path: str | Path,
    data_source: str,
    years_document: Mapping[str, Any],
) -> FinalResult:
    """Refit the study's best parameters on train, evaluate on validation and test, compute
    importances, log the final MLflow run (nested under the study's parent run) and close the
    parent run with the study's results.

    Every trial of this setup of the study counts, whichever attempt of its shard ran it;
    trials killed while running do not (see :func:`.tuning.study_results`).
    """
    from .tracking import (
        FinalRun,
        LoggedDataset,
        MlflowExperiment,
        close_parent_run,
        log_final_run,
    )

    model = model_settings(params, ModellingYears.from_json(years_document))
    importance = ImportanceSettings.from_params(importance_params)
    frame, data = load_modelling_data(arrow_path, model.modelling)
    results = finished_study_results(setup, shard_summaries)
    fitted = _fit_and_evaluate(model, importance, data, results)

    experiment = MlflowExperiment.from_json(setup)
    run = log_final_run(
        experiment,
        FinalRun(
            model=model.name,
            params=fitted.params,
            metrics=fitted.metrics,
            config_hash=setup["config_hash"],
            parent_run_id=setup["parent_run_id"],
            tags={"optuna_study": setup["study_name"]},
            documents={"settings.json": {**params, "importance": dict(importance_params)}},
            tables={
                "predictions/predictions.csv": fitted.predictions,
                "importances/permutation_importance.csv": fitted.permutation,
                "importances/impurity_importance.csv": fitted.impurity,
            },
        ),
        LoggedDataset(
            frame,
            setup["data_version"],
            data_source,
            model.modelling.features.target,
            setup["data_sha256"],
        ),
        estimator=fitted.estimator,
        X_example=data.X["train"],
    )
    close_parent_run(experiment.tracking_uri, setup["parent_run_id"], results)
    mlflow_run = {
        **run,
        "tracking_uri": experiment.tracking_uri,
        "parent_run_id": setup["parent_run_id"],
        "best_trial_run_id": results["best_mlflow_run_id"],
    }
    return FinalResult(
        _metrics_document(model, fitted, results, data, setup),
        mlflow_run,
        fitted.predictions,
        fitted.permutation,
        fitted.impurity,
    )


# --------------------------------------------------------------------------- evaluate_baseline


def baseline_predictions_frame(data: ModellingData, settings: ModellingSettings) -> pd.DataFrame:
    """The baseline's predictions on the held-out splits, keyed like the models'."""
    from .final import predictions_frame

    target = settings.features.target
    return pd.concat(
        [
            predictions_frame(
                data.frames[split],
                split,
                data.frames[split][target],
                baseline_predictions(data.frames[split], settings.features),
            )
            for split in HELD_OUT_SPLITS
        ],
        ignore_index=True,
    )


def baseline_step(
    params: Mapping[str, Any],
    experiment_document: Mapping[str, Any],
    data_metadata_path: str | Path,
    arrow_path: str | Path,
    data_source: str,
    years_document: Mapping[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Evaluate the naive persistence baseline on the same year folds and splits as the models
    and log it as an MLflow run like a final model (metrics, dataset, tags, predictions; no
    model). ``params`` are the shared modelling settings (no model-specific keys).

    Returns the metrics document (a comparison row plus provenance) and the predictions.
    """
    from .tracking import BASELINE_STAGE, FinalRun, LoggedDataset, MlflowExperiment, log_final_run

    settings = modelling_settings(params, ModellingYears.from_json(years_document))
    metadata = read_json(data_metadata_path)
    frame, data = load_modelling_data(arrow_path, settings)
    row = evaluate_baseline(data.frames, settings.cv_folds, settings.features)
    predictions = baseline_predictions_frame(data, settings)
    digest = settings_hash(params)
    experiment = MlflowExperiment.from_json(experiment_document)
    run = log_final_run(
        experiment,
        FinalRun(
            model=BASELINE_NAME,
            params={"prediction": baseline_rule(settings.features)},
            metrics={k: v for k, v in row.items() if k.startswith(("cv_", "val_", "test_"))},
            config_hash=digest,
            stage=BASELINE_STAGE,
            documents={"settings.json": dict(params)},
            tables={"predictions/predictions.csv": predictions},
        ),
        LoggedDataset(
            frame, metadata["version"], data_source, settings.features.target, metadata["sha256"]
        ),
    )
    document = {
        **row,
        "data_version": metadata["version"],
        "data_sha256": metadata["sha256"],
        "config_hash": digest,
        "mlflow": {**run, "tracking_uri": experiment.tracking_uri},
    }
    return document, predictions


# --------------------------------------------------------------------------- backtest_origin


def finished_study_results(
    setup: Mapping[str, Any], shard_summaries: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The study's results (:func:`.tuning.study_results`: its finished trials of this setup),
    checked against the trials its shards report.

    Raises:
        TuningError: the study holds another number of finished trials than the shards report
            (another process tunes the same study).
    """
    from .tuning import StudyRef, TuningError, study_results

    results = study_results(StudyRef.from_setup(setup))
    reported = sorted(n for shard in shard_summaries for n in shard["trial_numbers"])
    if results["n_trials"] != len(reported):
        raise TuningError(
            f"study {setup['study_name']!r} holds {results['n_trials']} finished trials of this "
            f"setup, but its shards report {len(reported)}: another process tunes the same "
            "study (two runs sharing one storage and one MLflow experiment?)"
        )
    return results


def tuned_params(
    model: ModelSettings,
    setup: Mapping[str, Any],
    shard_summaries: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The model's full parameters: its fixed parameters overlaid by the best trial of its
    study (:func:`finished_study_results`, as ``train_final`` takes them)."""
    from .tuning import merge_params

    results = finished_study_results(setup, shard_summaries)
    return merge_params(model.fixed_params, results["best_params"])


def backtest_origin(
    params: Mapping[str, Any],
    setup: Mapping[str, Any],
    shard_summaries: Sequence[Mapping[str, Any]],
    years_document: Mapping[str, Any],
    arrow_path: str | Path,
    origin: int,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Refit a model with its tuned parameters (the best trial of its study, read as soon as
    its shards are done: the refits need not wait for ``train_final``) on every year before
    ``origin`` and predict ``origin`` (:func:`.backtest.fit_at_origin`).

    Returns the predictions (:data:`.backtest.PREDICTION_COLUMNS`) and the document of
    ``results/backtest/{model}/{origin}.json``: model, origin, its role, the training years,
    the parameters, the rows predicted and the data's sha256.
    """
    from .backtest import fit_at_origin
    from .data import select_features

    years = ModellingYears.from_json(years_document)
    model = model_settings(params, years)
    settings = model.modelling
    frame = read_arrow(arrow_path)
    features = select_features(
        frame.columns, settings.features, settings.include_same_year_features, settings.include_year
    )
    tuned = tuned_params(model, setup, shard_summaries)
    fit = fit_at_origin(model, tuned, frame, features, int(origin), years.role(int(origin)))
    document = {
        "model": model.name,
        "origin": int(origin),
        "role": years.role(int(origin)),
        "training_years": fit.training_years,
        "params": tuned,
        "rows_predicted": len(fit.predictions),
        "data_sha256": setup["data_sha256"],
        "config_hash": setup["config_hash"],
    }
    return fit.predictions, document


# --------------------------------------------------------------------------- score_backtest


@dataclass
class BacktestResult:
    """The backtest table, every out-of-sample prediction, and what the table's metadata
    records besides rows, columns and sha256."""

    table: pd.DataFrame
    skill_test: pd.DataFrame
    predictions: pd.DataFrame
    provenance: dict[str, Any]


def score_backtest_step(
    params: Mapping[str, Any],
    prediction_tables: Sequence[pd.DataFrame],
    fit_documents: Sequence[Mapping[str, Any]],
    years_document: Mapping[str, Any],
) -> BacktestResult:
    """Score every (model, origin) of the backtest against persistence with bootstrap
    intervals (:func:`.backtest.score_backtest`).

    ``params``: ``modelling.backtest`` plus ``random_state`` (the bootstrap's seed) and
    ``models`` (their order); ``prediction_tables`` and ``fit_documents``: each backtest job's
    outputs. The predictions come back as one table, sorted by origin, model (in ``models``
    order) and keys.
    """
    from .backtest import score_backtest
    from .data import KEY_COLUMNS

    settings = BacktestSettings.from_params(params, params["random_state"])
    years = ModellingYears.from_json(years_document)
    order = {model: i for i, model in enumerate(params["models"])}
    predictions = pd.concat(list(prediction_tables), ignore_index=True)
    predictions = predictions.sort_values(
        ["origin", "model", *KEY_COLUMNS[1:]],
        key=lambda column: column.map(order) if column.name == "model" else column,
        kind="stable",
        ignore_index=True,
    )
    training_years = {
        (doc["model"], int(doc["origin"])): doc["training_years"] for doc in fit_documents
    }
    scores = score_backtest(predictions, training_years, settings)
    provenance = {
        "origins": years.to_json()["origins"],
        "models": list(params["models"]),
        "training_years": {
            model: {
                str(doc["origin"]): [min(doc["training_years"]), max(doc["training_years"])]
                for doc in fit_documents
                if doc["model"] == model
            }
            for model in params["models"]
        },
        "params": {doc["model"]: doc["params"] for doc in fit_documents},
    }
    return BacktestResult(scores.table, scores.skill_test, predictions, provenance)


def log_backtest_step(
    experiment_document: Mapping[str, Any],
    table: pd.DataFrame,
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """Log the backtest table and its metadata to MLflow (:func:`.tracking.log_backtest`);
    return the document of ``results/backtest/mlflow_run.json``."""
    from .tracking import MlflowExperiment, log_backtest

    experiment = MlflowExperiment.from_json(experiment_document)
    origins = metadata["origins"]
    run = log_backtest(
        experiment,
        table,
        {"backtest_metadata.json": metadata},
        {
            "data_version": metadata["input"]["version"],
            "data_sha256": metadata["input"]["sha256"],
            "backtest_sha256": metadata["sha256"],
            **{f"{role}_origins": " ".join(map(str, years)) for role, years in origins.items()},
        },
    )
    return {**run, "tracking_uri": experiment.tracking_uri}


# --------------------------------------------------------------------------- compare_models


def compare_step(
    metrics_paths: Sequence[str | Path], backtest_path: str | Path, skill_test_path: str | Path
) -> tuple[pd.DataFrame, list[str]]:
    """The comparison table of every model's and the baseline's ``metrics.json``, the backtest
    and its pooled skill test, with the skill gate and the champion; and the warnings for
    models that fail the gate."""
    backtest = pd.read_csv(backtest_path)
    skill_test = pd.read_csv(skill_test_path)
    table = build_comparison([read_json(path) for path in metrics_paths], backtest, skill_test)
    return table, comparison_warnings(table)


# --------------------------------------------------------------------------- refit_champion


def _champion_row(comparison: pd.DataFrame, champion: str) -> dict[str, Any]:
    """The champion's backtest figures of the comparison: the origins that chose it and its
    skill on each origin."""
    row = comparison.loc[comparison["model"] == champion].iloc[0]
    return {
        "chosen_on": [int(year) for year in str(row["choosing_origins"]).split()],
        "skill_rmse": float(row["skill_rmse"]),
        "skill_mae": float(row["skill_mae"]),
        "skill_rmse_by_origin": json.loads(row["skill_rmse_by_origin"]),
        "skill_mae_by_origin": json.loads(row["skill_mae_by_origin"]),
    }


def refit_champion(
    settings_by_model: Mapping[str, Mapping[str, Any]],
    comparison_path: str | Path,
    metrics_documents: Mapping[str, Mapping[str, Any]],
    mlflow_runs: Mapping[str, Mapping[str, Any]],
    years_document: Mapping[str, Any],
    experiment_document: Mapping[str, Any],
    arrow_path: str | Path,
    data_source: str,
) -> dict[str, Any]:
    """Refit the comparison's champion with its tuned parameters on every year of the
    modelling data (up to the last one) and log it as the MLflow run ``<model>-refit``,
    nested under its study's parent run: the model that is registered and forecasts.

    ``settings_by_model``, ``metrics_documents`` and ``mlflow_runs``: every model's rule
    params, ``metrics.json`` and ``mlflow_run.json`` (the champion is known only now). Returns
    the document of ``results/models/champion_refit.json``: the champion (``None`` when no
    model passes the gate), its run and model URI, training years, parameters and backtest
    skill.
    """
    from .comparison import champion_model
    from .data import make_xy, select_features
    from .models import model_estimator
    from .tracking import (
        REFIT_STAGE,
        FinalRun,
        LoggedDataset,
        MlflowExperiment,
        log_final_run,
        refit_run_name,
    )
    from .tuning import merge_params
    from .years import distinct_years

    comparison = pd.read_csv(comparison_path)
    champion = champion_model(comparison)
    if champion is None:
        return {"champion": None, "fallback": "persistence"}
    model = model_settings(settings_by_model[champion], ModellingYears.from_json(years_document))
    settings = model.modelling
    metrics = metrics_documents[champion]
    frame = read_arrow(arrow_path)
    features = select_features(
        frame.columns, settings.features, settings.include_same_year_features, settings.include_year
    )
    X, y, years = make_xy(frame, features, settings.features.target)
    params = merge_params(model.fixed_params, metrics["best_params"])
    estimator = model_estimator(model, params).fit(X, y)
    training_years = distinct_years(years)
    backtest = _champion_row(comparison, champion)
    span = f"{training_years[0]}-{training_years[-1]}"
    experiment = MlflowExperiment.from_json(experiment_document)
    run = log_final_run(
        experiment,
        FinalRun(
            model=champion,
            params=params,
            metrics={
                "rows": float(len(y)),
                "backtest_skill_rmse": backtest["skill_rmse"],
                "backtest_skill_mae": backtest["skill_mae"],
            },
            config_hash=metrics["config_hash"],
            stage=REFIT_STAGE,
            parent_run_id=mlflow_runs[champion]["parent_run_id"],
            tags={
                "training_years": span,
                "first_training_year": str(training_years[0]),
                "last_training_year": str(training_years[-1]),
                "chosen_on": " ".join(map(str, backtest["chosen_on"])),
            },
            documents={
                "settings.json": dict(settings_by_model[champion]),
                "backtest_skill.json": backtest,
            },
            run_name=refit_run_name(champion),
        ),
        LoggedDataset(
            frame,
            metrics["data_version"],
            data_source,
            settings.features.target,
            metrics["data_sha256"],
        ),
        estimator=estimator,
        X_example=X,
    )
    return {
        "champion": champion,
        "fallback": None,
        **run,
        "run_name": refit_run_name(champion),
        "tracking_uri": experiment.tracking_uri,
        "training_years": training_years,
        "rows": len(y),
        "params": params,
        "data_version": metrics["data_version"],
        "data_sha256": metrics["data_sha256"],
        **backtest,
    }


# --------------------------------------------------------------------------- register_champion


def champion_description(refit: Mapping[str, Any]) -> str:
    """The registry version's description of a refitted champion: what it is, what it was
    trained on and the origins that chose it, with its skill on each."""
    years = refit["training_years"]
    skills = ", ".join(
        f"{origin}: RMSE {refit['skill_rmse_by_origin'][str(origin)]:+.3f}, "
        f"MAE {refit['skill_mae_by_origin'][str(origin)]:+.3f}"
        for origin in refit["chosen_on"]
    )
    return (
        f"{refit['champion']} refitted on {years[0]}-{years[-1]} ({refit['rows']} rows of "
        f"{refit['data_version']}, sha256 {refit['data_sha256'][:12]}); chosen by the skill "
        f"gate on the backtest origins {', '.join(map(str, refit['chosen_on']))} (skill "
        f"against persistence, {skills})"
    )


def register_champion_step(
    refit: Mapping[str, Any],
    experiment_document: Mapping[str, Any],
    registered_model: str,
) -> dict[str, Any]:
    """Register the refitted champion (``champion_refit.json``) in MLflow's model registry
    under ``registered_model`` with the alias ``champion``, its training years and backtest
    skill in the version's tags and description. With no champion, remove the alias (so an
    older champion is not served) and record the fallback to persistence.

    Returns the document of ``results/models/champion.json``.
    """
    from .tracking import champion_uri, clear_champion, register_champion

    tracking_uri = experiment_document["tracking_uri"]
    if refit["champion"] is None:
        return {
            "champion": None,
            "fallback": "persistence",
            "tracking_uri": tracking_uri,
            "registered_model": registered_model,
            "alias_removed": clear_champion(tracking_uri, registered_model),
        }
    years = refit["training_years"]
    version = register_champion(
        tracking_uri,
        registered_model,
        refit["model_uri"],
        {
            "model": refit["champion"],
            "run_id": refit["run_id"],
            "training_years": f"{years[0]}-{years[-1]}",
            "last_training_year": str(years[-1]),
            "chosen_on": " ".join(map(str, refit["chosen_on"])),
            "backtest_skill_rmse": f"{refit['skill_rmse']:.4f}",
            "backtest_skill_mae": f"{refit['skill_mae']:.4f}",
            "data_sha256": refit["data_sha256"],
        },
        champion_description(refit),
    )
    return {
        "champion": refit["champion"],
        "fallback": None,
        "tracking_uri": tracking_uri,
        "registered_model": registered_model,
        "version": version,
        "model_uri": champion_uri(registered_model),
        "run_id": refit["run_id"],
        "run_name": refit["run_name"],
        "logged_model_uri": refit["model_uri"],
        "training_years": years,
        "chosen_on": refit["chosen_on"],
        "skill_rmse_by_origin": refit["skill_rmse_by_origin"],
        "skill_mae_by_origin": refit["skill_mae_by_origin"],
    }


# --------------------------------------------------------------------------- forecast


@dataclass
class ForecastResult:
    """The forecast table and what its metadata records besides rows, columns and sha256."""

    table: pd.DataFrame
    provenance: dict[str, Any]
    warning: str | None


def _forecast_predictions(
    champion: Mapping[str, Any], features: pd.DataFrame, feature_columns: Sequence[str]
) -> tuple[Any, str | None]:
    """The champion's predictions for next year, loaded from the registry by its alias (the
    version must be the one this build registered), or ``None`` without a champion."""
    from .forecast import ForecastError
    from .tracking import load_champion

    if champion["champion"] is None:
        return None, None
    estimator, version = load_champion(champion["tracking_uri"], champion["registered_model"])
    if version != champion["version"]:
        raise ForecastError(
            f"the alias champion of {champion['registered_model']!r} points at version "
            f"{version}, but this build registered version {champion['version']}: another "
            "build changed it; rerun with --forcerun register_champion"
        )
    return estimator.predict(features.loc[:, list(feature_columns)]), version


def forecast_step(
    params: Mapping[str, Any],
    champion: Mapping[str, Any],
    base_arrow: str | Path,
    modelling_arrow: str | Path,
    names_arrow: str | Path,
    backtest_predictions: pd.DataFrame,
    years_document: Mapping[str, Any],
) -> ForecastResult:
    """Forecast the target for the year after the data's last year.

    ``params``: the shared modelling settings plus ``forecast`` (interval method, levels and
    groups; where the names come from) and ``steps`` (the chain from lag_columns to the
    modelling data, see :func:`drg_workflow.chain.forecast_chain`). ``champion``:
    ``champion.json`` plus the tracking URI. ``names_arrow``: the data version the facility
    and DRG names are read from (``forecast.names.version``). ``backtest_predictions``: the
    backtest's out-of-sample predictions; the champion's (or, without one, persistence's)
    calibrate the intervals per group.

    Like the champion (refitted on every year), the forecast's intervals are calibrated on
    every origin of the backtest. How such intervals do on years they never saw is measured
    with intervals calibrated on the choosing origins only, on the reporting origins
    (``interval.test``: coverage and Winkler score per level and group, and plain
    split-conformal's for reference), in the same groups.
    """
    from .data import KEY_COLUMNS, select_features
    from .forecast import (
        ChainStep,
        ForecastError,
        IntervalSettings,
        assess_intervals,
        backtest_residual_rows,
        calibrate_intervals,
        forecast_table,
        next_year_features,
        split_conformal,
        with_group_column,
        with_names,
    )

    settings = modelling_settings(params, ModellingYears.from_json(years_document))
    interval_settings = IntervalSettings.from_params(params["forecast"])
    name_columns = dict(params["forecast"]["names"]["columns"])
    base = read_arrow(base_arrow)
    modelling_columns = arrow_columns(modelling_arrow)
    feature_columns = select_features(
        modelling_columns,
        settings.features,
        settings.include_same_year_features,
        settings.include_year,
    )
    steps = [ChainStep(**step) for step in params["steps"]]
    features = next_year_features(base, steps, settings.features.lag_columns)
    persistence = baseline_predictions(features, settings.features)
    prediction, version = _forecast_predictions(champion, features, feature_columns)
    warning = None
    if prediction is None:
        warning = NO_CHAMPION_WARNING
        prediction = persistence
    if interval_settings.column not in modelling_columns:
        raise ForecastError(
            f"config key forecast.interval_groups.column: {interval_settings.column!r} is not "
            "a column of the modelling data"
        )
    groups = read_arrow(modelling_arrow, [*KEY_COLUMNS, interval_settings.column])
    residuals = with_group_column(
        backtest_residual_rows(backtest_predictions, champion["champion"]),
        groups,
        interval_settings.column,
    )
    choosing = residuals.loc[residuals["role"] == CHOOSING_ROLE]
    reporting = residuals.loc[residuals["role"] == REPORTING_ROLE]
    intervals = calibrate_intervals(residuals, interval_settings)
    # The same groups (bins of every origin's rows), calibrated on the choosing origins only.
    assessment = {
        "calibration_years": sorted(int(y) for y in choosing["year"].unique()),
        **assess_intervals(
            calibrate_intervals(choosing, interval_settings, groups_of=intervals),
            split_conformal(choosing, interval_settings),
            reporting,
        ),
    }
    last_year = int(base["year"].max())
    provenance = {
        "forecast_year": int(features["year"].iloc[0]),
        "last_data_year": last_year,
        "target": settings.features.target,
        "model": champion["champion"] or BASELINE_NAME,
        "fallback": champion["fallback"],
        "registered_model": champion["registered_model"],
        "model_version": version,
        "model_uri": champion.get("model_uri"),
        "training_years": champion.get("training_years"),
        "interval": {
            **intervals.to_json(),
            "calibration": {
                "rows": len(residuals),
                "source": "backtest out-of-sample predictions at every origin",
                "years": sorted(int(y) for y in residuals["year"].unique()),
            },
            "test": assessment,
        },
    }
    names = read_arrow(names_arrow, ["year", *name_columns, *name_columns.values()])
    table = with_names(
        forecast_table(features, prediction, persistence, intervals), names, name_columns
    )
    return ForecastResult(table, provenance, warning)


# --------------------------------------------------------------------------- model_card


def model_card_facts(
    params: Mapping[str, Any],
    champion: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    forecast_metadata: Mapping[str, Any],
    years_document: Mapping[str, Any],
    backtest: pd.DataFrame,
    comparison: pd.DataFrame | None = None,
) -> Any:
    """The facts of the champion's model card (a :class:`.model_card.ModelCardFacts`), from the
    shared modelling settings ``params``, ``champion.json``, every model's (and the
    baseline's) ``metrics.json`` by name, the forecast's metadata, the resolved years
    (``split.json``), the backtest table (the champion's rows are shown) and the comparison
    (the skill gate's test and its result for the champion). Without a champion the card
    describes the persistence fallback the forecast uses."""
    from .model_card import ModelCardFacts

    years = ModellingYears.from_json(years_document)
    settings = modelling_settings(params, years)
    model = champion["champion"] or BASELINE_NAME
    own, baseline = metrics[model], metrics[BASELINE_NAME]
    split = settings.split
    if champion["champion"] is None:
        model_params: dict[str, Any] = {"prediction": baseline_rule(settings.features)}
        target_form, n_features = "raw", 1
        limitations = ("No model beat persistence: this card describes the fallback.",)
        training_years = split.train
    else:
        model_params = {**own["fixed_params"], **own["best_params"]}
        target_form, n_features = own["target_form"], len(own["features"])
        limitations = ()
        training_years = (min(champion["training_years"]), max(champion["training_years"]))
    return ModelCardFacts(
        registered_model=champion["registered_model"],
        version=champion.get("version"),
        model=model,
        params=model_params,
        target=settings.features.target,
        target_form=target_form,
        n_features=n_features,
        data_version=own["data_version"],
        data_sha256=own["data_sha256"],
        training_years=training_years,
        validation_years=split.validation,
        test_years=split.test,
        forecast_year=int(forecast_metadata["forecast_year"]),
        run_name=champion.get("run_name"),
        tracking_uri=champion["tracking_uri"],
        metrics=own,
        baseline_metrics=baseline,
        intervals=forecast_metadata["interval"],
        backtest=backtest.loc[backtest["model"] == model].reset_index(drop=True),
        limitations=limitations,
        gate=_gate_facts(comparison, champion["champion"]),
    )


def _gate_facts(comparison: pd.DataFrame | None, champion: str | None) -> dict[str, Any] | None:
    """The skill gate's test and its result for the champion (its comparison row), ``None``
    without a comparison or a champion."""
    if comparison is None or champion is None:
        return None
    row = comparison.loc[comparison["model"] == champion].iloc[0]
    columns = ["gate_test", "passes_gate", "choosing_origins", *SKILL_COLUMNS]
    return {column: row[column] for column in columns}


def model_card_step(
    params: Mapping[str, Any],
    champion: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    forecast_metadata: Mapping[str, Any],
    years_document: Mapping[str, Any],
    backtest: pd.DataFrame,
    comparison: pd.DataFrame | None = None,
) -> tuple[str, str]:
    """The champion's model card as Markdown and HTML (see :func:`model_card_facts`); the
    Markdown becomes the registered version's description and an artifact ``model_card.md``
    of its MLflow run. Without a champion nothing is written to the registry."""
    from .model_card import model_card, to_html, to_markdown
    from .tracking import log_model_card

    blocks = model_card(
        model_card_facts(
            params, champion, metrics, forecast_metadata, years_document, backtest, comparison
        )
    )
    markdown = to_markdown(blocks)
    if champion["champion"] is not None:
        log_model_card(
            champion["tracking_uri"],
            champion["registered_model"],
            champion["version"],
            champion["run_id"],
            markdown,
        )
    return markdown, to_html(blocks)
