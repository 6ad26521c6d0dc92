"""Comparison table of the tuned models against the naive persistence baseline."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .baseline import BASELINE_NAME

#: The figures of a comparison row: CV, validation and test metrics.
METRIC_COLUMNS: tuple[str, ...] = (
    "cv_rmse",
    "val_rmse",
    "val_mae",
    "val_r2",
    "test_rmse",
    "test_mae",
    "test_r2",
)
COMPARISON_COLUMNS: tuple[str, ...] = (
    "model",
    *METRIC_COLUMNS,
    "n_trials_complete",
    "n_trials_pruned",
    "best_params",
    "beats_baseline",
    "champion",
    "warning",
)
_REQUIRED = COMPARISON_COLUMNS[:-3]
#: The baseline row's warning when no model beats it (the forecast then uses persistence).
NO_CHAMPION_WARNING = (
    "no model beats the naive persistence baseline on validation RMSE: the forecast uses "
    "persistence (last year's value) instead of a model"
)


def build_comparison(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per model plus ``baseline``, sorted by validation RMSE.

    Each row needs every column of ``COMPARISON_COLUMNS`` except ``beats_baseline``,
    ``champion`` and ``warning``, which are computed here: ``beats_baseline`` is ``val_rmse <
    baseline's val_rmse`` (validation, the split used to choose, not test), ``<NA>`` for the
    baseline row (nullable boolean dtype); ``champion`` is true on the row whose model the
    forecast uses: the model with the lowest validation RMSE among those that beat the baseline,
    else the baseline itself; ``warning`` is the text of :func:`comparison_warnings` for a model
    that does not beat the baseline (and :data:`NO_CHAMPION_WARNING` on the baseline row when no
    model does), empty otherwise. ``best_params`` may be a dict; it becomes a JSON
    string with sorted keys.

    Raises:
        ValueError: no baseline row, duplicate model names or missing columns.
    """
    names = [r.get("model") for r in rows]
    if BASELINE_NAME not in names:
        raise ValueError(f"comparison needs a {BASELINE_NAME!r} row; got models {names}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate models in comparison: {duplicates}")
    records = []
    for row in rows:
        missing = [c for c in _REQUIRED if c not in row]
        if missing:
            raise ValueError(f"comparison row {row.get('model')!r} lacks {missing}")
        record = {c: row[c] for c in _REQUIRED}
        params = record["best_params"]
        if not isinstance(params, str):
            record["best_params"] = json.dumps(params or {}, sort_keys=True, default=str)
        records.append(record)
    df = pd.DataFrame.from_records(records, columns=list(_REQUIRED))
    baseline_val = float(df.loc[df["model"] == BASELINE_NAME, "val_rmse"].iloc[0])
    beats = (df["val_rmse"] < baseline_val).astype("boolean")
    beats[df["model"] == BASELINE_NAME] = pd.NA
    df["beats_baseline"] = beats
    winners = df.loc[beats.fillna(False).astype(bool)]
    champion = (
        winners.sort_values("val_rmse", kind="stable")["model"].iloc[0]
        if len(winners)
        else BASELINE_NAME
    )
    df["champion"] = df["model"] == champion
    df["warning"] = [_warning(row, baseline_val) for _, row in df.iterrows()]
    if champion == BASELINE_NAME:
        df.loc[df["model"] == BASELINE_NAME, "warning"] = NO_CHAMPION_WARNING
    return df.sort_values("val_rmse", kind="stable", ignore_index=True)


def champion_model(comparison: pd.DataFrame) -> str | None:
    """The champion of :func:`build_comparison`'s table, or ``None`` when no model beats the
    baseline (the forecast then uses persistence)."""
    champion = str(comparison.loc[comparison["champion"].astype(bool), "model"].iloc[0])
    return None if champion == BASELINE_NAME else champion


def _warning(row: pd.Series, baseline_val_rmse: float) -> str:
    """The warning text of a model row that does not beat the baseline, else ``""``."""
    if row["model"] == BASELINE_NAME or bool(row["beats_baseline"]):
        return ""
    ratio = row["val_rmse"] / baseline_val_rmse if baseline_val_rmse else math.inf
    return (
        f"model {row['model']!r} does not beat the naive persistence baseline on validation: "
        f"RMSE {row['val_rmse']:,.2f} vs baseline {baseline_val_rmse:,.2f} "
        f"({ratio:.2f}x); its tuning or features need attention"
    )


def comparison_warnings(comparison: pd.DataFrame) -> list[str]:
    """The table's warnings: one per model that does not beat the baseline on validation RMSE,
    and :data:`NO_CHAMPION_WARNING` when none does."""
    return [text for text in comparison["warning"].astype("string").fillna("") if text]
