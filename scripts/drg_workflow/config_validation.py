"""Validate the workflow configuration against its JSON Schema, filling in defaults.

Snakemake's own ``validate`` prints the whole schema on an error; users need the key that is
wrong and what is allowed, in one message, before any job runs. That is what this does.

The schema validated against is built by :func:`config_schema`: the written schema
(``workflow/schemas/config.schema.yaml``) completed with what the transformation registry
(:mod:`drg_workflow.registry`) declares, so a new transformation needs no schema edit.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
from jsonschema import validators

from drg_workflow.contract_settings import check_contracts
from drg_workflow.errors import DrgWorkflowError
from drg_workflow.names import RAW_VERSION, SPLIT_NAMES
from drg_workflow.transformations import default_contracts, registered_transformations
from drg_workflow.urls import credentials_error


class ConfigError(DrgWorkflowError):
    """The configuration is invalid; the message names every offending key."""


def _with_defaults(validator_class: type) -> type:
    """A validator class that fills in ``default`` values of missing properties as it goes.

    The pattern from the jsonschema FAQ; nested objects get their defaults because every object
    property in our schema has ``default: {}`` itself.
    """
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    # Copy so that filling one config never mutates the schema's defaults.
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def _generated_places(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The subschemas of ``schema`` that :func:`config_schema` completes, by config key."""
    properties = schema["properties"]
    return {
        "chain[].transformation": properties["chain"]["items"]["properties"]["transformation"],
        "transformations": properties["transformations"],
        "contracts": properties["contracts"],
    }


def config_schema(written_schema: Mapping[str, Any]) -> dict[str, Any]:
    """The config's full JSON Schema: ``written_schema`` (the YAML file) completed from the
    transformation registry.

    Generated: the enum of ``chain[].transformation`` (every registered name), each
    ``transformations.<name>`` object of a transformation with settings of its own (their
    schema, default and description), and each ``contracts.<name>`` entry (v0's and every
    transformation's): its description, and its default fields ahead of a ``$ref`` to the generic
    ``$defs/contract``. ``written_schema`` is not changed.

    Raises:
        ValueError: ``written_schema`` already holds one of these: each has one home, the
            registry.
    """
    schema = copy.deepcopy(dict(written_schema))
    places = _generated_places(schema)
    for key, place in places.items():
        written = sorted({"enum", "properties"} & set(place))
        if written:
            raise ValueError(
                f"the config schema writes {key}'s {', '.join(written)}; it is generated from "
                "the transformation registry (drg_workflow.registry): remove it from the schema"
            )
    registry = registered_transformations()
    places["chain[].transformation"]["enum"] = list(registry)
    places["transformations"]["properties"] = {
        name: {
            "type": "object",
            "description": f"Parameters of {name}.",
            "additionalProperties": False,
            "default": {},
            "properties": {
                parameter: setting.config_schema() for parameter, setting in entry.settings.items()
            },
        }
        for name, entry in registry.items()
        if entry.settings
    }
    places["contracts"]["properties"] = {
        name: {
            "description": f"Contract of the versions made by {name}: {description}",
            "default": {},
            # Before the $ref: jsonschema applies a schema's keywords in order, so this entry's
            # own defaults are filled in before the generic contract's.
            "properties": {field: {"default": value} for field, value in contract.items()},
            "$ref": "#/$defs/contract",
        }
        for name, (description, contract) in default_contracts().items()
    }
    # Deep copies: the schema's defaults must not share lists with the registry's entries.
    return copy.deepcopy(schema)


def key_path(path: Iterable[Any]) -> str:
    """``["raw", "synthetic", "seed"]`` -> ``raw.synthetic.seed``; list indices as ``[i]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def describe_error(error: jsonschema.ValidationError) -> str:
    """One line naming the key, the offending value and what is allowed."""
    where = key_path(error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return (
            f"config key {where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(allowed)}"
        )
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"config key {where}: {error.instance!r} is not allowed; allowed: {allowed}"
    description = schema.get("description")
    hint = f" ({' '.join(description.split())})" if description else ""
    return f"config key {where}: {error.message}{hint}"


def validate_config(config: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Fill in defaults in ``config`` (in place) and validate it; return it.

    ``schema`` is the written schema (``workflow/schemas/config.schema.yaml``), completed here
    by :func:`config_schema`. Raises :class:`ConfigError` listing every problem, one line
    each, each naming its key.
    """
    schema = config_schema(schema)
    validator_class = _with_defaults(validators.validator_for(schema))
    validator = validator_class(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [describe_error(e) for e in errors]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    check_chain_versions(config)
    check_year_ranges(config)
    check_credentials(config)
    check_modelling(config)
    try:
        check_contracts(config)
    except DrgWorkflowError as error:
        raise ConfigError(str(error)) from None
    return config


def check_chain_versions(config: Mapping[str, Any], raw_version: str = RAW_VERSION) -> None:
    """Every chain step makes a new version from v0 or an earlier version of the chain."""
    seen = [raw_version]
    for position, step in enumerate(config["chain"]):
        where = f"config key chain[{position}] (version {step['version']})"
        if step["version"] in seen:
            raise ConfigError(f"{where}: version {step['version']} is defined twice")
        if step["input"] not in seen:
            raise ConfigError(
                f"{where}: input {step['input']} is neither {raw_version} nor an earlier "
                f"version of the chain ({', '.join(seen)})"
            )
        seen.append(step["version"])


def check_year_ranges(config: Mapping[str, Any]) -> None:
    """The raw settings' year ranges run forwards: the generated years and the plausible ones
    (the modelling split's are checked by :func:`check_modelling`)."""
    synthetic = config["raw"]["synthetic"]
    if synthetic["first_year"] > synthetic["last_year"]:
        raise ConfigError(
            f"config key raw.synthetic: first_year ({synthetic['first_year']}) is after "
            f"last_year ({synthetic['last_year']})"
        )
    first, last = config["raw"]["plausible_years"]
    if first > last:
        raise ConfigError(f"config key raw.plausible_years: {first} is after {last}")


#: Settings that may hold a URL with credentials: each refuses a password (check_credentials).
URL_KEYS: tuple[tuple[str, ...], ...] = (
    ("modelling", "tuning", "storage"),
    ("modelling", "mlflow", "tracking_uri"),
)


def check_credentials(config: Mapping[str, Any]) -> None:
    """No ``user:password@`` in the storage and tracking URLs: they are rule params, which
    Snakemake records in ``.snakemake/metadata`` and the report (``raw.url`` is refused by its
    schema pattern). One message says how to pass the password instead; it never repeats it."""
    for path in URL_KEYS:
        value: Any = config
        for key in path:
            value = value[key]
        message = credentials_error(f"config key {'.'.join(path)}", value) if value else None
        if message:
            raise ConfigError(message)


def check_split_form(split: Mapping[str, Any]) -> bool:
    """``modelling.split`` is either relative (``validation`` and ``test`` numbers of years,
    ``train`` null) or explicit (``train``, ``validation`` and ``test`` year ranges), never a
    mix; returns whether it is explicit.

    Raises:
        ConfigError: naming the keys of each form.
    """
    ranges = [name for name in SPLIT_NAMES if isinstance(split[name], list)]
    if not ranges and split["train"] is None:
        return False
    if len(ranges) == len(SPLIT_NAMES):
        return True
    given = ", ".join(f"{name}: {split[name]}" for name in SPLIT_NAMES)
    raise ConfigError(
        f"config key modelling.split: {given} mixes two forms; give validation and test as "
        "numbers of years with train: null (relative to the data's years), or train, "
        "validation and test as [first, last] year ranges (explicit)"
    )


def check_explicit_split(split: Mapping[str, Any], cv_folds: int) -> None:
    """An explicit ``modelling.split``: each range runs forwards, the splits are in time order,
    and train has at least ``cv_folds + 1`` years (each fold trains on earlier years)."""
    for name in SPLIT_NAMES:
        first, last = split[name]
        if first > last:
            raise ConfigError(f"config key modelling.split.{name}: {first} is after {last}")
    # Time order is what makes validation and test honest forecasts.
    for before, after in itertools.pairwise(SPLIT_NAMES):
        if not split[before][1] < split[after][0]:
            raise ConfigError(
                f"config key modelling.split: {before} years ({split[before]}) must end before "
                f"{after} years ({split[after]}) start"
            )
    train_years = split["train"][1] - split["train"][0] + 1
    if cv_folds + 1 > train_years:
        raise ConfigError(
            f"config key modelling.cv_folds: {cv_folds} year folds need at least "
            f"{cv_folds + 1} train years (each fold trains on earlier years); "
            f"modelling.split.train has {train_years}"
        )


def check_modelling(config: Mapping[str, Any]) -> None:
    """The ``modelling`` settings the schema cannot check: the split's form, an explicit
    split's order and enough train years for the folds, the storage template, and the rules of
    every model's search space and fixed parameters that need no scikit-learn
    (:func:`drg_workflow.modelling.search_space.check_model_structure`). A relative split is
    checked against the data's years by the ``split_years`` rule.

    Whether the estimators accept the parameter names and values is checked by each model's
    ``setup_study`` job: importing scikit-learn here would cost every Snakefile parse a second.
    """
    from drg_workflow.modelling.models import ModelConfigError
    from drg_workflow.modelling.search_space import check_model_structure

    modelling = config["modelling"]
    split = modelling["split"]
    if check_split_form(split):
        check_explicit_split(split, modelling["cv_folds"])
    else:
        configured = {
            "test": split["test"],
            "validation": split["validation"],
            "cv_folds": modelling["cv_folds"],
        }
        for name, lowest in split["minimum"].items():
            if lowest > configured[name]:
                key = "modelling.cv_folds" if name == "cv_folds" else f"modelling.split.{name}"
                raise ConfigError(
                    f"config key modelling.split.minimum.{name}: {lowest} is more than {key} "
                    f"({configured[name]}); a split shrinks towards its minimum, never grows"
                )
    storage = modelling["tuning"]["storage"]
    try:
        storage.format(model="m")
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(
            f"config key modelling.tuning.storage: {storage!r} may contain {{model}} and no "
            f"other {{...}} field ({error!r})"
        ) from None
    for model, model_config in modelling["models"].items():
        try:
            check_model_structure(model, model_config)
        except ModelConfigError as error:
            raise ConfigError(f"config key {error}") from None
    check_dropped_feature_groups(config)


def check_dropped_feature_groups(config: Mapping[str, Any]) -> None:
    """A model's ``drop_feature_groups`` are columns of ``series_history``: the modelling data
    version must come from it (be it, or be made from it by later steps of the chain)."""
    modelling = config["modelling"]
    dropping = [name for name, model in modelling["models"].items() if model["drop_feature_groups"]]
    if not dropping:
        return
    steps = {step["version"]: step for step in config["chain"]}
    version = modelling["data_version"]
    while version in steps:
        if steps[version]["transformation"] == "series_history":
            return
        version = steps[version]["input"]
    raise ConfigError(
        f"config key modelling.models.{dropping[0]}.drop_feature_groups: the groups are "
        f"columns of series_history, but the modelling data ({modelling['data_version']}) "
        "does not come from it; add it to chain and set modelling.data_version "
        "(docs/data-versions.md, v14)"
    )
