"""Modelling data: feature selection, split by year and year-wise cross-validation folds.

Everything here works on the modelling data version (``modelling.data_version``; see
docs/data-versions.md): one row per (year, facility_id, apr_drg_code) with the current-year
target and the lag / rolling-mean features of the configured lag list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from drg_workflow.errors import DrgWorkflowError
from drg_workflow.names import ROW_KEY

from .settings import SPLIT_NAMES, FeatureSettings, ModellingSettings, YearSplit

#: The modelling data's row key (:data:`drg_workflow.names.ROW_KEY`).
KEY_COLUMNS: tuple[str, ...] = ROW_KEY

# Computed from the target year's own rows (distinct DRGs per facility/year, the same-year volume
# bin): unknown when forecasting year t from earlier years, so excluded unless switched back on
# for comparison with the original pipeline, which used them.
SAME_YEAR_FEATURES: tuple[str, ...] = (
    "facility_drg_count",
    "year_drg_count",
    "ratio_drg_facility_vs_year",
    "yearly_discharge_bin",
)


class ModellingDataError(DrgWorkflowError):
    """The modelling data does not fit the configured features, split or folds."""


def select_features(
    columns: Iterable[str],
    features: FeatureSettings,
    include_same_year_features: bool = False,
    include_year: bool = False,
) -> list[str]:
    """Return the feature columns of the modelling data, in the frame's column order.

    Features are every column except the target, the four same-year columns (unless
    ``include_same_year_features``) and ``year`` (unless ``include_year``).
    ``facility_id`` and ``apr_drg_code`` stay as (numeric) features, as in the original.

    ``year`` is excluded by default because every evaluation here forecasts a year the model has
    never seen (CV folds, validation and test years all lie after the training years): a tree
    model treats such a year like the last training year, and a linear model extrapolates a
    learnt trend, so the column adds no usable information and can only hurt.

    Raises:
        ModellingDataError: the target is missing, a requested same-year column is missing, or
            a current-year column of the configured lag list other than the target is present
            (it would leak the target year's values into the features).
    """
    cols = list(columns)
    target = features.target
    if target not in cols:
        raise ModellingDataError(f"target column {target!r} not in the data")
    leaking = [c for c in features.lag_columns if c != target and c in cols]
    if leaking:
        raise ModellingDataError(
            f"current-year columns {leaking} of the lag list are present: the modelling data "
            "must not have them (they leak the target year); was it made by drop_non_lag_columns?"
        )
    if include_same_year_features:
        missing = [c for c in SAME_YEAR_FEATURES if c not in cols]
        if missing:
            raise ModellingDataError(
                f"include_same_year_features is on but columns {missing} are missing"
            )
    excluded = {target}
    if not include_same_year_features:
        excluded.update(SAME_YEAR_FEATURES)
    if not include_year:
        excluded.add("year")
    return [c for c in cols if c not in excluded]


def make_xy(
    df: pd.DataFrame, features: Sequence[str], target: str
) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Split a frame into features ``X``, target ``y`` (float) and the ``year`` array for folds.

    Raises:
        ModellingDataError: a feature is not numeric, or the target has missing values.
    """
    X = df.loc[:, list(features)]
    non_numeric = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    if non_numeric:
        raise ModellingDataError(f"feature columns must be numeric; not numeric: {non_numeric}")
    y = df[target].astype(float)
    n_missing = int(y.isna().sum())
    if n_missing:
        raise ModellingDataError(f"target {target!r} has {n_missing} missing values")
    return X, y, df["year"].to_numpy()


def split_by_year(df: pd.DataFrame, split: YearSplit) -> dict[str, pd.DataFrame]:
    """Split rows into ``train``/``validation``/``test`` by their ``year`` (index reset).

    Rows outside all three ranges are dropped.

    Raises:
        ModellingDataError: a split has no rows.
    """
    out: dict[str, pd.DataFrame] = {}
    available = sorted(pd.unique(df["year"]).tolist())
    for name in SPLIT_NAMES:
        first, last = getattr(split, name)
        part = df[(df["year"] >= first) & (df["year"] <= last)].reset_index(drop=True)
        if part.empty:
            raise ModellingDataError(
                f"modelling.split.{name}: no rows for years {first}-{last} "
                f"(data has years {available})"
            )
        out[name] = part
    return out


def year_folds(years: np.ndarray | pd.Series, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Time-ordered CV folds: for each of the last ``n_folds`` distinct years ``y`` (ascending),
    train on the rows with ``year < y`` and validate on the rows with ``year == y``.

    Returns positional index arrays ``(train_idx, val_idx)``. Never random or row-order splits:
    the rows may be in any order.

    Raises:
        ModellingDataError: ``n_folds < 1``, missing years, or fewer than ``n_folds + 1``
            distinct years (the first validation year needs at least one earlier year to train on).
    """
    if n_folds < 1:
        raise ModellingDataError(f"n_folds must be >= 1, got {n_folds}")
    arr = np.asarray(years)
    if arr.size and pd.isna(arr).any():
        raise ModellingDataError("years contain missing values")
    distinct = np.unique(arr)
    if len(distinct) < n_folds + 1:
        raise ModellingDataError(
            f"{n_folds} year folds need at least {n_folds + 1} distinct training years "
            f"(each validation year needs an earlier year to train on); got {len(distinct)}: "
            f"{distinct.tolist()}"
        )
    folds = []
    for val_year in distinct[-n_folds:]:
        folds.append((np.flatnonzero(arr < val_year), np.flatnonzero(arr == val_year)))
    return folds


def fold_years(years: np.ndarray | pd.Series, n_folds: int) -> list[int]:
    """The validation year of each fold of :func:`year_folds`, in fold order."""
    year_folds(years, n_folds)  # same validation and errors
    return [int(y) for y in np.unique(np.asarray(years))[-n_folds:]]


@dataclass(frozen=True)
class ModellingData:
    """Everything the tuning / final / baseline steps need from the modelling data."""

    features: list[str]
    frames: dict[str, pd.DataFrame]  # train / validation / test rows (all columns)
    X: dict[str, pd.DataFrame]
    y: dict[str, pd.Series]
    years: dict[str, np.ndarray]


def prepare_modelling_data(df: pd.DataFrame, settings: ModellingSettings) -> ModellingData:
    """Select features, split by year and build ``X``/``y``/``years`` per split in one call, so
    every rule derives the same features and rows from the same config."""
    target = settings.features.target
    features = select_features(
        df.columns, settings.features, settings.include_same_year_features, settings.include_year
    )
    frames = split_by_year(df, settings.split)
    parts = {name: make_xy(frame, features, target) for name, frame in frames.items()}
    return ModellingData(
        features=features,
        frames=frames,
        X={name: p[0] for name, p in parts.items()},
        y={name: p[1] for name, p in parts.items()},
        years={name: p[2] for name, p in parts.items()},
    )
