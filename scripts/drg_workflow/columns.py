"""Names of the lag and rolling-mean feature columns.

One place for them: the transformations that make the columns, the feature selection and the
persistence baseline that read them all ask here, so a configured rolling window (or lag list)
can never leave one of them looking for a column that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable


def lag_column(column: str) -> str:
    """The column holding ``column``'s value one period earlier: ``<column>_lag1``."""
    return f"{column}_lag1"


def rolling_column(column: str, window: int) -> str:
    """The column holding the mean of ``column`` over the ``window`` previous periods:
    ``<column>_rolling<window>``."""
    return f"{column}_rolling{window}"


def history_columns(target: str) -> dict[str, tuple[str, ...]]:
    """The columns ``series_history`` adds for ``target``, by feature group (the groups the
    ablation in docs/models-and-tuning.md leaves out one at a time):

    - ``lags``: ``<target>_lag2``, ``<target>_lag3``;
    - ``trend``: ``<target>_change_lag1`` (last year's signed-log change) and
      ``<target>_mean_change`` (the mean yearly change before the row's year);
    - ``volatility``: ``<target>_change_volatility`` (their standard deviation);
    - ``age``: ``<target>_years_before`` (earlier years with a value);
    - ``facility``: last year's ``facility_<target>_total_lag1``,
      ``facility_<target>_change_lag1`` (median over its DRGs) and ``facility_drgs_lag1``;
    - ``drg``: last year's ``drg_<target>_mean_lag1``, ``drg_<target>_change_lag1`` (median over
      its facilities) and ``drg_facilities_lag1``.
    """
    return {
        "lags": (f"{target}_lag2", f"{target}_lag3"),
        "trend": (f"{target}_change_lag1", f"{target}_mean_change"),
        "volatility": (f"{target}_change_volatility",),
        "age": (f"{target}_years_before",),
        "facility": (
            f"facility_{target}_total_lag1",
            f"facility_{target}_change_lag1",
            "facility_drgs_lag1",
        ),
        "drg": (f"drg_{target}_mean_lag1", f"drg_{target}_change_lag1", "drg_facilities_lag1"),
    }


def history_group_columns(target: str, groups: Iterable[str]) -> tuple[str, ...]:
    """The columns of ``series_history``'s feature ``groups`` (names of
    :func:`history_columns`) for ``target``, group by group.

    Raises:
        KeyError: a group that is not one of :func:`history_columns`' (the config's schema
            allows only those).
    """
    by_group = history_columns(target)
    return tuple(column for group in groups for column in by_group[group])
