"""The champion rules' steps: ``compare_models``, ``refit_champion`` and
``register_champion``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from drg_workflow.documents import read_json
from drg_workflow.hashing import short_sha
from drg_workflow.tables import read_arrow

from ..comparison import build_comparison, comparison_warnings
from ..years import ModellingYears
from .shared import model_settings

if TYPE_CHECKING:  # mlflow is imported only by the steps that log
    from ..tracking import FinalRun


def compare_models(
    metrics_paths: Sequence[str | Path], backtest_path: str | Path, skill_test_path: str | Path
) -> tuple[pd.DataFrame, list[str]]:
    """The comparison table of every model's and the baseline's ``metrics.json``, the backtest
    and its pooled skill test, with the skill gate and the champion; and the warnings for
    models that fail the gate."""
    backtest = pd.read_csv(backtest_path)
    skill_test = pd.read_csv(skill_test_path)
    table = build_comparison([read_json(path) for path in metrics_paths], backtest, skill_test)
    return table, comparison_warnings(table)


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


def _refit_run(
    champion: str,
    params: Mapping[str, Any],
    rows: int,
    training_years: Sequence[int],
    backtest: Mapping[str, Any],
    metrics: Mapping[str, Any],
    settings: Mapping[str, Any],
    parent_run_id: str,
) -> FinalRun:
    """The MLflow run record of the
    refitted champion: nested under its study's parent run, tagged with its training years and
    the origins that chose it."""
    from ..tracking import REFIT_STAGE, FinalRun, refit_run_name

    return FinalRun(
        model=champion,
        params=params,
        metrics={
            "rows": float(rows),
            "backtest_skill_rmse": backtest["skill_rmse"],
            "backtest_skill_mae": backtest["skill_mae"],
        },
        config_hash=metrics["config_hash"],
        stage=REFIT_STAGE,
        parent_run_id=parent_run_id,
        tags={
            "training_years": f"{training_years[0]}-{training_years[-1]}",
            "first_training_year": str(training_years[0]),
            "last_training_year": str(training_years[-1]),
            "chosen_on": " ".join(map(str, backtest["chosen_on"])),
        },
        documents={"settings.json": dict(settings), "backtest_skill.json": backtest},
        run_name=refit_run_name(champion),
    )


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
    from ..comparison import champion_model
    from ..data import make_xy, select_features
    from ..models import model_estimator
    from ..tracking import LoggedDataset, MlflowExperiment, log_final_run, refit_run_name
    from ..tuning import merge_params
    from ..years import distinct_years

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
    experiment = MlflowExperiment.from_json(experiment_document)
    run = log_final_run(
        experiment,
        _refit_run(
            champion,
            params,
            len(y),
            training_years,
            backtest,
            metrics,
            settings_by_model[champion],
            mlflow_runs[champion]["parent_run_id"],
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
        f"{refit['data_version']}, sha256 {short_sha(refit['data_sha256'])}); chosen by the skill "
        f"gate on the backtest origins {', '.join(map(str, refit['chosen_on']))} (skill "
        f"against persistence, {skills})"
    )


def register_champion(
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
    from ..tracking import champion_uri, clear_champion
    from ..tracking import register_champion as register_version

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
    version = register_version(
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
