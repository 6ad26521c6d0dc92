"""What several modelling steps share: typed settings from rule params, the modelling data,
the study's results, the settings hash and study name, writing a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from drg_workflow.files import atomic_output
from drg_workflow.hashing import config_hash, short_sha
from drg_workflow.profiling import timed
from drg_workflow.tables import read_arrow

from ..data import ModellingData, prepare_modelling_data
from ..settings import (
    ModellingSettings,
    ModelSettings,
)
from ..years import ModellingYears


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
    """``<model>-<short sha>``: the hash covers the model's settings, the data's sha256, the
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
    return f"{params['model']}-{short_sha(digest)}"


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


def finished_study_results(
    setup: Mapping[str, Any], shard_summaries: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The study's results (:func:`..tuning.study_results`: its finished trials of this setup),
    checked against the trials its shards report.

    Raises:
        TuningError: the study holds another number of finished trials than the shards report
            (another process tunes the same study).
    """
    from ..tuning import StudyRef, TuningError, study_results

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
    from ..tuning import merge_params

    results = finished_study_results(setup, shard_summaries)
    return merge_params(model.fixed_params, results["best_params"])
