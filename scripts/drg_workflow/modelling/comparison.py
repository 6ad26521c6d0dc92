"""Comparison table of the tuned models against the naive persistence baseline, the skill gate
and the champion.

The **skill gate** (stated by :func:`gate_test`): a model is a candidate for the champion only if

1. on each backtest origin that chooses (the validation years) it beats persistence in MAE
   (point estimate) and is not significantly worse in RMSE (the upper end of the origin's
   ``interval_level`` bootstrap interval of the RMSE skill is above 0), and
2. over the choosing origins together, its mean RMSE skill and its mean MAE skill are above 0
   at the stated level: the lower end of each one's two-sided ``interval_level`` bootstrap
   interval (series resampled within each origin, paired with persistence;
   :func:`.backtest.pooled_skill_test`) is above 0, a one-sided test at
   ``(1 - interval_level) / 2``.

RMSE and MAE are treated differently on one origin because a dollar RMSE of one year is often
one or two series' verdict (on generated data, one series made 36% to 90% of persistence's
squared error in a year, and no model foresaw its jump at any bound), so its point estimate
sits at 0 plus or minus a coin toss for a model that wins everywhere else; the MAE of a year
is not ruled so, and its point estimate must show the win. Over the choosing origins pooled,
both must be clearly above 0.

The **champion** is the candidate with the best mean RMSE skill over the choosing origins (then
the best MAE skill); without a candidate, the forecast falls back to persistence. Origins in
the test years only report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from drg_workflow.names import CHOOSING_ROLE, SKILL_COLUMNS

from .baseline import BASELINE_NAME

#: The figures of a comparison row: cross-validation, validation and test metrics.
METRIC_COLUMNS: tuple[str, ...] = (
    "cv_rmse",
    "cv_mae",
    "val_rmse",
    "val_mae",
    "val_r2",
    "test_rmse",
    "test_mae",
    "test_r2",
)
#: The backtest's part of a comparison row (:func:`backtest_summary`).
BACKTEST_COLUMNS: tuple[str, ...] = (
    "choosing_origins",
    *SKILL_COLUMNS,
    "skill_rmse_by_origin",
    "skill_mae_by_origin",
)
COMPARISON_COLUMNS: tuple[str, ...] = (
    "model",
    *METRIC_COLUMNS,
    "n_trials_complete",
    "n_trials_pruned",
    "best_params",
    *BACKTEST_COLUMNS,
    "gate_test",
    "passes_gate",
    "champion",
    "warning",
)
#: What each model's metrics document must hold.
_REQUIRED = ("model", *METRIC_COLUMNS, "n_trials_complete", "n_trials_pruned", "best_params")
#: The baseline row's warning when no model passes the gate (the forecast then uses persistence).
NO_CHAMPION_WARNING = (
    "no model passes the skill gate (beat the naive persistence baseline in MAE on every "
    "choosing origin without being significantly worse in RMSE on any, and in mean RMSE and "
    "MAE skill over them at the test's level): "
    "the forecast uses persistence (last year's value) instead of a model"
)


def gate_test(skill_test: pd.DataFrame) -> str:
    """The gate's statement as the comparison table and the model card print it, with the
    test's level and resamples (from the skill test table, :data:`.backtest.SKILL_TEST_COLUMNS`).
    """
    first = skill_test.iloc[0]
    level = float(first["level"])
    return (
        "MAE below persistence's on every choosing origin, and RMSE not significantly above "
        f"it on any (the upper end of the origin's {level:.0%} interval of the RMSE skill above "
        f"0); mean RMSE and MAE skill over them above 0 (paired bootstrap of "
        f"{int(first['resamples'])} resamples of the series within each origin, pooled: "
        f"one-sided test at {(1 - level) / 2:.3g}, the lower end of the {level:.0%} interval "
        "above 0)"
    )


def gate_failures(backtest: pd.DataFrame, skill_test: pd.DataFrame, model: str) -> list[str]:
    """Why ``model`` fails the skill gate (see the module's docstring) on the choosing origins
    of the backtest table (:data:`.backtest.SCORE_COLUMNS`) and the pooled skill test
    (:data:`.backtest.SKILL_TEST_COLUMNS`): one reason per broken condition, empty if it
    passes.

    Raises:
        ValueError: the table has no choosing origin for ``model``, or the test no row.
    """
    rows = backtest.loc[(backtest["model"] == model) & (backtest["role"] == CHOOSING_ROLE)]
    tested = skill_test.loc[skill_test["model"] == model]
    if rows.empty or tested.empty:
        raise ValueError(f"the backtest has no choosing origin for model {model!r}")
    failures = []
    test = tested.iloc[0]
    for row in rows.sort_values("origin").itertuples(index=False):
        if not row.skill_rmse_upper > 0:
            failures.append(
                f"{row.origin}: RMSE {row.rmse:,.0f} significantly above persistence's "
                f"{row.persistence_rmse:,.0f} (RMSE skill {row.skill_rmse:+.3f}, its "
                f"{test['level']:.0%} interval [{row.skill_rmse_lower:+.3f}, "
                f"{row.skill_rmse_upper:+.3f}] is below 0)"
            )
        if not row.mae < row.persistence_mae:
            failures.append(
                f"{row.origin}: MAE {row.mae:,.0f} not below persistence's "
                f"{row.persistence_mae:,.0f}"
            )
    for metric in ("rmse", "mae"):
        lower, upper = test[f"skill_{metric}_lower"], test[f"skill_{metric}_upper"]
        if not lower > 0:
            failures.append(
                f"mean {metric.upper()} skill {test[f'skill_{metric}']:+.3f} over "
                f"{', '.join(str(test['choosing_origins']).split())}: its {test['level']:.0%} "
                f"interval [{lower:+.3f}, {upper:+.3f}] is not above 0"
            )
    return failures


def backtest_summary(
    backtest: pd.DataFrame, skill_test: pd.DataFrame, model: str
) -> dict[str, Any]:
    """A model's (or the baseline's) backtest columns of the comparison
    (:data:`BACKTEST_COLUMNS`): the choosing origins, the mean RMSE and MAE skill over them
    with the pooled test's interval (0 for the baseline), and the skills on every origin as
    JSON objects ``{"<origin>": skill}``."""
    rows = backtest.loc[backtest["model"] == model].sort_values("origin")
    choosing = rows.loc[rows["role"] == CHOOSING_ROLE]
    tested = skill_test.loc[skill_test["model"] == model]
    interval = {
        f"skill_{metric}_{end}": float(tested[f"skill_{metric}_{end}"].iloc[0])
        if len(tested)
        else 0.0
        for metric in ("rmse", "mae")
        for end in ("lower", "upper")
    }
    return {
        "choosing_origins": " ".join(str(int(origin)) for origin in choosing["origin"]),
        "skill_rmse": float(choosing["skill_rmse"].mean()),
        "skill_mae": float(choosing["skill_mae"].mean()),
        **interval,
        **{
            f"skill_{metric}_by_origin": json.dumps(
                {
                    str(int(origin)): round(float(value), 4)
                    for origin, value in zip(rows["origin"], rows[f"skill_{metric}"], strict=True)
                }
            )
            for metric in ("rmse", "mae")
        },
    }


def build_comparison(
    rows: Sequence[Mapping[str, Any]], backtest: pd.DataFrame, skill_test: pd.DataFrame
) -> pd.DataFrame:
    """One row per model plus ``baseline``, the champion first, then by mean RMSE skill on the
    choosing origins (the baseline's is 0).

    ``rows``: every model's and the baseline's metrics document (the columns of
    ``_REQUIRED``); ``backtest``: the backtest table; ``skill_test``: the pooled skill test
    over the choosing origins. Computed here: the backtest columns (:func:`backtest_summary`);
    ``gate_test`` (:func:`gate_test`, the same on every row); ``passes_gate``
    (:func:`gate_failures` finds nothing; ``<NA>``
    for the baseline, nullable boolean dtype); ``champion``, true on the row whose model the
    forecast uses: the model passing the gate with the best mean RMSE skill (then MAE skill) on
    the choosing origins, else the baseline itself; ``warning``: why a model fails the gate
    (and :data:`NO_CHAMPION_WARNING` on the baseline row when none passes), empty otherwise.
    ``best_params`` may be a dict; it becomes a JSON string with sorted keys.

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
        record.update(backtest_summary(backtest, skill_test, record["model"]))
        failures = (
            []
            if record["model"] == BASELINE_NAME
            else gate_failures(backtest, skill_test, record["model"])
        )
        record["passes_gate"] = pd.NA if record["model"] == BASELINE_NAME else not failures
        record["warning"] = _warning(record, failures)
        records.append(record)
    df = pd.DataFrame.from_records(records, columns=[*_REQUIRED, *BACKTEST_COLUMNS])
    df["passes_gate"] = pd.array([r["passes_gate"] for r in records], dtype="boolean")
    candidates = df.loc[df["passes_gate"].fillna(False).astype(bool)]
    champion = (
        candidates.sort_values(["skill_rmse", "skill_mae"], ascending=False, kind="stable")[
            "model"
        ].iloc[0]
        if len(candidates)
        else BASELINE_NAME
    )
    df["champion"] = df["model"] == champion
    df["gate_test"] = gate_test(skill_test)
    df["warning"] = [r["warning"] for r in records]
    if champion == BASELINE_NAME:
        df.loc[df["model"] == BASELINE_NAME, "warning"] = NO_CHAMPION_WARNING
    order = df.assign(_first=~df["champion"]).sort_values(
        ["_first", "skill_rmse"], ascending=[True, False], kind="stable"
    )
    return order.drop(columns="_first").reset_index(drop=True)[list(COMPARISON_COLUMNS)]


def champion_model(comparison: pd.DataFrame) -> str | None:
    """The champion of :func:`build_comparison`'s table, or ``None`` when no model passes the
    gate (the forecast then uses persistence)."""
    champion = str(comparison.loc[comparison["champion"].astype(bool), "model"].iloc[0])
    return None if champion == BASELINE_NAME else champion


def _warning(record: Mapping[str, Any], failures: Sequence[str]) -> str:
    """The warning text of a model row that fails the gate, else ``""``."""
    if not failures:
        return ""
    origins = ", ".join(record["choosing_origins"].split())
    return (
        f"model {record['model']!r} fails the skill gate on the choosing origins ({origins}): "
        f"{'; '.join(failures)}; it cannot be the champion"
    )


def comparison_warnings(comparison: pd.DataFrame) -> list[str]:
    """The table's warnings: one per model that fails the skill gate, and
    :data:`NO_CHAMPION_WARNING` when none passes."""
    return [text for text in comparison["warning"].astype("string").fillna("") if text]
