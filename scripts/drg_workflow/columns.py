"""Names of the lag and rolling-mean feature columns.

One place for them: the transformations that make the columns, the feature selection and the
persistence baseline that read them all ask here, so a configured rolling window (or lag list)
can never leave one of them looking for a column that does not exist.
"""

from __future__ import annotations


def lag_column(column: str) -> str:
    """The column holding ``column``'s value one period earlier: ``<column>_lag1``."""
    return f"{column}_lag1"


def rolling_column(column: str, window: int) -> str:
    """The column holding the mean of ``column`` over the ``window`` previous periods:
    ``<column>_rolling<window>``."""
    return f"{column}_rolling{window}"
