"""The data contracts' settings: what each version's contract is, from the workflow config.

Only the standard library, so the Snakefile can use it at parse time without importing pandas.
The fields of a contract are declared and described once, as ``$defs/contract`` in
``workflow/schemas/config.schema.yaml``; each transformation's defaults are in its registry
entry (:mod:`drg_workflow.registry`), from which the schema's ``contracts.<transformation>``
entries are generated; the checks are in :mod:`drg_workflow.contracts`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from drg_workflow.errors import DrgWorkflowError
from drg_workflow.names import RAW_TRANSFORMATION

#: Contract keys holding column names (lists), in which ``{target}`` is replaced.
COLUMN_LIST_KEYS = ("keys", "required_columns", "not_null", "finite")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _resolve(name: str, target: str, where: str) -> str:
    for field in _PLACEHOLDER.findall(name):
        if field != "target":
            raise DrgWorkflowError(
                f"config key {where}: {name!r} may contain {{target}} and no other {{...}} field"
            )
    return name.replace("{target}", target)


def configured_contract(config: Mapping[str, Any], transformation: str) -> dict[str, Any]:
    """The contract of the versions ``transformation`` makes, from the (validated) config, with
    ``{target}`` replaced by the configured target (so a new target needs no contract edit)."""
    contract = copy.deepcopy(dict(config["contracts"].get(transformation, {})))
    target = config["target"]
    where = f"contracts.{transformation}"
    for key in COLUMN_LIST_KEYS:
        contract[key] = [_resolve(c, target, f"{where}.{key}") for c in contract.get(key, [])]
    contract["ranges"] = {
        _resolve(c, target, f"{where}.ranges"): bounds
        for c, bounds in contract.get("ranges", {}).items()
    }
    contract["sums_to_one"] = [
        [_resolve(c, target, f"{where}.sums_to_one") for c in group]
        for group in contract.get("sums_to_one", [])
    ]
    return contract


def check_contracts(
    config: Mapping[str, Any], raw_transformation: str = RAW_TRANSFORMATION
) -> None:
    """What the schema cannot say about ``contracts``: bounds in order, only ``{target}`` as a
    placeholder, keys for unique_keys, and no row-count rule against an input for the raw
    version (it has none)."""
    for transformation, contract in config["contracts"].items():
        where = f"config key contracts.{transformation}"
        configured_contract(config, transformation)  # placeholders
        for column, bounds in contract["ranges"].items():
            if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
                raise DrgWorkflowError(
                    f"{where}.ranges.{column}: min ({bounds['min']}) is above max ({bounds['max']})"
                )
        if contract["unique_keys"] and not contract["keys"]:
            raise DrgWorkflowError(f"{where}.unique_keys: true needs keys to be unique")
        low, high = contract["min_rows"], contract["max_rows"]
        if low is not None and high is not None and low > high:
            raise DrgWorkflowError(f"{where}: min_rows ({low}) is above max_rows ({high})")
        if transformation == raw_transformation and contract["rows_vs_input"] != "any":
            raise DrgWorkflowError(
                f"{where}.rows_vs_input: {contract['rows_vs_input']!r} is not allowed for "
                f"{raw_transformation} (v0 has no input version); allowed: any"
            )
