"""The version chain's settings: what each transformation gets from the workflow config.

Which parameters a transformation takes, and where each comes from, is declared in its registry
entry (:mod:`drg_workflow.registry`). Reading the registry imports the transformations, and so
pandas; the Snakefile still calls this at parse time because Snakemake has imported pandas
itself by then, so the transformations module adds almost nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drg_workflow.registry import Parameter
from drg_workflow.transformations import registered_transformation


def configured_parameters(config: Mapping[str, Any], transformation: str) -> dict[str, Any]:
    """The keyword parameters ``transformation`` gets from the (validated) workflow config, in
    the order of its function: each setting of its own from ``transformations.<name>``, each
    shared one (e.g. the lag list, ``lags.columns``) from its config key.

    Raises:
        KeyError: No transformation is registered as ``transformation``.
    """
    own_settings = config["transformations"].get(transformation, {})
    return {
        name: own_settings[name] if isinstance(source, Parameter) else source.value_in(config)
        for name, source in registered_transformation(transformation).parameters.items()
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


def arrow_copy_versions(config: Mapping[str, Any]) -> set[str]:
    """The versions that get an Arrow copy: those read by more than the one chain step made
    from them, i.e. the modelling data version (tuning, final fits, baseline, report,
    forecast), the forecast's base version and names version, and any version that more than
    one chain step is made from.

    Every other version is read once, by the next step, which takes the table from memory when
    it runs in the same process right after (as the chain's steps do in Snakemake's process)
    and parses the CSV otherwise (:func:`drg_workflow.handoff.read_version_data`): copies of
    versions nobody reads again would cost their writing and their disk (docs/performance.md).
    """
    made_from: dict[str, int] = {}
    for step in config["chain"]:
        made_from[step["input"]] = made_from.get(step["input"], 0) + 1
    kept = {version for version, steps in made_from.items() if steps > 1}
    kept.add(config["modelling"]["data_version"])
    kept.add(config["forecast"]["names"]["version"])
    try:
        kept.add(forecast_chain(config)[0])
    except ValueError:
        pass  # no lags in the chain: there is no forecast to read a base version
    return kept
