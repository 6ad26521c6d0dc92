"""The version chain's settings: what each transformation gets from the workflow config.

Only the standard library, so the Snakefile can use it at parse time without importing pandas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def configured_parameters(config: Mapping[str, Any], transformation: str) -> dict[str, Any]:
    """The keyword parameters ``transformation`` gets from the (validated) workflow config:
    its own ``transformations.<name>`` settings, and for the lag steps the lag list, lag mode,
    rolling window and target of ``lags`` and ``target``."""
    lags = config["lags"]
    lag_parameters = {
        "lag_columns": {"columns": lags["columns"], "by": lags["by"]},
        "rolling_columns": {
            "columns": lags["columns"],
            "window": lags["rolling_window"],
            "by": lags["by"],
        },
        "drop_non_lag_columns": {"columns": lags["columns"], "keep": [config["target"]]},
    }
    return {
        **config["transformations"].get(transformation, {}),
        **lag_parameters.get(transformation, {}),
    }
