"""The workflow's modelling steps, one function per Snakemake rule (paths and dicts in, plain
results out).

The rule scripts only read ``snakemake.input``/``params``, call one function here and write its
results; keeping the steps here makes them testable without Snakemake and keeps the rule
scripts thin.

``settings`` is the dict a model's rules get as ``params.settings`` (built from the config by
``model_settings`` in ``workflow/rules/common.smk``)::

    {model, target, data_version, include_same_year_features, include_year, split, cv_folds,
     random_state, search_space, fixed_params,
     tuning: {n_shards, trials_per_shard, base_seed, storage, replace_existing_study,
              pruner: {n_startup_trials, n_warmup_steps}, tpe_n_startup_trials},
     mlflow: {tracking_uri, experiment_name, artifact_location}}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from drg_workflow.hashing import config_hash
from drg_workflow.versions import read_arrow, read_json

from .baseline import BASELINE_NAME, baseline_predictions, evaluate_baseline
from .comparison import build_comparison, comparison_warnings
from .data import ModellingData, YearSplit, prepare_modelling_data

#: Settings that do not change what a study computes (where it is logged), left out of its hash.
_NOT_HASHED = ("mlflow",)


def route_library_logs(logger: logging.Logger) -> None:
    """Send Optuna's and MLflow's log lines (one per trial, study creation, store creation) to
    the rule's log file instead of Snakemake's terminal output."""
    import mlflow  # configures its own stderr handler on import; replace it
    import optuna

    optuna.logging.disable_default_handler()
    mlflow_logger = logging.getLogger(mlflow.__name__)
    for handler in list(mlflow_logger.handlers):
        mlflow_logger.removeHandler(handler)
    for handler in logger.handlers:
        logging.getLogger("optuna").addHandler(handler)
        mlflow_logger.addHandler(handler)


def metrics_summary(metrics: Mapping[str, Any]) -> str:
    """One log line of a model's (or the baseline's) CV, validation and test figures."""
    return (
        f"CV RMSE {metrics['cv_rmse']:.2f}, validation RMSE {metrics['val_rmse']:.2f} "
        f"MAE {metrics['val_mae']:.2f} R2 {metrics['val_r2']:.4f}, test RMSE "
        f"{metrics['test_rmse']:.2f} MAE {metrics['test_mae']:.2f} R2 {metrics['test_r2']:.4f}"
    )


def settings_hash(settings: Mapping[str, Any]) -> str:
    """sha256 of the settings that determine a model's tuning and fit (not where it is logged).

    Tagged on every MLflow run as ``config_hash``; the settings themselves are logged as the
    run's ``settings.json`` artifact.
    """
    return config_hash({k: v for k, v in settings.items() if k not in _NOT_HASHED})


def study_name(settings: Mapping[str, Any], data_sha256: str) -> str:
    """``<model>-<12 hex>``: the hash covers the settings and the data's sha256.

    A change of data or configuration therefore always starts a new study: trials computed on
    other data or with another search space can never be mixed into it, even with
    ``tuning.replace_existing_study: false``.
    """
    digest = config_hash({"settings": settings_hash(settings), "data_sha256": data_sha256})
    return f"{settings['model']}-{digest[:12]}"


def load_modelling_data(
    arrow_path: str | Path, settings: Mapping[str, Any]
) -> tuple[pd.DataFrame, ModellingData]:
    """The data version (its Arrow copy) and its features / year splits as configured."""
    frame = read_arrow(arrow_path)
    data = prepare_modelling_data(
        frame,
        YearSplit.from_config(settings["split"]),
        include_same_year_features=settings["include_same_year_features"],
        include_year=settings["include_year"],
        target=settings["target"],
    )
    return frame, data


# --------------------------------------------------------------------------- setup_study


def setup_study(settings: Mapping[str, Any], data_metadata_path: str | Path) -> dict[str, Any]:
    """Create the model's Optuna study, the MLflow experiment and the study's parent run.

    Returns the document written to ``results/tuning/{model}/setup.json``: what the shards need
    (study name, storage, tracking URI, experiment and parent run ids) plus the data's sha256
    and the settings hash.
    """
    from .tuning import create_study_and_experiment

    metadata = read_json(data_metadata_path)
    data_sha256 = metadata["sha256"]
    name = study_name(settings, data_sha256)
    tuning, tracking = settings["tuning"], settings["mlflow"]
    digest = settings_hash(settings)
    info = create_study_and_experiment(
        name,
        tuning["storage"],
        tracking["tracking_uri"],
        tracking["experiment_name"],
        tracking["artifact_location"],
        "minimize",
        model=settings["model"],
        replace_existing_study=tuning["replace_existing_study"],
        parent_tags={
            "data_version": metadata["version"],
            "data_sha256": data_sha256,
            "config_hash": digest,
            "n_shards": str(tuning["n_shards"]),
            "trials_per_shard": str(tuning["trials_per_shard"]),
        },
    )
    info.update(
        data_version=metadata["version"],
        data_sha256=data_sha256,
        config_hash=digest,
        n_shards=tuning["n_shards"],
        trials_per_shard=tuning["trials_per_shard"],
    )
    return info


# --------------------------------------------------------------------------- tune_shard


def shard_seed(settings: Mapping[str, Any], shard_index: int) -> int:
    """The shard's sampler seed: ``base_seed + shard`` (equal seeds would duplicate trials)."""
    return int(settings["tuning"]["base_seed"]) + int(shard_index)


def tune_shard(
    settings: Mapping[str, Any],
    setup: Mapping[str, Any],
    arrow_path: str | Path,
    shard_index: int,
) -> dict[str, Any]:
    """Run ``trials_per_shard`` trials of the model's study; return the shard summary of
    :func:`.tuning.run_tuning_shard` plus ``seconds`` and ``trials_per_minute`` (wall time of the
    trials alone, without imports and data loading) and the epoch times ``started`` and
    ``finished`` of the trials (to see which shards overlapped)."""
    from .tuning import run_tuning_shard

    _, data = load_modelling_data(arrow_path, settings)
    tuning = settings["tuning"]
    started, started_at = time.perf_counter(), time.time()
    summary = run_tuning_shard(
        setup["study_name"],
        setup["storage"],
        setup["tracking_uri"],
        setup["experiment_id"],
        setup["parent_run_id"],
        settings["model"],
        settings["search_space"],
        data.X["train"],
        data.y["train"],
        data.years["train"],
        settings["cv_folds"],
        tuning["trials_per_shard"],
        seed=shard_seed(settings, shard_index),
        random_state=settings["random_state"],
        shard_index=shard_index,
        fixed_params=settings["fixed_params"],
        pruner_n_startup_trials=tuning["pruner"]["n_startup_trials"],
        pruner_n_warmup_steps=tuning["pruner"]["n_warmup_steps"],
        tpe_n_startup_trials=tuning["tpe_n_startup_trials"],
    )
    seconds = time.perf_counter() - started
    summary.update(
        started=round(started_at, 3),
        finished=round(started_at + seconds, 3),
        seconds=round(seconds, 3),
        trials_per_minute=round(summary["n_trials_run"] * 60.0 / seconds, 3),
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


def train_final(
    settings: Mapping[str, Any],
    importance: Mapping[str, Any],
    setup: Mapping[str, Any],
    shard_summaries: Sequence[Mapping[str, Any]],
    arrow_path: str | Path,
    data_source: str,
) -> FinalResult:
    """Refit the study's best parameters on train, evaluate on validation and test, compute
    importances, log the final MLflow run (nested under the study's parent run) and close the
    parent run with the study's results.

    Only the trials the current shard outputs report count (see
    :func:`.tuning.study_results`).
    """
    from .final import (
        evaluate_model,
        fit_final_model,
        flatten_metrics,
        impurity_importances,
        log_final_run,
        permutation_importances,
        predict_splits,
    )
    from .tuning import close_parent_run, merge_params, study_results

    model, target = settings["model"], settings["target"]
    frame, data = load_modelling_data(arrow_path, settings)
    trial_numbers = sorted({n for shard in shard_summaries for n in shard["trial_numbers"]})
    results = study_results(setup["study_name"], setup["storage"], trial_numbers=trial_numbers)

    estimator = fit_final_model(
        model,
        results["best_params"],
        data.X["train"],
        data.y["train"],
        settings["random_state"],
        settings["fixed_params"],
    )
    held_out = {split: (data.X[split], data.y[split]) for split in ("validation", "test")}
    metrics = flatten_metrics(evaluate_model(estimator, held_out), cv_rmse=results["best_value"])
    predictions = predict_splits(
        estimator,
        {split: data.frames[split] for split in ("validation", "test")},
        data.features,
        target,
    )
    permutation = permutation_importances(
        estimator,
        data.X["validation"],
        data.y["validation"],
        n_repeats=importance["n_repeats"],
        random_state=settings["random_state"],
        max_samples=importance["max_samples"],
    )
    impurity = impurity_importances(estimator, data.features)

    params = merge_params(settings["fixed_params"], results["best_params"])
    tracking_uri = setup["tracking_uri"]
    run = log_final_run(
        tracking_uri=tracking_uri,
        experiment_id=setup["experiment_id"],
        model_name=model,
        estimator=estimator,
        params=params,
        metrics=metrics,
        X_example=data.X["train"],
        dataset=frame,
        target=target,
        data_sha256=setup["data_sha256"],
        config_hash=setup["config_hash"],
        predictions=predictions,
        importances={"permutation_importance": permutation, "impurity_importance": impurity},
        parent_run_id=setup["parent_run_id"],
        dataset_name=setup["data_version"],
        dataset_source=data_source,
        extra_tags={"optuna_study": setup["study_name"]},
        artifacts={"settings.json": {**settings, "importance": dict(importance)}},
    )
    close_parent_run(tracking_uri, setup["parent_run_id"], results)

    document = {
        "model": model,
        **metrics,
        "n_trials_complete": results["n_complete"],
        "n_trials_pruned": results["n_pruned"],
        "n_trials_fail": results["n_fail"],
        "best_params": results["best_params"],
        "best_trial_number": results["best_trial_number"],
        "fixed_params": dict(settings["fixed_params"]),
        "features": data.features,
        "rows": {split: len(data.y[split]) for split in ("train", "validation", "test")},
        "study_name": setup["study_name"],
        "data_version": setup["data_version"],
        "data_sha256": setup["data_sha256"],
        "config_hash": setup["config_hash"],
    }
    mlflow_run = {
        **run,
        "tracking_uri": tracking_uri,
        "parent_run_id": setup["parent_run_id"],
        "best_trial_run_id": results["best_mlflow_run_id"],
    }
    return FinalResult(document, mlflow_run, predictions, permutation, impurity)


# --------------------------------------------------------------------------- evaluate_baseline


def baseline_step(
    settings: Mapping[str, Any],
    setup: Mapping[str, Any],
    arrow_path: str | Path,
    data_source: str,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Evaluate the naive persistence baseline on the same year folds and splits as the models
    and log it as an MLflow run like a final model (metrics, dataset, tags, predictions; no
    model). ``settings`` are the shared modelling settings (no model-specific keys); ``setup``
    is a model's setup document, for the experiment id and the data's sha256.

    Returns the metrics document (a comparison row plus provenance) and the predictions.
    """
    from .final import log_final_run, predictions_frame

    target = settings["target"]
    frame, data = load_modelling_data(arrow_path, settings)
    row = evaluate_baseline(data.frames, settings["cv_folds"], target)
    predictions = pd.concat(
        [
            predictions_frame(
                data.frames[split],
                split,
                data.frames[split][target],
                baseline_predictions(data.frames[split], target),
            )
            for split in ("validation", "test")
        ],
        ignore_index=True,
    )
    digest = settings_hash(settings)
    metrics = {k: v for k, v in row.items() if k.startswith(("cv_", "val_", "test_"))}
    run = log_final_run(
        tracking_uri=setup["tracking_uri"],
        experiment_id=setup["experiment_id"],
        model_name=BASELINE_NAME,
        estimator=None,
        params={"prediction": f"{target}_lag1, else {target}_rolling2"},
        metrics=metrics,
        X_example=None,
        dataset=frame,
        target=target,
        data_sha256=setup["data_sha256"],
        config_hash=digest,
        predictions=predictions,
        dataset_name=setup["data_version"],
        dataset_source=data_source,
        stage="baseline",
        artifacts={"settings.json": dict(settings)},
    )
    document = {
        **row,
        "data_version": setup["data_version"],
        "data_sha256": setup["data_sha256"],
        "config_hash": digest,
        "mlflow": {**run, "tracking_uri": setup["tracking_uri"]},
    }
    return document, predictions


# --------------------------------------------------------------------------- compare_models


def compare_step(metrics_paths: Sequence[str | Path]) -> tuple[pd.DataFrame, list[str]]:
    """The comparison table of every model's and the baseline's ``metrics.json``, and the
    warnings for models that do not beat the baseline on validation."""
    table = build_comparison([read_json(path) for path in metrics_paths])
    return table, comparison_warnings(table)
