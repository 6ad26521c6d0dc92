"""Rolling-origin backtest with refits: what each model would have forecast, year after year.

At each origin year ``o`` every model is refitted with its tuned parameters on every row of the
years before ``o`` and predicts the rows of ``o`` (:func:`fit_at_origin`): the procedure that
makes the real forecast, so the backtest measures what users get. Persistence (last year's
value) predicts the same rows. Per origin and model, :func:`score_backtest` measures RMSE, MAE
and the skill against persistence, ``1 - RMSE / RMSE_persistence`` (and the same for MAE), with
a seeded bootstrap interval of the skill over the series (the (facility, DRG) rows of the
origin year, resampled with replacement, the same resamples for every model).

Origins in the validation years choose the champion (:mod:`.comparison`), origins in the test
years only report (:mod:`.years`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from drg_workflow.columns import lag_column, rolling_column
from drg_workflow.names import BASELINE_NAME, CHOOSING_ROLE, SKILL_COLUMNS

from .baseline import baseline_predictions
from .data import KEY_COLUMNS, ModellingDataError, make_xy
from .models import model_estimator
from .settings import BacktestSettings, FeatureSettings, ModelSettings
from .years import distinct_years

#: The column whose last-year value is kept with every prediction (the series' volume).
DISCHARGES_COLUMN = "sum_discharges"
#: Columns of the out-of-sample predictions, per origin and model (``results/backtest/
#: predictions.csv``): the origin (the year predicted) and its role, the model, the keys, the
#: actual value, the model's and persistence's predictions and last year's discharges.
PREDICTION_COLUMNS: tuple[str, ...] = (
    "origin",
    "role",
    "model",
    *KEY_COLUMNS,
    "actual",
    "prediction",
    "persistence",
    "last_year_discharges",
)
#: Columns of the backtest table (``results/backtest/backtest.csv``), one row per origin and
#: model (and persistence itself, as ``baseline``, at skill 0).
SCORE_COLUMNS: tuple[str, ...] = (
    "origin",
    "role",
    "model",
    "n_series",
    "first_training_year",
    "last_training_year",
    "rmse",
    "mae",
    "persistence_rmse",
    "persistence_mae",
    *SKILL_COLUMNS,
)
#: Cells of the resample-count matrix built at once by the bootstrap (memory: 8 bytes each).
_BOOTSTRAP_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class OriginFit:
    """A model refitted at one origin: its predictions of the origin year and the years it
    was trained on."""

    predictions: pd.DataFrame
    training_years: list[int]


def last_year_discharges(rows: pd.DataFrame, features: FeatureSettings) -> np.ndarray:
    """Last year's discharges of each row (the lag of ``sum_discharges``, else its rolling
    mean, like persistence), or NaN where the lag list does not hold ``sum_discharges``."""
    lag = lag_column(DISCHARGES_COLUMN)
    rolling = rolling_column(DISCHARGES_COLUMN, features.rolling_window)
    if lag not in rows.columns or rolling not in rows.columns:
        return np.full(len(rows), np.nan)
    previous = rows[lag].astype(float)
    return previous.where(previous.notna(), rows[rolling].astype(float)).to_numpy()


def origin_predictions(
    rows: pd.DataFrame,
    origin: int,
    role: str,
    model: str,
    prediction: np.ndarray,
    features: FeatureSettings,
) -> pd.DataFrame:
    """The predictions of ``rows`` (the origin year's modelling data) in the columns of
    :data:`PREDICTION_COLUMNS`, sorted by facility and DRG."""
    out = rows.loc[:, list(KEY_COLUMNS)].reset_index(drop=True)
    out.insert(0, "model", model)
    out.insert(0, "role", role)
    out.insert(0, "origin", int(origin))
    out["actual"] = rows[features.target].to_numpy(dtype=float)
    out["prediction"] = np.asarray(prediction, dtype=float)
    out["persistence"] = baseline_predictions(rows, features)
    out["last_year_discharges"] = last_year_discharges(rows, features)
    return out.sort_values(list(KEY_COLUMNS), kind="stable", ignore_index=True)


def fit_at_origin(
    model: ModelSettings,
    params: Mapping[str, Any],
    frame: pd.DataFrame,
    features: Sequence[str],
    origin: int,
    role: str,
) -> OriginFit:
    """Refit ``model`` with ``params`` on every row of ``frame`` (the modelling data) from the
    years before ``origin`` and predict the rows of ``origin``.

    Nothing of the origin year or later reaches the fit: only the origin's own features (its
    lags, made from earlier years) are used, to predict.

    Raises:
        ModellingDataError: no row before the origin, or none in it.
    """
    target = model.modelling.features.target
    years = frame["year"].to_numpy()
    training, predicted = frame.loc[years < origin], frame.loc[years == origin]
    if training.empty or predicted.empty:
        raise ModellingDataError(
            f"backtest origin {origin}: {len(training)} rows before it and {len(predicted)} "
            f"in it (the data has the years {distinct_years(years)})"
        )
    X, y, _ = make_xy(training, features, target)
    estimator = model_estimator(model, params).fit(X, y)
    prediction = estimator.predict(predicted.loc[:, list(features)])
    return OriginFit(
        origin_predictions(
            predicted, origin, role, model.name, prediction, model.modelling.features
        ),
        distinct_years(training["year"]),
    )


def skill(value: np.ndarray | float, persistence: np.ndarray | float) -> np.ndarray:
    """``1 - value / persistence``: 0 is as good as persistence, 1 is perfect, negative is
    worse (``-inf`` when persistence is perfect and the model is not, 0 when both are)."""
    value, persistence = np.asarray(value, dtype=float), np.asarray(persistence, dtype=float)
    perfect = persistence <= 0
    ratio = value / np.where(perfect, 1.0, persistence)
    return 1.0 - np.where(perfect, np.where(value > 0, np.inf, 1.0), ratio)


def bootstrap_skill_resamples(
    model_errors: np.ndarray,
    persistence_errors: np.ndarray,
    settings: BacktestSettings,
    stream: int,
) -> dict[str, np.ndarray]:
    """The RMSE and MAE skill of several models at once in each bootstrap resample of the
    series.

    ``model_errors`` is ``(n_series, n_models)`` of prediction errors (actual - prediction),
    ``persistence_errors`` ``(n_series,)``. Each resample draws ``n_series`` series with
    replacement, the same draws for every model (paired with persistence), seeded by
    ``settings.seed`` and ``stream`` (the origin year). Returns ``{"rmse": (resamples,
    n_models), "mae": (resamples, n_models)}``.
    """
    squared = np.column_stack([model_errors**2, persistence_errors**2])
    absolute = np.abs(np.column_stack([model_errors, persistence_errors]))
    n = squared.shape[0]
    rng = np.random.default_rng([settings.seed, int(stream)])
    chunk = max(1, _BOOTSTRAP_CHUNK_CELLS // max(n, 1))
    sums_squared, sums_absolute = [], []
    for start in range(0, settings.bootstrap_resamples, chunk):
        size = min(chunk, settings.bootstrap_resamples - start)
        draws = rng.integers(0, n, size=(size, n))
        # How often each series is drawn in each resample, as one bincount.
        offsets = (np.arange(size)[:, None] * n + draws).ravel()
        counts = np.bincount(offsets, minlength=size * n).reshape(size, n).astype(float)
        # einsum's own loop, not BLAS: a BLAS product sums in an order that depends on its
        # threads, which differ between a job in Snakemake's process and one in its own, so
        # the last bits (and the skill test's bytes) would too.
        sums_squared.append(np.einsum("rs,sm->rm", counts, squared))
        sums_absolute.append(np.einsum("rs,sm->rm", counts, absolute))
    squared_sums, absolute_sums = np.vstack(sums_squared), np.vstack(sums_absolute)
    return {
        "rmse": skill(np.sqrt(squared_sums[:, :-1]), np.sqrt(squared_sums[:, -1:])),
        "mae": skill(absolute_sums[:, :-1], absolute_sums[:, -1:]),
    }


def percentile_interval(resampled: np.ndarray, level: float) -> np.ndarray:
    """The two-sided ``level`` percentile interval of resampled values, per column: ``(2,
    n_columns)``, lower then upper. Percentiles that are resampled values (no interpolation: a
    skill can be -inf)."""
    tail = (1 - level) / 2
    return np.quantile(resampled, [tail, 1 - tail], axis=0, method="inverted_cdf")


def bootstrap_skill_intervals(
    model_errors: np.ndarray,
    persistence_errors: np.ndarray,
    settings: BacktestSettings,
    stream: int,
) -> dict[str, np.ndarray]:
    """Bootstrap intervals over series of the RMSE and MAE skill of several models at once
    (:func:`bootstrap_skill_resamples`): ``{"rmse": (2, n_models), "mae": (2, n_models)}``,
    lower and upper percentiles of the skill at ``settings.interval_level``."""
    resampled = bootstrap_skill_resamples(model_errors, persistence_errors, settings, stream)
    return {
        metric: percentile_interval(values, settings.interval_level)
        for metric, values in resampled.items()
    }


def _aligned(origin_rows: pd.DataFrame, models: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """One origin's predictions as the first model's rows and a ``(n_series, n_models)`` matrix
    of every model's predictions; every model must predict the same series with the same
    actual and persistence values."""
    keys = list(KEY_COLUMNS)
    parts = [
        origin_rows.loc[origin_rows["model"] == model].sort_values(keys, kind="stable")
        for model in models
    ]
    first = parts[0].reset_index(drop=True)
    for model, part in zip(models, parts, strict=True):
        same = len(part) == len(first) and (part[keys].to_numpy() == first[keys].to_numpy()).all()
        if not same or not np.allclose(part["persistence"], first["persistence"]):
            raise ModellingDataError(
                f"backtest origin {int(first['origin'].iloc[0])}: model {model!r} predicts "
                "other series than the others"
            )
    return first, np.column_stack([part["prediction"].to_numpy(float) for part in parts])


#: Columns of the skill gate's test over the choosing origins together
#: (``results/backtest/skill_test.csv``, :func:`pooled_skill_test`), one row per model.
SKILL_TEST_COLUMNS: tuple[str, ...] = (
    "model",
    "choosing_origins",
    "n_series",
    "resamples",
    "level",
    *SKILL_COLUMNS,
)


def pooled_skill_test(
    point: Mapping[int, Mapping[str, np.ndarray]],
    resampled: Mapping[int, Mapping[str, np.ndarray]],
    n_series: Mapping[int, int],
    models: Sequence[str],
    settings: BacktestSettings,
) -> pd.DataFrame:
    """The skill over all choosing origins together, with its bootstrap interval: the mean
    over the origins of each origin's RMSE (and MAE) skill, and the same mean in every
    resample, where each origin's series are resampled within that origin (a stratified,
    paired bootstrap: a model and persistence always see the same series). One row per model
    (:data:`SKILL_TEST_COLUMNS`).

    ``point``, ``resampled`` and ``n_series``: per choosing origin, the skills
    ``{"rmse": (n_models,), ...}``, the resampled skills ``{"rmse": (resamples, n_models),
    ...}`` of :func:`bootstrap_skill_resamples` and the number of series. Pooling the origins
    is what makes the test useful: one origin's interval is wide when a few huge series
    dominate its dollar RMSE, the mean over origins is tighter and asks the same question
    (does the model beat persistence on the years that choose?).
    """
    origins = sorted(point)
    rows = []
    for i, model in enumerate(models):
        row: dict[str, Any] = {
            "model": model,
            "choosing_origins": " ".join(map(str, origins)),
            "n_series": int(sum(n_series[o] for o in origins)),
            "resamples": settings.bootstrap_resamples,
            "level": settings.interval_level,
        }
        for metric in ("rmse", "mae"):
            pooled = np.mean([resampled[o][metric][:, i] for o in origins], axis=0)
            lower, upper = percentile_interval(pooled, settings.interval_level)
            row[f"skill_{metric}"] = float(np.mean([point[o][metric][i] for o in origins]))
            row[f"skill_{metric}_lower"] = float(lower)
            row[f"skill_{metric}_upper"] = float(upper)
        rows.append(row)
    return pd.DataFrame.from_records(rows, columns=list(SKILL_TEST_COLUMNS))


@dataclass(frozen=True)
class BacktestScores:
    """The backtest table (:data:`SCORE_COLUMNS`) and the skill gate's test over the choosing
    origins together (:data:`SKILL_TEST_COLUMNS`)."""

    table: pd.DataFrame
    skill_test: pd.DataFrame


def score_backtest(
    predictions: pd.DataFrame,
    training_years: Mapping[tuple[str, int], Sequence[int]],
    settings: BacktestSettings,
) -> BacktestScores:
    """The backtest table (columns :data:`SCORE_COLUMNS`): per origin, each model's RMSE, MAE,
    skill against persistence and the skill's bootstrap interval, then persistence itself as
    ``baseline`` (skill 0); sorted by origin, models in their order in ``predictions``. And
    the pooled skill test over the choosing origins (:func:`pooled_skill_test`), from the same
    resamples.

    ``predictions``: every model's out-of-sample predictions (:data:`PREDICTION_COLUMNS`);
    ``training_years``: ``(model, origin) -> the years it was refitted on``.
    """
    models = list(dict.fromkeys(predictions["model"]))
    rows = []
    point: dict[int, dict[str, np.ndarray]] = {}
    resampled: dict[int, dict[str, np.ndarray]] = {}
    n_series: dict[int, int] = {}
    for origin in sorted(predictions["origin"].unique()):
        first, predicted = _aligned(predictions.loc[predictions["origin"] == origin], models)
        actual = first["actual"].to_numpy(float)
        persistence = first["persistence"].to_numpy(float)
        errors = actual[:, None] - predicted
        persistence_errors = actual - persistence
        rmse = np.sqrt(np.mean(errors**2, axis=0))
        mae = np.mean(np.abs(errors), axis=0)
        persistence_rmse = float(np.sqrt(np.mean(persistence_errors**2)))
        persistence_mae = float(np.mean(np.abs(persistence_errors)))
        resamples = bootstrap_skill_resamples(errors, persistence_errors, settings, origin)
        intervals = {
            metric: percentile_interval(values, settings.interval_level)
            for metric, values in resamples.items()
        }
        if first["role"].iloc[0] == CHOOSING_ROLE:
            point[int(origin)] = {
                "rmse": skill(rmse, persistence_rmse),
                "mae": skill(mae, persistence_mae),
            }
            resampled[int(origin)] = resamples
            n_series[int(origin)] = len(first)
        common = {"origin": int(origin), "role": first["role"].iloc[0], "n_series": len(first)}
        common |= {"persistence_rmse": persistence_rmse, "persistence_mae": persistence_mae}
        for i, model in enumerate(models):
            years = training_years[(model, int(origin))]
            rows.append(
                {
                    **common,
                    "model": model,
                    "first_training_year": min(years),
                    "last_training_year": max(years),
                    "rmse": float(rmse[i]),
                    "mae": float(mae[i]),
                    "skill_rmse": float(skill(rmse[i], persistence_rmse)),
                    "skill_rmse_lower": float(intervals["rmse"][0, i]),
                    "skill_rmse_upper": float(intervals["rmse"][1, i]),
                    "skill_mae": float(skill(mae[i], persistence_mae)),
                    "skill_mae_lower": float(intervals["mae"][0, i]),
                    "skill_mae_upper": float(intervals["mae"][1, i]),
                }
            )
        rows.append(
            {
                **common,
                "model": BASELINE_NAME,
                # Persistence needs no fit: last year's value is all it uses.
                "first_training_year": int(origin) - 1,
                "last_training_year": int(origin) - 1,
                "rmse": persistence_rmse,
                "mae": persistence_mae,
                **dict.fromkeys(SKILL_COLUMNS, 0.0),
            }
        )
    return BacktestScores(
        pd.DataFrame.from_records(rows, columns=list(SCORE_COLUMNS)),
        pooled_skill_test(point, resampled, n_series, models, settings),
    )
