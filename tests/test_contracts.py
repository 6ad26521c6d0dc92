"""Data contracts: each check, broken by a hand-made frame, stops the adapter before it writes."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT

from drg_workflow.chain_step import transform_version
from drg_workflow.config_validation import ConfigError, validate_config
from drg_workflow.contract_settings import configured_contract
from drg_workflow.contracts import ContractError, check_contract
from drg_workflow.ingest import ingest_raw
from drg_workflow.versions import write_version

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
DEFAULTS = validate_config({}, SCHEMA)


def contract(transformation: str, **changes) -> dict:
    """The default contract of ``transformation`` with ``changes``."""
    return {**configured_contract(DEFAULTS, transformation), **changes}


def severity_rows(rows: int = 8) -> pd.DataFrame:
    """A v2-like frame: one row per (year, facility, DRG, severity)."""
    return pd.DataFrame(
        {
            "year": np.repeat([2010, 2011], rows // 2),
            "facility_id": 1,
            "apr_drg_code": np.tile(np.repeat([10, 20], rows // 4), 2),
            "apr_severity_of_illness_code": np.tile([1, 2], rows // 2),
            "discharges": np.arange(1, rows + 1),
            "mean_charge": 100.0,
            "median_charge": 90.0,
            "mean_cost": 60.0,
            "median_cost": 50.0,
        }
    )


def drg_rows() -> pd.DataFrame:
    """A v8-like frame: one row per (year, facility, DRG), severity shares summing to 1."""
    return pd.DataFrame(
        {
            "year": [2010, 2010, 2011],
            "facility_id": [1, 1, 1],
            "apr_drg_code": [10, 20, 10],
            "share_a": [0.5, 0.25, 1.0],
            "share_b": [0.5, 0.75, 0.0],
        }
    )


def run_adapter(tmp_path: Path, frame: pd.DataFrame, version: str, transformation: str, **kw):
    """Write ``frame`` as input version v_in, then make ``version`` from it in ``tmp_path``."""
    write_version(
        frame,
        tmp_path / "in.csv",
        tmp_path / "in.json",
        tmp_path / "in.arrow",
        version="v_in",
        transformation="hand_made",
        parameters={},
    )
    out = tmp_path / "out"
    return out, lambda: transform_version(
        input_data=tmp_path / "in.arrow",
        input_metadata=tmp_path / "in.json",
        output_csv=out / f"{version}.csv",
        output_metadata=out / f"{version}_metadata.json",
        output_arrow=out / f"{version}.arrow",
        version=version,
        transformation=transformation,
        **kw,
    )


def raw_frame() -> pd.DataFrame:
    frame = severity_rows()
    return frame.rename(
        columns={
            "year": "Year",
            "facility_id": "Facility Id",
            "apr_drg_code": "APR DRG Code",
            "apr_severity_of_illness_code": "APR Severity Of Illness Code",
            "discharges": "Discharges",
            "mean_charge": "Mean Charge",
            "median_charge": "Median Charge",
            "mean_cost": "Mean Cost",
            "median_cost": "Median Cost",
        }
    )


def with_null_key() -> pd.DataFrame:
    frame = severity_rows()
    frame["facility_id"] = frame["facility_id"].astype(float)
    frame.loc[3, "facility_id"] = np.nan
    return frame


def with_value(column: str, row: int, value) -> pd.DataFrame:
    frame = severity_rows()
    frame.loc[row, column] = value
    return frame


# (test id, input frame, version, transformation, parameters, contract, check, offending key)
CASES = [
    (
        "required_columns",
        lambda: severity_rows().drop(columns="discharges"),
        "v3",
        "median_profit",
        {},
        contract("median_profit"),
        "required_columns: missing column(s) discharges",
        None,
    ),
    (
        "not_null",
        with_null_key,
        "v3",
        "median_profit",
        {},
        contract("median_profit"),
        "not_null: missing values (facility_id has 1)",
        "(2010, None, 20, 2)",
    ),
    (
        "unique_keys",
        lambda: drg_rows().assign(apr_drg_code=[10, 10, 10]),
        "v9",
        "ratio_drg_facility_vs_year",
        {},
        contract("ratio_drg_facility_vs_year"),
        "unique_keys: 2 rows share their (year, facility_id, apr_drg_code)",
        "(2010, 1, 10)",
    ),
    (
        "finite",
        lambda: with_value("median_cost", 5, np.inf),
        "v3",
        "median_profit",
        {},
        contract("median_profit"),
        "finite: 1 values of median_profit are NaN or infinite",
        "(2011, 1, 10, 2)",
    ),
    (
        "ranges",
        lambda: with_value("discharges", 2, 0),
        "v3",
        "median_profit",
        {},
        contract("median_profit"),
        "ranges: 1 values of discharges outside [1, inf]",
        "(2010, 1, 20, 1)",
    ),
    (
        "sums_to_one",
        lambda: drg_rows().assign(share_b=[0.5, 0.75 + 1e-6, 0.0]),
        "v9",
        "ratio_drg_facility_vs_year",
        {},
        contract("ratio_drg_facility_vs_year", sums_to_one=[["share_a", "share_b"]]),
        "sums_to_one: 1 rows where share_a + share_b is not 1 within 1e-09",
        "(2010, 1, 20)",
    ),
    (
        "rows_vs_input",
        severity_rows,
        "v7",
        "drop_rare_drgs",
        {"threshold": 20},
        contract("drop_rare_drgs", rows_vs_input="same"),
        "rows_vs_input: 4 rows, but must have the same number of rows as its input (8)",
        None,
    ),
    (
        "row_bounds",
        severity_rows,
        "v3",
        "median_profit",
        {},
        contract("median_profit", min_rows=1_081_672, max_rows=1_081_672),
        "row_bounds: 8 rows, outside [1081672, 1081672]",
        None,
    ),
]


@pytest.mark.parametrize(
    ("make", "version", "transformation", "parameters", "terms", "message", "key"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_broken_contract_stops_the_adapter_before_it_writes(
    tmp_path, make, version, transformation, parameters, terms, message, key
):
    out, run = run_adapter(
        tmp_path, make(), version, transformation, parameters=parameters, contract=terms
    )
    with pytest.raises(ContractError) as caught:
        run()
    text = str(caught.value)
    assert text.startswith(f"{version} ({transformation}) breaks its contract: ")
    assert message in text
    if key is not None:
        assert f"first rows ({', '.join(terms['keys'])}): {key}" in text
    assert "\n" not in text
    assert not out.exists() or list(out.iterdir()) == []


def test_the_raw_version_is_checked_before_anything_is_written(tmp_path, monkeypatch):
    frame = raw_frame()
    frame.loc[1, "Mean Cost"] = np.nan
    monkeypatch.setattr("drg_workflow.ingest.load_raw", lambda *args: (frame, {}))
    message = r"v0 \(ingest_raw\) breaks its contract: finite: 1 values of Mean Cost are NaN"
    with pytest.raises(ContractError, match=message):
        ingest_raw(
            {"source": "synthetic"},
            tmp_path / "v0" / "v0.csv",
            tmp_path / "v0" / "v0_metadata.json",
            tmp_path / "v0" / "v0.arrow",
            contract=contract("ingest_raw"),
        )
    assert not (tmp_path / "v0").exists() or list((tmp_path / "v0").iterdir()) == []


def test_passed_checks_are_measured():
    frame = severity_rows()
    results = check_contract(frame, "v1", "sanitize_column_names", contract("drop_rare_drgs"), 8)
    by_name = {r["check"]: r for r in results}
    assert all(r["passed"] for r in results)
    assert by_name["ranges"]["measured"] == {"discharges": {"min": 1.0, "max": 8.0}}
    assert by_name["rows_vs_input"]["measured"] == {"rule": "at_most", "input_rows": 8, "rows": 8}
    assert by_name["not_null"]["measured"] == {"columns": 5, "nulls": 0}


def test_target_placeholder_follows_the_configured_target():
    config = validate_config({"target": "w_mean_cost"}, SCHEMA)
    assert configured_contract(config, "drop_non_lag_columns")["required_columns"] == [
        "w_mean_cost"
    ]


@pytest.mark.parametrize(
    ("contracts", "message"),
    [
        (
            {"agg_severities": {"ranges": {"sum_discharges": {"min": 5, "max": 1}}}},
            "config key contracts.agg_severities.ranges.sum_discharges: min (5) is above max (1)",
        ),
        (
            {"sanitize_column_names": {"min_rows": 10, "max_rows": 1}},
            "config key contracts.sanitize_column_names: min_rows (10) is above max_rows (1)",
        ),
        (
            {"ingest_raw": {"rows_vs_input": "same"}},
            "config key contracts.ingest_raw.rows_vs_input: 'same' is not allowed",
        ),
        (
            {"drop_non_lag_columns": {"required_columns": ["{label}"]}},
            "may contain {target} and no other",
        ),
        (
            {"agg_severities": {"keys": []}},
            "config key contracts.agg_severities.unique_keys: true needs keys to be unique",
        ),
        ({"agg_severities": {"unique": True}}, "unknown key(s) 'unique'"),
        ({"agg_severities": {"rows_vs_input": "more"}}, "'more' is not allowed"),
        ({"shuffle": {}}, "config key contracts: unknown key(s) 'shuffle'"),
    ],
)
def test_bad_contracts_are_refused(contracts, message):
    with pytest.raises(ConfigError) as caught:
        validate_config(copy.deepcopy({"contracts": contracts}), SCHEMA)
    assert message in str(caught.value)


def test_every_transformation_has_a_contract():
    from drg_workflow.transformations import registered_transformations

    assert sorted(DEFAULTS["contracts"]) == sorted([*registered_transformations(), "ingest_raw"])


def test_a_contract_field_the_checks_do_not_know_is_refused():
    with pytest.raises(ValueError, match="unknown field"):
        check_contract(pd.DataFrame({"a": [1]}), "v1", "x", {"unique_rows": True})
