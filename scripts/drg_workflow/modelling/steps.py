"""The workflow's modelling steps, one function per Snakemake rule (paths and dicts in, plain
results out).

The rule scripts only read ``snakemake.input``/``params``, call one function here and write its
results; keeping the steps here makes them testable without Snakemake and keeps the rule
scripts thin. The params dicts come from ``workflow/rules/common.smk`` (``mlflow_settings``,
``shared_modelling_settings``, ``model_settings``) and become the typed settings of
:mod:`.settings` here, once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from drg_workflow.files import atomic_output
from drg_workflow.hashing import config_hash
from drg_workflow.names import HELD_OUT_SPLITS
from drg_workflow.versions import read_arrow, read_json

from .baseline import BASELINE_NAME, baseline_predictions, baseline_rule, evaluate_baseline
from .comparison import NO_CHAMPION_WARNING, build_comparison, comparison_warnings
from .data import ModellingData, prepare_modelling_data
from .settings import (
    ImportanceSettings,
    MlflowSettings,
    ModellingSettings,
    ModelSettings,
)


def metrics_summary(metrics: Mapping[str, Any]) -> str:
    """One log line of a model's (or the baseline's) CV, validation and test figures."""
    return (
        f"CV RMSE {metrics['cv_rmse']:.2f}, validation RMSE {metrics['val_rmse']:.2f} "
        f"MAE {metrics['val_mae']:.2f} R2 {metrics['val_r2']:.4f}, test RMSE "
        f"{metrics['test_rmse']:.2f} MAE {metrics['test_mae']:.2f} R2 {metrics['test_r2']:.4f}"
    )


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
    params: Mapping[str, Any], data_sha256: str, experiment: Mapping[str, Any] | None = None
) -> str:
    """``<model>-<12 hex>``: the hash covers the model's settings, the data's sha256 and the
    MLflow experiment the study logs to (tracking URI, experiment name and id).

    A change of data or configuration therefore always starts a new study: trials computed on
    other data or with another search space can never be mixed into it, even with
    ``tuning.replace_existing_study: false``. Two workflow runs that share one Optuna storage
    and one MLflow server with different experiment names get a study each: neither's setup
    replaces the other's study, and each shard index has one process per study.
    """
    where = {k: (experiment or {}).get(k) for k in ("tracking_uri", "experiment_name")}
    where["experiment_id"] = (experiment or {}).get("experiment_id")
    digest = config_hash(
        {"settings": settings_hash(params), "data_sha256": data_sha256, "experiment": where}
    )
    return f"{params['model']}-{digest[:12]}"


def load_modelling_data(
    arrow_path: str | Path, settings: ModellingSettings
) -> tuple[pd.DataFrame, ModellingData]:
    """The data version (its Arrow copy) and its features / year splits as configured."""
    frame = read_arrow(arrow_path)
    return frame, prepare_modelling_data(frame, settings)


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
) -> dict[str, Any]:
    """Check the model's configuration against its estimator, then create its Optuna study
    and the study's MLflow parent run.

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

    model = ModelSettings.from_params(params)
    try:
        check_model_estimator(
            model.name, {"search_space": model.search_space, "fixed_params": model.fixed_params}
        )
    except ModelConfigError as error:
        raise ModelConfigError(f"config key {error}") from None
    experiment = MlflowExperiment.from_json(experiment_document)
    metadata = read_json(data_metadata_path)
    name = study_name(params, metadata["sha256"], experiment_document)
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
) -> dict[str, Any]:
    """Run the shard's trials of the model's study; return the shard summary of
    :func:`.tuning.run_tuning_shard` plus ``seconds`` and ``trials_per_minute`` (wall time of the
    trials alone, without imports and data loading) and the epoch times ``started`` and
    ``finished`` of the trials (to see which shards overlapped)."""
    from .tuning import StudyRef, run_tuning_shard

    model = ModelSettings.from_params(params)
    _, data = load_modelling_data(arrow_path, model.modelling)
    started, started_at = time.perf_counter(), time.time()
    summary = run_tuning_shard(
        StudyRef.from_setup(setup),
        model,
        data.X["train"],
        data.y["train"],
        data.years["train"],
        shard_index,
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
        metrics=flatten_metrics(evaluate_model(estimator, held_out), cv_rmse=results["best_value"]),
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
    from .tuning import StudyRef, TuningError, study_results

    model = ModelSettings.from_params(params)
    importance = ImportanceSettings.from_params(importance_params)
    frame, data = load_modelling_data(arrow_path, model.modelling)
    results = study_results(StudyRef.from_setup(setup))
    reported = sorted(n for shard in shard_summaries for n in shard["trial_numbers"])
    if results["n_trials"] != len(reported):
        raise TuningError(
            f"study {setup['study_name']!r} holds {results['n_trials']} finished trials of this "
            f"setup, but its shards report {len(reported)}: another process tunes the same "
            "study (two runs sharing one storage and one MLflow experiment?)"
        )
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
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Evaluate the naive persistence baseline on the same year folds and splits as the models
    and log it as an MLflow run like a final model (metrics, dataset, tags, predictions; no
    model). ``params`` are the shared modelling settings (no model-specific keys).

    Returns the metrics document (a comparison row plus provenance) and the predictions.
    """
    from .tracking import BASELINE_STAGE, FinalRun, LoggedDataset, MlflowExperiment, log_final_run

    settings = ModellingSettings.from_params(params)
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


# --------------------------------------------------------------------------- compare_models


def compare_step(metrics_paths: Sequence[str | Path]) -> tuple[pd.DataFrame, list[str]]:
    """The comparison table of every model's and the baseline's ``metrics.json``, and the
    warnings for models that do not beat the baseline on validation."""
    table = build_comparison([read_json(path) for path in metrics_paths])
    return table, comparison_warnings(table)


# --------------------------------------------------------------------------- register_champion


def register_champion_step(
    comparison_path: str | Path,
    mlflow_run_paths: Mapping[str, str | Path],
    experiment_document: Mapping[str, Any],
    registered_model: str,
) -> dict[str, Any]:
    """Register the comparison's champion (the model with the lowest validation RMSE among
    those that beat the baseline) in MLflow's model registry under ``registered_model`` with
    the alias ``champion``. With no champion, remove the alias (so an older champion is not
    served) and record the fallback to persistence.

    ``mlflow_run_paths`` maps each model to its ``mlflow_run.json``. Returns the document of
    ``results/models/champion.json``.
    """
    from .comparison import champion_model
    from .tracking import champion_uri, clear_champion, register_champion

    comparison = pd.read_csv(comparison_path)
    champion = champion_model(comparison)
    tracking_uri = experiment_document["tracking_uri"]
    baseline_val_rmse = float(
        comparison.loc[comparison["model"] == BASELINE_NAME, "val_rmse"].iloc[0]
    )
    if champion is None:
        return {
            "champion": None,
            "fallback": "persistence",
            "tracking_uri": tracking_uri,
            "registered_model": registered_model,
            "alias_removed": clear_champion(tracking_uri, registered_model),
            "baseline_val_rmse": baseline_val_rmse,
        }
    run = read_json(mlflow_run_paths[champion])
    row = comparison.loc[comparison["model"] == champion].iloc[0]
    version = register_champion(
        tracking_uri,
        registered_model,
        run["model_uri"],
        {"model": champion, "run_id": run["run_id"], "val_rmse": str(row["val_rmse"])},
    )
    return {
        "champion": champion,
        "fallback": None,
        "tracking_uri": tracking_uri,
        "registered_model": registered_model,
        "version": version,
        "model_uri": champion_uri(registered_model),
        "run_id": run["run_id"],
        "logged_model_uri": run["model_uri"],
        "val_rmse": float(row["val_rmse"]),
        "baseline_val_rmse": baseline_val_rmse,
    }


# --------------------------------------------------------------------------- forecast


@dataclass
class ForecastResult:
    """The forecast table and what its metadata records besides rows, columns and sha256."""

    table: pd.DataFrame
    provenance: dict[str, Any]
    warning: str | None


def _forecast_predictions(
    champion: Mapping[str, Any], features: pd.DataFrame, data: ModellingData
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
    return estimator.predict(features.loc[:, data.features]), version


def forecast_step(
    params: Mapping[str, Any],
    champion: Mapping[str, Any],
    base_arrow: str | Path,
    modelling_arrow: str | Path,
    names_arrow: str | Path,
    calibration_predictions: pd.DataFrame,
) -> ForecastResult:
    """Forecast the target for the year after the data's last year.

    ``params``: the shared modelling settings plus ``forecast`` (interval method, levels and
    groups; where the names come from) and ``steps`` (the chain from lag_columns to the
    modelling data, see :func:`drg_workflow.chain.forecast_chain`). ``champion``:
    ``champion.json`` plus the tracking URI. ``names_arrow``: the data version the facility
    and DRG names are read from (``forecast.names.version``). ``calibration_predictions``: the
    champion's (or, without one, the baseline's) predictions on the validation and test years:
    validation calibrates the intervals per group, test measures their coverage.
    """
    from .forecast import (
        ChainStep,
        IntervalSettings,
        assess_intervals,
        calibrate_intervals,
        forecast_table,
        next_year_features,
        split_conformal,
        with_group_column,
        with_names,
    )

    settings = ModellingSettings.from_params(params)
    interval_settings = IntervalSettings.from_params(params["forecast"])
    name_columns = dict(params["forecast"]["names"]["columns"])
    base = read_arrow(base_arrow)
    frame, data = load_modelling_data(modelling_arrow, settings)
    steps = [ChainStep(**step) for step in params["steps"]]
    features = next_year_features(base, steps, settings.features.lag_columns)
    persistence = baseline_predictions(features, settings.features)
    prediction, version = _forecast_predictions(champion, features, data)
    warning = None
    if prediction is None:
        warning = NO_CHAMPION_WARNING
        prediction = persistence
    held_out = with_group_column(calibration_predictions, frame, interval_settings.column)
    calibration = held_out.loc[held_out["split"] == "validation"]
    intervals = calibrate_intervals(calibration, interval_settings)
    assessment = assess_intervals(
        intervals,
        split_conformal(calibration, interval_settings),
        held_out.loc[held_out["split"] == "test"],
    )
    provenance = {
        "forecast_year": int(features["year"].iloc[0]),
        "target": settings.features.target,
        "model": champion["champion"] or BASELINE_NAME,
        "fallback": champion["fallback"],
        "registered_model": champion["registered_model"],
        "model_version": version,
        "model_uri": champion.get("model_uri"),
        "run_id": champion.get("run_id"),
        "interval": {
            **intervals.to_json(),
            "calibration": {
                "rows": len(calibration),
                "source": "validation predictions",
                "years": sorted(int(y) for y in calibration["year"].unique()),
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
    backtest: pd.DataFrame | None = None,
) -> Any:
    """The facts of the champion's model card (a :class:`.model_card.ModelCardFacts`), from the
    shared modelling settings ``params``, ``champion.json``, every model's (and the
    baseline's) ``metrics.json`` by name, the forecast's metadata and, when the workflow ran
    one, the champion's backtest per origin year. Without a champion the card describes the
    persistence fallback the forecast uses."""
    from .model_card import ModelCardFacts

    settings = ModellingSettings.from_params(params)
    model = champion["champion"] or BASELINE_NAME
    own, baseline = metrics[model], metrics[BASELINE_NAME]
    split = settings.split
    if champion["champion"] is None:
        model_params: dict[str, Any] = {"prediction": baseline_rule(settings.features)}
        target_form, n_features = "raw", 1
        limitations = ("No model beat persistence: this card describes the fallback.",)
    else:
        model_params = {**own["fixed_params"], **own["best_params"]}
        target_form, n_features = own["target_form"], len(own["features"])
        limitations = ()
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
        training_years=split.train,
        validation_years=split.validation,
        test_years=split.test,
        forecast_year=int(forecast_metadata["forecast_year"]),
        run_id=champion.get("run_id"),
        tracking_uri=champion["tracking_uri"],
        metrics=own,
        baseline_metrics=baseline,
        intervals=forecast_metadata["interval"],
        backtest=backtest,
        limitations=limitations,
    )


def model_card_step(
    params: Mapping[str, Any],
    champion: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    forecast_metadata: Mapping[str, Any],
    backtest: pd.DataFrame | None = None,
) -> tuple[str, str]:
    """The champion's model card as Markdown and HTML (see :func:`model_card_facts`); the
    Markdown becomes the registered version's description and an artifact ``model_card.md``
    of its MLflow run. Without a champion nothing is written to the registry."""
    from .model_card import model_card, to_html, to_markdown
    from .tracking import log_model_card

    blocks = model_card(model_card_facts(params, champion, metrics, forecast_metadata, backtest))
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
