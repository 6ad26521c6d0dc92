"""The configuration schema: defaults, and one clear message per bad key."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

from drg_workflow.config_validation import ConfigError, config_schema, validate_config
from drg_workflow.transformations import registered_transformations

ROOT = Path(__file__).resolve().parents[1]
#: The schema as written (workflow/schemas/config.schema.yaml); validate_config completes it.
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
#: The schema validated against: the written one completed from the transformation registry.
FULL_SCHEMA = config_schema(SCHEMA)
SHIPPED = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def test_shipped_config_is_valid_and_equals_the_defaults():
    assert validate_config(yaml.safe_load((ROOT / "config/config.yaml").read_text()), SCHEMA)
    # An empty config gets every default, and the defaults are the shipped config.
    assert validate_config({}, SCHEMA) == validate_config(dict(SHIPPED), SCHEMA)


def test_the_default_chain_has_one_home():
    # The schema's default of `chain` is the only copy: the shipped config does not repeat it.
    assert "chain" not in SHIPPED
    versions = [step["version"] for step in validate_config({}, SCHEMA)["chain"]]
    assert versions == [
        *("v1", "v2", "v3", "v4", "v5", "v5_1", "v5_2", "v6"),
        *("v7", "v8", "v9", "v10", "v11", "v12", "v13"),
    ]


def test_schema_knows_every_registered_transformation():
    enum = FULL_SCHEMA["properties"]["chain"]["items"]["properties"]["transformation"]["enum"]
    assert enum == list(registered_transformations())


def test_both_schemas_are_valid_json_schema():
    for schema in (SCHEMA, FULL_SCHEMA):
        jsonschema.validators.validator_for(schema).check_schema(schema)


@pytest.mark.parametrize(
    ("where", "written"),
    [
        (("chain", "items", "properties", "transformation"), {"enum": ["mean_profit"]}),
        (("transformations",), {"properties": {"drop_rare_drgs": {"default": {}}}}),
        (("contracts",), {"properties": {"ingest_raw": {"default": {}}}}),
    ],
)
def test_the_schema_may_not_write_what_the_registry_declares(where, written):
    schema = copy.deepcopy(SCHEMA)
    place = schema["properties"]
    for key in where:
        place = place[key]
    place.update(written)
    with pytest.raises(ValueError, match="generated from the transformation registry"):
        validate_config({}, schema)


def _referenced(schema: dict, definitions: dict) -> dict:
    """The definition that ``schema``'s local ``$ref`` names ({} without one)."""
    if "$ref" not in schema:
        return {}
    node = {"$defs": definitions}
    for part in schema["$ref"].removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_every_key_is_described():
    definitions = FULL_SCHEMA["$defs"]

    def walk(schema, path):
        referenced = _referenced(schema, definitions).get("properties", {})
        for name, sub in schema.get("properties", {}).items():
            # A key is described by itself, by its own $ref, or by its parent's: a contract's
            # fields are described once, in $defs/contract, and only defaulted per transformation.
            assert any(
                "description" in candidate
                for candidate in (sub, _referenced(sub, definitions), referenced.get(name, {}))
            ), f"{path}.{name} has no description"
            if "$ref" not in sub:
                assert "default" in sub or "[]" in path, f"{path}.{name} has no default"
            walk(sub, f"{path}.{name}")
        if "items" in schema:
            walk(schema["items"], f"{path}[]")

    walk(FULL_SCHEMA, "config")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"raw": {"source": "ftp"}}, "config key raw.source: 'ftp' is not allowed; allowed:"),
        ({"raw": {"synthetic": {"scale": -1}}}, "config key raw.synthetic.scale"),
        (
            {"lags": {"by": "month"}},
            "config key lags.by: 'month' is not allowed; allowed: year, row",
        ),
        ({"transformations": {"drop_rare_drgs": {"threshold": "many"}}}, "threshold"),
        (
            {"transformations": {"drop_rare_drgs": {"threshold": -1}}},
            "config key transformations.drop_rare_drgs.threshold: -1 is less than the minimum "
            "of 0 (Keep a DRG only if its total discharges over the whole file are strictly "
            "greater.)",
        ),
        (
            {"transformations": {"drop_rare_drgs": {"treshold": 1}}},
            "config key transformations.drop_rare_drgs: unknown key(s) 'treshold'; "
            "allowed: threshold",
        ),
        (
            {"transformations": {"median_profit": {}}},
            "config key transformations: unknown key(s) 'median_profit'; "
            "allowed: drop_rare_drgs, yearly_discharge_bin",
        ),
        ({"tresholds": 5}, "unknown key(s) 'tresholds'"),
        ({"lags": {"rolling_window": 0}}, "config key lags.rolling_window"),
        (
            {"chain": [{"version": "v1", "transformation": "shuffle", "input": "v0"}]},
            "config key chain[0].transformation: 'shuffle' is not allowed",
        ),
        (
            {"chain": [{"version": "v1", "transformation": "mean_profit", "input": "v9"}]},
            "input v9 is neither v0 nor an earlier version",
        ),
        (
            {
                "chain": [
                    {"version": "v1", "transformation": "mean_profit", "input": "v0"},
                    {"version": "v1", "transformation": "median_profit", "input": "v1"},
                ]
            },
            "version v1 is defined twice",
        ),
        ({"raw": {"synthetic": {"first_year": 2017, "last_year": 2009}}}, "first_year (2017)"),
        (
            {"raw": {"plausible_years": [2100, 1990]}},
            "config key raw.plausible_years: 2100 is after 1990",
        ),
    ],
)
def test_bad_config_names_the_key(config, expected):
    with pytest.raises(ConfigError) as raised:
        validate_config(config, SCHEMA)
    assert expected in str(raised.value)


def test_several_problems_in_one_message():
    with pytest.raises(ConfigError) as raised:
        validate_config({"lags": {"by": "x"}, "raw": {"source": "y"}}, SCHEMA)
    message = str(raised.value)
    assert "lags.by" in message and "raw.source" in message
