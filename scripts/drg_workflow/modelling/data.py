"""Modelling data: feature selection, split by year and year-wise cross-validation folds.

Everything here works on the v13 frame (see the data contract, "Modelling data"): one row per
(year, facility_id, apr_drg_code) with the current-year target and lagged / rolling features.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

TARGET = "w_total_median_profit"
KEY_COLUMNS: tuple[str, ...] = ("year", "facility_id", "apr_drg_code")

# Computed from the target year's own rows (distinct DRGs per facility/year, the same-year volume
# bin): unknown when forecasting year t from earlier years, so excluded unless switched back on
# for comparison with the original pipeline, which used them.
SAME_YEAR_FEATURES: tuple[str, ...] = (
    "facility_drg_count",
    "year_drg_count",
    "ratio_drg_facility_vs_year",
    "yearly_discharge_bin",
)

# The lag list of v11/v12; v13 keeps only their `_lag1` / `_rolling2` versions plus the target.
LAG_LIST: tuple[str, ...] = (
    "sum_discharges",
    "severity_1_portion",
    "severity_2_portion",
    "severity_3_portion",
    "severity_4_portion",
    "w_mean_charge",
    "w_mean_cost",
    "w_mean_profit",
    "w_total_mean_profit",
    "w_total_mean_cost",
    "w_median_charge",
    "w_median_cost",
    "w_median_profit",
    "w_total_median_profit",
    "w_total_median_cost",
)

SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")


def select_features(
    columns: Iterable[str],
    target: str = TARGET,
    include_same_year_features: bool = False,
    include_year: bool = False,
) -> list[str]:
    """Return the feature columns of a v13 frame, in the frame's column order.

    Features are every column except the target, the four same-year columns (unless
    ``include_same_year_features``) and ``year`` (unless ``include_year``).
    ``facility_id`` and ``apr_drg_code`` stay as (numeric) features, as in the original.

    ``year`` is excluded by default because every evaluation here forecasts a year the model has
    never seen (CV folds, validation and test years all lie after the training years): a tree
    model treats such a year like the last training year, and a linear model extrapolates a
    learnt trend, so the column adds no usable information and can only hurt.

    Raises:
        ValueError: the target is missing, a requested same-year column is missing, or a
            current-year lag-list column other than the target is present (it would leak the
            target year's values into the features).
    """
    cols = list(columns)
    if target not in cols:
        raise ValueError(f"target column {target!r} not in the data")
    leaking = [c for c in LAG_LIST if c != target and c in cols]
    if leaking:
        raise ValueError(
            f"current-year columns {leaking} are present: v13 must drop them (they leak the "
            "target year); was the data produced by drop_non_lag_columns?"
        )
    if include_same_year_features:
        missing = [c for c in SAME_YEAR_FEATURES if c not in cols]
        if missing:
            raise ValueError(f"include_same_year_features is on but columns {missing} are missing")
    excluded = {target}
    if not include_same_year_features:
        excluded.update(SAME_YEAR_FEATURES)
    if not include_year:
        excluded.add("year")
    return [c for c in cols if c not in excluded]


def make_xy(
    df: pd.DataFrame, features: Sequence[str], target: str = TARGET
) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Split a frame into features ``X``, target ``y`` (float) and the ``year`` array for folds.

    Raises:
        ValueError: a feature is not numeric, or the target has missing values.
    """
    X = df.loc[:, list(features)]
    non_numeric = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    if non_numeric:
        raise ValueError(f"feature columns must be numeric; not numeric: {non_numeric}")
    y = df[target].astype(float)
    n_missing = int(y.isna().sum())
    if n_missing:
        raise ValueError(f"target {target!r} has {n_missing} missing values")
    return X, y, df["year"].to_numpy()


@dataclass(frozen=True)
class YearSplit:
    """Inclusive year ranges ``(first, last)`` of the train, validation and test splits."""

    train: tuple[int, int] = (2010, 2014)
    validation: tuple[int, int] = (2015, 2015)
    test: tuple[int, int] = (2016, 2017)

    def __post_init__(self) -> None:
        for name in SPLIT_NAMES:
            first, last = getattr(self, name)
            if first > last:
                raise ValueError(f"split.{name}: first year ({first}) must be <= last ({last})")
        # Time order is what makes validation/test honest forecasts.
        if not self.train[1] < self.validation[0]:
            raise ValueError(
                f"split: train years must end before validation starts "
                f"(train last {self.train[1]}, validation first {self.validation[0]})"
            )
        if not self.validation[1] < self.test[0]:
            raise ValueError(
                f"split: validation years must end before test starts "
                f"(validation last {self.validation[1]}, test first {self.test[0]})"
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Sequence[int]]) -> YearSplit:
        """Build from ``{"train": [first, last], "validation": [...], "test": [...]}``."""
        ranges = {}
        for name in SPLIT_NAMES:
            if name not in cfg:
                raise ValueError(f"split.{name} missing")
            value = list(cfg[name])
            if len(value) != 2 or not all(isinstance(v, int) for v in value):
                raise ValueError(f"split.{name}: expected [first_year, last_year], got {value}")
            ranges[name] = (value[0], value[1])
        return cls(**ranges)


def split_by_year(df: pd.DataFrame, split: YearSplit | None = None) -> dict[str, pd.DataFrame]:
    """Split rows into ``train``/``validation``/``test`` by their ``year`` (index reset).

    Rows outside all three ranges are dropped.

    Raises:
        ValueError: a split has no rows.
    """
    split = split or YearSplit()
    out: dict[str, pd.DataFrame] = {}
    available = sorted(pd.unique(df["year"]).tolist())
    for name in SPLIT_NAMES:
        first, last = getattr(split, name)
        part = df[(df["year"] >= first) & (df["year"] <= last)].reset_index(drop=True)
        if part.empty:
            raise ValueError(
                f"split.{name}: no rows for years {first}-{last} (data has years {available})"
            )
        out[name] = part
    return out


def year_folds(years: np.ndarray | pd.Series, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Time-ordered CV folds: for each of the last ``n_folds`` distinct years ``y`` (ascending),
    train on the rows with ``year < y`` and validate on the rows with ``year == y``.

    Returns positional index arrays ``(train_idx, val_idx)``. Never random or row-order splits:
    the rows may be in any order.

    Raises:
        ValueError: ``n_folds < 1``, missing years, or fewer than ``n_folds + 1`` distinct years
            (the first validation year needs at least one earlier year to train on).
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")
    arr = np.asarray(years)
    if arr.size and pd.isna(arr).any():
        raise ValueError("years contain missing values")
    distinct = np.unique(arr)
    if len(distinct) < n_folds + 1:
        raise ValueError(
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
    """Everything the tuning / final / baseline steps need from one v13 frame."""

    features: list[str]
    frames: dict[str, pd.DataFrame]  # train / validation / test rows (all columns)
    X: dict[str, pd.DataFrame]
    y: dict[str, pd.Series]
    years: dict[str, np.ndarray]


def prepare_modelling_data(
    df: pd.DataFrame,
    split: YearSplit | None = None,
    include_same_year_features: bool = False,
    include_year: bool = False,
    target: str = TARGET,
) -> ModellingData:
    """Select features, split by year and build ``X``/``y``/``years`` per split in one call, so
    every rule derives the same features and rows from the same config."""
    features = select_features(df.columns, target, include_same_year_features, include_year)
    frames = split_by_year(df, split)
    parts = {name: make_xy(frame, features, target) for name, frame in frames.items()}
    return ModellingData(
        features=features,
        frames=frames,
        X={name: p[0] for name, p in parts.items()},
        y={name: p[1] for name, p in parts.items()},
        years={name: p[2] for name, p in parts.items()},
    )
