"""The backtest rules' steps: ``backtest_model`` (a refit per origin, one job per model) and
``score_backtest`` (skill against persistence).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from drg_workflow.tables import read_arrow

from ..settings import (
    BacktestSettings,
)
from ..years import ModellingYears
from .shared import (
    model_settings,
    tuned_params,
)


def backtest_model(
    params: Mapping[str, Any],
    setup: Mapping[str, Any],
    shard_summaries: Sequence[Mapping[str, Any]],
    years_document: Mapping[str, Any],
    arrow_path: str | Path,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Refit a model with its tuned parameters (the best trial of its study, read as soon as
    its shards are done: the refits need not wait for ``train_final``) on every year before
    each backtest origin and predict that origin (:func:`..backtest.fit_at_origin`), origin
    after origin.

    Returns the predictions of every origin (:data:`..backtest.PREDICTION_COLUMNS`, in origin
    order) and the document of each origin's fit, for ``results/backtest/{model}/fits.json``:
    model, origin, its role, the training years, the parameters, the rows predicted and the
    data's sha256.
    """
    from ..backtest import fit_at_origin
    from ..data import select_features

    years = ModellingYears.from_json(years_document)
    model = model_settings(params, years)
    settings = model.modelling
    frame = read_arrow(arrow_path)
    features = select_features(
        frame.columns, settings.features, settings.include_same_year_features, settings.include_year
    )
    tuned = tuned_params(model, setup, shard_summaries)
    predictions, documents = [], []
    for origin in years.origins:
        fit = fit_at_origin(model, tuned, frame, features, origin, years.role(origin))
        predictions.append(fit.predictions)
        documents.append(
            {
                "model": model.name,
                "origin": origin,
                "role": years.role(origin),
                "training_years": fit.training_years,
                "params": tuned,
                "rows_predicted": len(fit.predictions),
                "data_sha256": setup["data_sha256"],
                "config_hash": setup["config_hash"],
            }
        )
    return pd.concat(predictions, ignore_index=True), documents


@dataclass
class BacktestResult:
    """The backtest table, every out-of-sample prediction, and what the table's metadata
    records besides rows, columns and sha256."""

    table: pd.DataFrame
    skill_test: pd.DataFrame
    predictions: pd.DataFrame
    provenance: dict[str, Any]


def score_backtest(
    params: Mapping[str, Any],
    prediction_tables: Sequence[pd.DataFrame],
    fit_documents: Sequence[Mapping[str, Any]],
    years_document: Mapping[str, Any],
) -> BacktestResult:
    """Score every (model, origin) of the backtest against persistence with bootstrap
    intervals (:func:`..backtest.score_backtest`).

    ``params``: ``modelling.backtest`` plus ``random_state`` (the bootstrap's seed) and
    ``models`` (their order); ``prediction_tables`` and ``fit_documents``: the backtest jobs'
    outputs (each model's predictions, each origin's fit). The predictions come back as one
    table, sorted by origin, model (in ``models`` order) and keys.
    """
    from ..backtest import score_backtest as score_against_persistence
    from ..data import KEY_COLUMNS

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
    scores = score_against_persistence(predictions, training_years, settings)
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


def log_backtest(
    experiment_document: Mapping[str, Any],
    table: pd.DataFrame,
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """Log the backtest table and its metadata to MLflow (:func:`..tracking.log_backtest`);
    return the document of ``results/backtest/mlflow_run.json``."""
    from ..tracking import MlflowExperiment
    from ..tracking import log_backtest as log_backtest_run

    experiment = MlflowExperiment.from_json(experiment_document)
    origins = metadata["origins"]
    run = log_backtest_run(
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
