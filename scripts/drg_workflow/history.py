"""Each (facility, DRG) series' history before the year of a row, as features of that row.

A global model that sees only last year's values (``<col>_lag1``) and a two-year mean cannot
tell a steady series from a volatile one, a new series from an old one, or a facility that is
growing from one that is shrinking. :func:`series_history_features` adds, for the target:

- ``lags``: its values two and three periods back (``<target>_lag2``, ``<target>_lag3``);
- ``trend``: last year's change and the mean yearly change before the row's year, in signed
  logs (:mod:`drg_workflow.signed_log`: profits can be zero or negative);
- ``volatility``: the standard deviation of those yearly changes;
- ``age``: how many earlier years the series has a value in;
- ``facility`` and ``drg``: last year's facility total and median change over its DRGs, and
  last year's DRG mean and median change over its facilities, with how many there were.

Every feature of a row of year t is computed from values of years before t only: from the
series' *history*, its target values per year, each year taken from that year's own row or,
with ``lags.by: year``, from the next year's ``<target>_lag1`` (so a series' first year,
which ``rolling_columns`` drops, still counts for its own features). The facility and DRG
figures of a year count only that year's own rows: a value known from the next year's lag
would tell which series exist in the row's own year. The placeholder rows of the forecast
year, whose target is unknown, get their features from the years before it like any other
row. With ``lags.by: row`` the history is the version's own rows, and a lag is the previous
row's, whatever its year.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from drg_workflow.columns import history_columns, lag_column
from drg_workflow.names import SERIES_KEYS
from drg_workflow.series import group_ids, group_starts, shifted_within
from drg_workflow.signed_log import signed_log

#: Periods back of the lags :func:`series_history_features` adds (lag 1 is ``lag_columns``').
EXTRA_LAGS: tuple[int, ...] = (2, 3)


def target_history(frame: pd.DataFrame, target: str, by: str) -> pd.DataFrame:
    """Every known (facility_id, apr_drg_code, year, value) of ``target``, sorted by series and
    year: the rows' own values (``own``) and, with ``by == "year"``, each ``<target>_lag1`` as
    the value of the year before its row (where that year has no row of its own)."""
    keys = [*SERIES_KEYS, "year"]
    own = frame.loc[frame[target].notna(), [*keys, target]].set_axis([*keys, "value"], axis=1)
    parts = [own.assign(own=True)]
    if by == "year":
        lag = lag_column(target)
        previous = frame.loc[frame[lag].notna(), [*keys, lag]].set_axis([*keys, "value"], axis=1)
        previous["year"] = previous["year"] - 1
        parts.append(previous.assign(own=False))
    history = pd.concat(parts, ignore_index=True).drop_duplicates(keys, keep="first")
    return history.sort_values(keys, kind="stable", ignore_index=True)


def _shift_within(values: np.ndarray, series_id: np.ndarray, steps: int) -> np.ndarray:
    """``values`` shifted down ``steps`` entries within each series (NaN across a start)."""
    if steps == 0:
        return np.asarray(values, dtype=np.float64).copy()
    shifted, valid = shifted_within(np.asarray(values, dtype=np.float64), series_id, steps)
    return np.where(valid, shifted, np.nan)


def history_statistics(history: pd.DataFrame, by: str) -> pd.DataFrame:
    """``history`` with, per entry, what is known of its series up to and including its year:
    the yearly signed-log ``change`` into it (from the year before with ``by == "year"``, from
    the previous entry with ``"row"``), the number of entries ``n_years``, the mean and the
    standard deviation of the changes so far, and its own and the two previous entries' years
    and values (``year_0``/``value_0`` .. ``year_2``/``value_2``), which survive an as-of join
    on the year."""
    series = group_ids(group_starts([history[k].to_numpy() for k in SERIES_KEYS]), len(history))
    years = history["year"].to_numpy(dtype=np.float64)
    logged = signed_log(history["value"])
    change = logged - _shift_within(logged, series, 1)
    if by == "year":
        change[years - _shift_within(years, series, 1) != 1] = np.nan
    has_change = ~np.isnan(change)
    grouped = pd.DataFrame(
        {"n": has_change, "sum": np.where(has_change, change, 0.0), "series": series}
    )
    grouped["squares"] = grouped["sum"] ** 2
    running = grouped.groupby("series", sort=False)[["n", "sum", "squares"]].cumsum()
    n_changes = running["n"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = running["sum"].to_numpy() / n_changes
        variance = running["squares"].to_numpy() / n_changes - mean**2
    statistics = history.assign(
        change=change,
        n_years=grouped.groupby("series", sort=False).cumcount().to_numpy() + 1,
        mean_change=np.where(n_changes >= 1, mean, np.nan),
        change_volatility=np.where(n_changes >= 2, np.sqrt(np.clip(variance, 0.0, None)), np.nan),
    )
    for back in (0, 1, 2):
        statistics[f"year_{back}"] = _shift_within(years, series, back)
        statistics[f"value_{back}"] = _shift_within(history["value"].to_numpy(), series, back)
    return statistics


def _group_statistics(history: pd.DataFrame, key: str, level: str) -> pd.DataFrame:
    """Per (``key``, year) of ``history`` (with its ``change``): the ``level`` (``"sum"`` or
    ``"mean"``) of the values, the median change and the number of series, over the year's own
    rows only: a value known only from the next year's lag would say which series exist in the
    next year."""
    grouped = history.loc[history["own"]].groupby([key, "year"], sort=True)
    return pd.DataFrame(
        {
            "level": grouped["value"].agg(level),
            "median_change": grouped["change"].median(),
            "series": grouped["value"].size().astype(np.float64),
        }
    ).reset_index()


def series_history_features(frame: pd.DataFrame, target: str, by: str) -> pd.DataFrame:
    """``frame`` (one row per facility, DRG and year, with ``target`` and its ``_lag1``) with
    the history features of :func:`drg_workflow.columns.history_columns` added; rows and their
    order unchanged. ``by``: ``"year"`` (calendar years, as ``lags.by``) or ``"row"``."""
    names = history_columns(target)
    history = history_statistics(target_history(frame, target, by), by)
    keys = [*SERIES_KEYS, "year"]
    rows = frame[keys].assign(position=np.arange(len(frame))).sort_values("year", kind="stable")
    # The last history entry of the series before the row's year: what was known then.
    known = pd.merge_asof(
        rows,
        history.sort_values("year", kind="stable"),
        on="year",
        by=SERIES_KEYS,
        allow_exact_matches=False,
    ).sort_values("position", kind="stable", ignore_index=True)
    year = known["year"].to_numpy(dtype=np.float64)
    # The last three history entries before the row's year, latest first: (year, value).
    entries = [
        (known[f"year_{back}"].to_numpy(np.float64), known[f"value_{back}"].to_numpy(np.float64))
        for back in (0, 1, 2)
    ]
    added: dict[str, np.ndarray] = {}
    for periods, name in zip(EXTRA_LAGS, names["lags"], strict=True):
        if by == "year":
            value = np.full(len(known), np.nan)
            for entry_year, entry_value in entries[:periods]:
                value = np.where(entry_year == year - periods, entry_value, value)
        else:
            value = entries[periods - 1][1]
        added[name] = value
    last_is_last_year = (entries[0][0] == year - 1) | (by == "row")
    change_name, mean_name = names["trend"]
    added[change_name] = np.where(last_is_last_year, known["change"], np.nan)
    added[mean_name] = known["mean_change"].to_numpy()
    added[names["volatility"][0]] = known["change_volatility"].to_numpy()
    added[names["age"][0]] = known["n_years"].fillna(0).to_numpy(dtype=np.float64)
    for key, group_names in (("facility_id", names["facility"]), ("apr_drg_code", names["drg"])):
        added.update(_last_year_group_features(frame, history, key, group_names))
    return pd.concat([frame, pd.DataFrame(added, index=frame.index)], axis=1)


def _last_year_group_features(
    frame: pd.DataFrame, history: pd.DataFrame, key: str, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """The group's (facility's or DRG's) figures of the year before each row's year."""
    # A facility's total over its DRGs; a DRG's mean over its facilities.
    statistics = _group_statistics(history, key, "sum" if key == "facility_id" else "mean")
    statistics["year"] = statistics["year"] + 1
    columns = ["level", "median_change", "series"]
    joined = frame[[key, "year"]].merge(statistics, on=[key, "year"], how="left", sort=False)
    return {name: joined[column].to_numpy() for name, column in zip(names, columns, strict=True)}
