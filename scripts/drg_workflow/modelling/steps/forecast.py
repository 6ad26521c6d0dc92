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
    from ..data import select_features
    from ..forecast import (
        ChainStep,
        IntervalSettings,
        forecast_table,
        next_year_features,
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
    intervals, interval_document = _calibrated_intervals(
        interval_settings,
        modelling_arrow,
        modelling_columns,
        backtest_predictions,
        champion["champion"],
    )
    provenance = {
        "forecast_year": int(features["year"].iloc[0]),
        "last_data_year": int(base["year"].max()),
        "target": settings.features.target,
        "model": champion["champion"] or BASELINE_NAME,
        "fallback": champion["fallback"],
        "registered_model": champion["registered_model"],
        "model_version": version,
        "model_uri": champion.get("model_uri"),
        "training_years": champion.get("training_years"),
        "interval": interval_document,
    }
    names = read_arrow(names_arrow, ["year", *name_columns, *name_columns.values()])
    table = with_names(
        forecast_table(features, prediction, persistence, intervals), names, name_columns
    )
    return ForecastResult(table, provenance, warning)


def _calibrated_intervals(
    interval_settings: Any,
    modelling_arrow: str | Path,
    modelling_columns: Sequence[str],
    backtest_predictions: pd.DataFrame,
    champion: str | None,
) -> tuple[Any, dict[str, Any]]:
    """The forecast's intervals, calibrated per group on the champion's (or persistence's)
    backtest residuals at every origin, and the metadata's ``interval`` document: the
    intervals, their calibration, and how intervals calibrated on the choosing origins alone do
    on the reporting origins (``test``)."""
    from ..data import KEY_COLUMNS
    from ..forecast import (
        ForecastError,
        assess_intervals,
        backtest_residual_rows,
        calibrate_intervals,
        split_conformal,
        with_group_column,
    )

    column = interval_settings.column
    if column not in modelling_columns:
        raise ForecastError(
            f"config key forecast.interval_groups.column: {column!r} is not a column of the "
            "modelling data"
        )
    groups = read_arrow(modelling_arrow, [*KEY_COLUMNS, column])
    residuals = with_group_column(
        backtest_residual_rows(backtest_predictions, champion), groups, column
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
    document = {
        **intervals.to_json(),
        "calibration": {
            "rows": len(residuals),
            "source": "backtest out-of-sample predictions at every origin",
            "years": sorted(int(y) for y in residuals["year"].unique()),
        },
        "test": assessment,
    }
    return intervals, document
