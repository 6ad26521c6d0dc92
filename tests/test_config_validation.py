"""The configuration schema: defaults, and one clear message per bad key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drg_workflow.config_validation import ConfigError, validate_config
from drg_workflow.transformations import TRANSFORMATIONS

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
SHIPPED = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def test_shipped_config_is_valid_and_equals_the_defaults():
    assert validate_config(yaml.safe_load((ROOT / "config/config.yaml").read_text()), SCHEMA)
    # An empty config gets every default, and the defaults are the shipped config.
    assert validate_config({}, SCHEMA) == validate_config(dict(SHIPPED), SCHEMA)


def test_schema_knows_every_registered_transformation():
    enum = SCHEMA["properties"]["chain"]["items"]["properties"]["transformation"]["enum"]
    assert sorted(enum) == sorted(TRANSFORMATIONS)


def test_every_key_is_described():
    def walk(schema, path):
        for name, sub in schema.get("properties", {}).items():
            if "$ref" not in sub:
                assert "description" in sub, f"{path}.{name} has no description"
                assert "default" in sub or "[]" in path, f"{path}.{name} has no default"
            walk(sub, f"{path}.{name}")
        if "items" in schema:
            walk(schema["items"], f"{path}[]")

    walk(SCHEMA, "config")


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
