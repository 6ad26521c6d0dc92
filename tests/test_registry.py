"""The transformation registry: every entry complete, the schema generated from it, the docs
agreeing with it, and a new transformation needing no schema edit."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml

from drg_workflow import registry
from drg_workflow.chain import configured_parameters
from drg_workflow.config_validation import ConfigError, config_schema, validate_config
from drg_workflow.contract_settings import configured_contract
from drg_workflow.contracts import CONTRACT_FIELDS
from drg_workflow.names import RAW_TRANSFORMATION
from drg_workflow.registry import (
    ConfigValue,
    Parameter,
    RegistryError,
    register,
)
from drg_workflow.transformations import apply_transformation, registered_transformations

ROOT = Path(__file__).resolve().parents[1]
WRITTEN_SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
SCHEMA = config_schema(WRITTEN_SCHEMA)
REGISTRY = registered_transformations()
DATA_VERSIONS = (ROOT / "docs/data-versions.md").read_text()


@functools.cache
def defaults() -> dict:
    """The validated default config (computed on first use: a broken registry entry then fails
    the test that checks it, not the collection of the whole file)."""
    return validate_config({}, WRITTEN_SCHEMA)


def contract_validator() -> jsonschema.protocols.Validator:
    """A validator of one contract against the schema's generic ``$defs/contract``."""
    return jsonschema.Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": "#/$defs/contract"})


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registered_transformation_is_complete(name):
    entry = REGISTRY[name]
    assert entry.name == name == entry.function.__name__
    assert callable(entry.function)
    assert entry.description, f"{name} has no description (its docstring's first paragraph)"
    for parameter_name, parameter in entry.parameters.items():
        if isinstance(parameter, Parameter):
            assert parameter.description, f"{name}.{parameter_name} has no description"
            jsonschema.Draft202012Validator.check_schema(parameter.schema)
            errors = list(
                jsonschema.Draft202012Validator(parameter.schema).iter_errors(parameter.default)
            )
            assert not errors, f"{name}.{parameter_name}: default breaks its schema: {errors}"
        else:
            # A shared setting must exist in the config (the validated defaults hold them all).
            parameter.value_in(defaults())
    assert set(entry.contract) <= CONTRACT_FIELDS, f"{name}: contract fields unknown to checks"
    errors = list(contract_validator().iter_errors(dict(entry.contract)))
    assert not errors, f"{name}: default contract breaks $defs/contract: {errors}"


def test_the_raw_contract_is_valid_too():
    assert set(registry.RAW_CONTRACT) <= CONTRACT_FIELDS
    assert not list(contract_validator().iter_errors(dict(registry.RAW_CONTRACT)))


def test_the_schema_declares_exactly_the_contract_fields_the_checks_know():
    assert set(SCHEMA["$defs"]["contract"]["properties"]) == CONTRACT_FIELDS


def test_parameter_defaults_are_the_configs_defaults():
    for name, entry in REGISTRY.items():
        expected = {p: setting.default for p, setting in entry.settings.items()}
        assert defaults()["transformations"].get(name, {}) == expected
        assert configured_parameters(defaults(), name).keys() == entry.parameters.keys()


def test_contract_defaults_are_the_configs_defaults():
    assert list(defaults()["contracts"]) == ["ingest_raw", *REGISTRY]
    for name, entry in REGISTRY.items():
        configured = defaults()["contracts"][name]
        assert {field: configured[field] for field in entry.contract} == entry.contract


# --- registration ----------------------------------------------------------------------------


def test_registration_refuses_parameters_the_function_does_not_take():
    with pytest.raises(RegistryError, match=r"takes the parameters \(factor\)"):

        @register(contract={}, parameters={"threshold": ConfigValue("target")})
        def scale_rows(frame: pd.DataFrame, factor: float) -> pd.DataFrame:
            """Scale."""
            return frame

    assert "scale_rows" not in registered_transformations()


def test_registration_refuses_a_default_in_the_parameter_schema():
    with pytest.raises(RegistryError, match="must not hold default"):

        @register(
            contract={},
            parameters={"factor": Parameter({"type": "number", "default": 2}, 2, "Factor.")},
        )
        def scale_rows(frame: pd.DataFrame, factor: float) -> pd.DataFrame:
            """Scale."""
            return frame


def test_registration_refuses_a_function_without_docstring():
    with pytest.raises(RegistryError, match="no docstring"):

        @register(contract={})
        def shuffle_rows(frame: pd.DataFrame) -> pd.DataFrame:
            return frame


def test_a_new_transformation_needs_no_schema_edit(monkeypatch):
    """Registering a function is all it takes: the schema knows its name, its parameter (with
    default, bounds and description) and its contract; the rules' helpers pass them on."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register(
        parameters={
            "factor": Parameter({"type": "integer", "minimum": 1}, 3, "Copies of every row.")
        },
        contract={"required_columns": ["discharges"], "min_rows": 1},
    )
    def repeat_rows(frame: pd.DataFrame, factor: int) -> pd.DataFrame:
        """Repeat every row ``factor`` times."""
        return frame.loc[frame.index.repeat(factor)].reset_index(drop=True)

    chain = [
        *defaults()["chain"][:8],
        {"version": "v6_1", "transformation": "repeat_rows", "input": "v6"},
        {"version": "v7", "transformation": "drop_rare_drgs", "input": "v6_1"},
        *defaults()["chain"][9:],
    ]
    config = validate_config({"chain": copy.deepcopy(chain)}, WRITTEN_SCHEMA)
    assert config["transformations"]["repeat_rows"] == {"factor": 3}
    assert configured_parameters(config, "repeat_rows") == {"factor": 3}
    assert configured_contract(config, "repeat_rows")["min_rows"] == 1
    frame = pd.DataFrame({"discharges": [1, 2]})
    assert apply_transformation("repeat_rows", frame, {"factor": 2})["discharges"].tolist() == [
        1,
        1,
        2,
        2,
    ]
    with pytest.raises(ConfigError, match=r"config key transformations\.repeat_rows\.factor"):
        validate_config({"transformations": {"repeat_rows": {"factor": 0}}}, WRITTEN_SCHEMA)


# --- the docs --------------------------------------------------------------------------------


def markdown_table(text: str, heading: str) -> list[list[str]]:
    """The cells of the first table after ``heading``, header and separator rows left out."""
    section = text.split(f"\n{heading}\n", 1)[1]
    lines = section.split("\n|", 1)[1].split("\n\n", 1)[0].split("\n")
    rows = [[cell.strip() for cell in ("|" + line).strip().strip("|").split("|")] for line in lines]
    return rows[2:]


def quoted(cell: str) -> list[str]:
    """The `backquoted` names of a table cell, in order."""
    return re.findall(r"`([^`]*)`", cell)


def test_docs_list_every_registered_transformation_and_no_other():
    table = markdown_table(DATA_VERSIONS, "## Transformations and their parameters")
    documented = [row[0] for row in table]
    assert sorted(documented) == sorted(REGISTRY), (
        "docs/data-versions.md, 'Transformations and their parameters', lists "
        f"{sorted(set(documented) - set(REGISTRY))} which are not registered, and misses "
        f"{sorted(set(REGISTRY) - set(documented))}"
    )
    assert len(documented) == len(set(documented)), "a transformation is listed twice"


def test_docs_give_every_transformations_parameters_and_config_keys():
    for name, parameters, keys, defaults in markdown_table(
        DATA_VERSIONS, "## Transformations and their parameters"
    ):
        entry = REGISTRY[name]
        if not entry.parameters:
            assert parameters == "none", f"{name} takes no parameters"
            continue
        assert quoted(parameters) == list(entry.parameters), name
        expected_keys = [
            f"transformations.{name}.{p}"
            if isinstance(source, Parameter)
            else (f"[{source.key}]" if source.as_list else source.key)
            for p, source in entry.parameters.items()
        ]
        assert quoted(keys) == expected_keys, name
        for setting in entry.settings.values():
            assert f"`{setting.default}`" in defaults, f"{name}: default {setting.default}"


def test_docs_overview_is_the_default_chain():
    table = markdown_table(DATA_VERSIONS, "## Overview of the default chain")
    documented = [(row[0], row[1]) for row in table]
    default_chain = [(s["version"], s["transformation"]) for s in defaults()["chain"]]
    assert documented == [("v0", RAW_TRANSFORMATION), *default_chain]
