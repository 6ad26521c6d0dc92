"""The fitting rules' steps: ``train_final`` (a tuned model on the train years) and
``evaluate_baseline`` (persistence on the same years).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from drg_workflow.documents import read_json
from drg_workflow.names import HELD_OUT_SPLITS

from ..baseline import BASELINE_NAME, baseline_predictions, baseline_rule
from ..baseline import evaluate_baseline as persistence_metrics
from ..data import ModellingData
from ..settings import (
    ImportanceSettings,
    ModellingSettings,
    ModelSettings,
)
from ..years import ModellingYears
from .shared import (
    finished_study_results,
    load_modelling_data,
    model_settings,
    modelling_settings,
    settings_hash,
)


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
    from ..final import (
        evaluate_model,
        fit_final_model,
        flatten_metrics,
        impurity_importances,
        permutation_importances,
        predict_splits,
    )
    from ..tuning import merge_params

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
        # A column the regressor never sees scores exactly 0: not listed.
        permutation=unused_features_dropped(
            permutation_importances(
                estimator,
                data.X["validation"],
                data.y["validation"],
                n_repeats=importance.n_repeats,
                random_state=random_state,
                max_samples=importance.max_samples,
            ),
            model.dropped_features,
        ),
        impurity=impurity_importances(estimator, model_features(model, data)),
    )


def unused_features_dropped(importances: pd.DataFrame, dropped: Sequence[str]) -> pd.DataFrame:
    """``importances`` (a column ``feature``) without the rows of the ``dropped`` features."""
    return importances[~importances["feature"].isin(dropped)].reset_index(drop=True)


def model_features(model: ModelSettings, data: ModellingData) -> list[str]:
    """The features the model's regressor sees: the data's, but for its
    ``drop_feature_groups``."""
    dropped = set(model.dropped_features)
    return [feature for feature in data.features if feature not in dropped]


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
        # Which candidate won (round, index), not Optuna's trial number: that depends on which
        # shard created its trial first.
        "best_round": results["best_round"],
        "best_candidate": results["best_candidate"],
        "fixed_params": dict(model.fixed_params),
        "target_form": model.target_form,
        "drop_feature_groups": list(model.drop_feature_groups),
        "features": model_features(model, data),
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
    trials killed while running do not (see :func:`..tuning.study_results`).
    """
    from ..tracking import (
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


def baseline_predictions_frame(data: ModellingData, settings: ModellingSettings) -> pd.DataFrame:
    """The baseline's predictions on the held-out splits, keyed like the models'."""
    from ..final import predictions_frame

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


def evaluate_baseline(
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
    from ..tracking import BASELINE_STAGE, FinalRun, LoggedDataset, MlflowExperiment, log_final_run

    settings = modelling_settings(params, ModellingYears.from_json(years_document))
    metadata = read_json(data_metadata_path)
    frame, data = load_modelling_data(arrow_path, settings)
    row = persistence_metrics(data.frames, settings.cv_folds, settings.features)
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
