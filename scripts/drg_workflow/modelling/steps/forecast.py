"""The ``forecast`` rule's step: next year's predictions with intervals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from drg_workflow.names import CHOOSING_ROLE, REPORTING_ROLE
from drg_workflow.tables import arrow_columns, read_arrow

from ..baseline import BASELINE_NAME, baseline_predictions
from ..comparison import NO_CHAMPION_WARNING
from ..years import ModellingYears
from .shared import (
    modelling_settings,
)


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
    from ..forecast import ForecastError
    from ..tracking import load_champion

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


def forecast(
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
    from ..data import KEY_COLUMNS, select_features
    from ..forecast import (
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
