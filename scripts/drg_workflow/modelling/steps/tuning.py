"""The tuning rules' steps: ``setup_mlflow``, ``setup_study`` and ``tune_shard``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drg_workflow.documents import read_json

from ..settings import (
    MlflowSettings,
)
from ..years import ModellingYears
from .shared import (
    load_modelling_data,
    model_settings,
    settings_hash,
    study_name,
)


def setup_mlflow(mlflow_params: Mapping[str, Any]) -> dict[str, str]:
    """Create (or get) the MLflow experiment every run goes to, and the store if it is a fresh
    local sqlite file. Returns the document of ``results/mlflow/experiment.json``: tracking
    URI, experiment name and id, artifact location."""
    from ..tracking import ensure_experiment

    return ensure_experiment(MlflowSettings.from_params(mlflow_params)).to_json()


def setup_study(
    params: Mapping[str, Any],
    experiment_document: Mapping[str, Any],
    data_metadata_path: str | Path,
    years_document: Mapping[str, Any],
) -> dict[str, Any]:
    """Check the model's configuration against its estimator, then create its Optuna study
    (whose first trial, shard 0's, is at :data:`..model_params.PERSISTENCE_PARAMS`, which predicts
    persistence) and the study's MLflow parent run.

    Returns the document written to ``results/tuning/{model}/setup.json``: what the shards need
    (study name, storage, tracking URI, experiment and parent run ids) plus the data's sha256
    and the settings hash.

    Raises:
        ModelConfigError: a parameter name or value the estimator does not accept (one line
            naming the config key).
    """
    from ..models import ModelConfigError
    from ..search_space import check_model_estimator
    from ..tracking import MlflowExperiment, create_parent_run
    from ..tuning import create_study, resolve_storage, storage_label

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
        # The objective that chose the parameters (its RMSE's cap), readable beside the study.
        "error_cap_quantile": tuning.error_cap_quantile,
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
    :func:`..tuning.run_tuning_shard` plus ``seconds`` and ``trials_per_minute`` (wall time of the
    trials alone, without imports and data loading) and the epoch times ``started`` and
    ``finished`` of the trials (to see which shards overlapped)."""
    from ..tuning import StudyRef, run_tuning_shard

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
