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


def forecast_chain(config: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Where the forecast's next-year features come from: the version ``lag_columns`` takes
    its lags from (the base), and the chain's steps from ``lag_columns`` to
    ``modelling.data_version`` as ``[{version, transformation, parameters}]``, in order.

    Raises:
        ValueError: the modelling data version is not made through ``lag_columns``.
    """
    by_version = {step["version"]: step for step in config["chain"]}
    path: list[dict[str, Any]] = []
    version = config["modelling"]["data_version"]
    while version in by_version:
        step = by_version[version]
        path.insert(0, step)
        if step["transformation"] == "lag_columns":
            steps = [
                {
                    "version": s["version"],
                    "transformation": s["transformation"],
                    "parameters": configured_parameters(config, s["transformation"]),
                }
                for s in path
            ]
            return step["input"], steps
        version = step["input"]
    raise ValueError(
        f"modelling.data_version {config['modelling']['data_version']!r} is not made through "
        "lag_columns: the forecast needs the chain's lags to build next year's features"
    )
