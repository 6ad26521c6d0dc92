"""Tests for the synthetic raw-data generator (``drg_workflow.synthetic``).

Most checks use one small frame (``scale=0.005``: 15 facilities x 22 DRGs, ~5,000 rows) built
once per module; one test builds the full-scale frame (~1.1 M rows, ~2 s).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from drg_workflow.config_validation import validate_config
from drg_workflow.errors import DrgWorkflowError
from drg_workflow.raw_schema import RAW_KEY_COLUMNS, SEVERITY_DESCRIPTIONS
from drg_workflow.synthetic import (
    RAW_COLUMNS,
    equivalent_rare_drg_threshold,
    generate_raw,
    sizes_for_scale,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
#: raw.synthetic with the schema's defaults: the one home of the generator's default settings.
SYNTHETIC_DEFAULTS = validate_config({}, copy.deepcopy(SCHEMA))["raw"]["synthetic"]

SEED = 42
SMALL_SCALE = 0.005

INT_COLUMNS = [
    "Year",
    "Facility Id",
    "APR DRG Code",
    "APR Severity Of Illness Code",
    "Discharges",
]
FLOAT_COLUMNS = ["Mean Charge", "Median Charge", "Mean Cost", "Median Cost"]
STR_COLUMNS = [
    "Facility Name",
    "APR DRG Description",
    "APR Severity Of Illness Description",
    "APR Medical Surgical Code",
    "APR Medical Surgical Description",
]


def synthetic_settings(**overrides: Any) -> dict[str, Any]:
    """generate_raw's arguments: the schema's defaults of ``raw.synthetic``, then ``overrides``
    (not validated, so tests can pass settings the config would refuse)."""
    return {**SYNTHETIC_DEFAULTS, **overrides}


#: The shared small frame's settings (default years).
SMALL_SETTINGS = synthetic_settings(seed=SEED, scale=SMALL_SCALE)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    """The shared small frame (treat as read-only)."""
    return generate_raw(**SMALL_SETTINGS)


def _pair_year_profit(df: pd.DataFrame) -> pd.DataFrame:
    """Total median profit per (facility, DRG) pair (rows) and year (columns); NaN = absent."""
    profit = (df["Median Charge"] - df["Median Cost"]) * df["Discharges"]
    return (
        df.assign(profit=profit)
        .groupby(["Facility Id", "APR DRG Code", "Year"])["profit"]
        .sum()
        .unstack("Year")
    )


# --- Schema -----------------------------------------------------------------------------------


def test_raw_columns_match_spec() -> None:
    assert RAW_COLUMNS == [
        "Year",
        "Facility Id",
        "Facility Name",
        "APR DRG Code",
        "APR Severity Of Illness Code",
        "APR DRG Description",
        "APR Severity Of Illness Description",
        "APR Medical Surgical Code",
        "APR Medical Surgical Description",
        "Discharges",
        "Mean Charge",
        "Median Charge",
        "Mean Cost",
        "Median Cost",
    ]
    assert sorted(INT_COLUMNS + FLOAT_COLUMNS + STR_COLUMNS) == sorted(RAW_COLUMNS)


def test_schema_names_order_and_dtypes(small: pd.DataFrame) -> None:
    assert list(small.columns) == RAW_COLUMNS
    assert isinstance(small.index, pd.RangeIndex) and small.index.start == 0
    for col in INT_COLUMNS:
        assert small[col].dtype == np.dtype("int64"), col
    for col in FLOAT_COLUMNS:
        assert small[col].dtype == np.dtype("float64"), col
    for col in STR_COLUMNS:
        assert pd.api.types.is_string_dtype(small[col].dtype), col
        assert small[col].notna().all(), col
        assert all(type(v) is str for v in small[col].unique()), col


def test_csv_round_trip_gives_the_same_frame(small: pd.DataFrame) -> None:
    """Reading the generated CSV back yields the same frame, as reading the real file would."""
    buffer = io.StringIO()
    small.to_csv(buffer, index=False)
    buffer.seek(0)
    pd.testing.assert_frame_equal(pd.read_csv(buffer), small)


# --- Determinism, keys, order -------------------------------------------------------------------


def test_deterministic_for_a_seed(small: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(generate_raw(**SMALL_SETTINGS), small)


def test_different_seed_gives_a_different_frame(small: pd.DataFrame) -> None:
    other = generate_raw(**synthetic_settings(seed=SEED + 1, scale=SMALL_SCALE))
    assert not other.equals(small)


def test_keys_unique_and_sorted(small: pd.DataFrame) -> None:
    keys = pd.MultiIndex.from_frame(small[RAW_KEY_COLUMNS])
    assert keys.is_unique
    assert keys.is_monotonic_increasing


def test_settings_have_no_defaults_in_code() -> None:
    """The settings' defaults live in the config schema only (raw.synthetic)."""
    parameters = inspect.signature(generate_raw).parameters.values()
    assert [p.name for p in parameters if p.default is not p.empty] == []
    with pytest.raises(TypeError):
        generate_raw(seed=SEED, scale=SMALL_SCALE)  # type: ignore[call-arg]


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError):
        generate_raw(**synthetic_settings(scale=0))
    with pytest.raises(ValueError):
        generate_raw(**synthetic_settings(scale=-1.0))
    with pytest.raises(ValueError):
        generate_raw(**synthetic_settings(scale=0.002, first_year=2017, last_year=2009))


@pytest.mark.parametrize(
    "arguments",
    [{"scale": 0}, {"scale": float("nan")}, {"first_year": 2017, "last_year": 2009}],
    ids=["zero-scale", "nan-scale", "years-reversed"],
)
def test_bad_settings_are_user_errors(arguments: dict) -> None:
    """A bad `raw.scale` or year range is the user's error: logged_rule shows it as one line."""
    with pytest.raises(DrgWorkflowError):
        generate_raw(**synthetic_settings(seed=SEED, **arguments))


# sha256 of ``generate_raw(**synthetic_settings(**arguments)).to_csv(index=False)`` (settings
# not given are the schema's defaults), computed from the generator
# before it was split into named steps: the output must never change by accident (cached data
# versions and models are keyed on it). Change a pin only when the data is meant to change.
PINNED_CSV_SHA256 = [
    (
        {"seed": 42, "scale": 0.005},
        "1c0d5e41ad9ec19023bb38c2756e161dd7668a41395d2c01a3465162ca591c69",
    ),
    (
        {"seed": 5, "scale": 0.002},
        "6a05721e40575637ee1547e607823fe068b54d0ab6646e72fd5001d67c0b8854",
    ),
    (
        {"seed": 7, "scale": 0.001, "first_year": 2015, "last_year": 2015},
        "9d117e7206ec97a75d758d1460f8d8a1f0d23e1c2ecc8c26fb61dfb3517594fc",
    ),
    (
        {"seed": 3, "scale": 0.02, "first_year": 2010, "last_year": 2013},
        "59d027d8d36ddf7806ff3fa3c9fbd18a277200806f8268e26d6eb7ca69bb6f08",
    ),
]


@pytest.mark.parametrize(("arguments", "sha256"), PINNED_CSV_SHA256, ids=lambda x: str(x)[:12])
def test_output_bytes_are_pinned(arguments: dict, sha256: str) -> None:
    csv_bytes = generate_raw(**synthetic_settings(**arguments)).to_csv(index=False).encode()
    assert hashlib.sha256(csv_bytes).hexdigest() == sha256


# --- Sizes and year range -----------------------------------------------------------------------


def test_years_cover_the_default_range(small: pd.DataFrame) -> None:
    first, last = SMALL_SETTINGS["first_year"], SMALL_SETTINGS["last_year"]
    assert sorted(small["Year"].unique()) == list(range(first, last + 1))


def test_custom_year_range() -> None:
    df = generate_raw(seed=1, scale=0.002, first_year=2012, last_year=2014)
    assert sorted(df["Year"].unique()) == [2012, 2013, 2014]
    one_year = generate_raw(seed=1, scale=0.002, first_year=2020, last_year=2020)
    assert set(one_year["Year"]) == {2020} and len(one_year) > 0


def test_small_scale_size(small: pd.DataFrame) -> None:
    n_fac, n_drg = sizes_for_scale(SMALL_SCALE)
    assert (n_fac, n_drg) == (15, 22)
    assert 2_000 <= len(small) <= 10_000
    assert small["Facility Id"].nunique() == n_fac
    assert small["APR DRG Code"].nunique() == n_drg


def test_tiny_scale_keeps_the_floors() -> None:
    assert sizes_for_scale(1e-6) == (6, 12)
    df = generate_raw(**synthetic_settings(seed=SEED, scale=0.002))
    assert df["Facility Id"].nunique() >= 6
    assert df["APR DRG Code"].nunique() >= 12
    assert set(df["APR Severity Of Illness Code"]) == {1, 2, 3, 4}


def test_rows_roughly_linear_in_scale(small: pd.DataFrame) -> None:
    bigger = generate_raw(**synthetic_settings(seed=SEED, scale=4 * SMALL_SCALE))
    assert 3.0 <= len(bigger) / len(small) <= 5.5


# --- Values --------------------------------------------------------------------------------------


def test_discharges_and_money_ranges(small: pd.DataFrame) -> None:
    assert (small["Discharges"] >= 1).all()
    # Many small counts and some large ones.
    assert (small["Discharges"] <= 3).mean() > 0.2
    assert small["Discharges"].max() >= 50
    assert (small[FLOAT_COLUMNS] >= 0).all().all()
    # Amounts are in cents.
    assert np.allclose(small[FLOAT_COLUMNS], small[FLOAT_COLUMNS].round(2), rtol=0, atol=1e-6)


def test_charges_are_two_to_five_times_costs(small: pd.DataFrame) -> None:
    for kind in ("Mean", "Median"):
        ratio = small[f"{kind} Charge"] / small[f"{kind} Cost"]
        # Facility ratio in [2, 5] times per-row noise clipped to [0.9, 1.1].
        assert ratio.between(1.79, 5.51).all(), kind
    # Each facility has its own ratio level.
    per_facility = (small["Median Charge"] / small["Median Cost"]).groupby(small["Facility Id"])
    assert per_facility.median().max() - per_facility.median().min() > 1.0


def test_mean_exceeds_median(small: pd.DataFrame) -> None:
    """Right-skewed costs: mean >= median always, > for most rows with 3+ discharges."""
    for kind in ("Cost", "Charge"):
        mean, median = small[f"Mean {kind}"], small[f"Median {kind}"]
        assert (mean >= median).all(), kind
        several = small["Discharges"] >= 3
        assert (mean > median)[several].mean() > 0.95, kind
        # With one or two discharges the mean is the median.
        assert (mean == median)[small["Discharges"] <= 2].all(), kind


def test_severities(small: pd.DataFrame) -> None:
    codes = small["APR Severity Of Illness Code"]
    assert set(codes) == {1, 2, 3, 4}
    expected = codes.map(SEVERITY_DESCRIPTIONS)
    assert (small["APR Severity Of Illness Description"] == expected).all()
    by_severity = small.groupby("APR Severity Of Illness Code")
    # More discharges at low severity, higher cost at high severity.
    discharges = by_severity["Discharges"].sum()
    assert discharges[1] + discharges[2] > discharges[3] + discharges[4]
    assert discharges[1] > discharges[4]
    assert by_severity["Median Cost"].median().is_monotonic_increasing


def test_costs_inflate_over_the_years(small: pd.DataFrame) -> None:
    log_cost = np.log(small["Median Cost"]).groupby(small["Year"]).mean()
    first, last = SMALL_SETTINGS["first_year"], SMALL_SETTINGS["last_year"]
    # ~3% a year over 8 years is ~0.24 in logs; leave room for the changing case mix.
    assert 0.1 < log_cost[last] - log_cost[first] < 0.4


def test_descriptions_are_consistent_per_code(small: pd.DataFrame) -> None:
    assert (small.groupby("Facility Id")["Facility Name"].nunique() == 1).all()
    assert small.groupby("Facility Id")["Facility Name"].first().is_unique
    per_drg = small.groupby("APR DRG Code")[
        ["APR DRG Description", "APR Medical Surgical Code", "APR Medical Surgical Description"]
    ].nunique()
    assert (per_drg == 1).all().all()
    assert set(small["APR Medical Surgical Code"]) <= {"M", "S"}
    ms = small[["APR Medical Surgical Code", "APR Medical Surgical Description"]].drop_duplicates()
    assert dict(ms.itertuples(index=False)) == {"M": "Medical", "S": "Surgical"}
    assert small["APR DRG Code"].between(1, 999).all()


# --- Structure the downstream chain relies on ---------------------------------------------------


def test_some_pairs_skip_a_year(small: pd.DataFrame) -> None:
    """Present in t-2 and t but absent in t-1, so calendar and row lags differ."""
    present = _pair_year_profit(small).notna()
    years = list(present.columns)
    gaps = sum(
        int((present[years[i - 2]] & ~present[years[i - 1]] & present[years[i]]).sum())
        for i in range(2, len(years))
    )
    assert gaps >= 5
    # Pairs also enter after the first year and leave before the last.
    first_seen = present.idxmax(axis=1)
    last_seen = present.iloc[:, ::-1].idxmax(axis=1)
    assert (first_seen > years[0]).any() and (last_seen < years[-1]).any()


def test_rare_drgs_under_a_scaled_threshold(small: pd.DataFrame) -> None:
    """Some, not all, DRG codes fall under the threshold scaled like DRG totals."""
    threshold = equivalent_rare_drg_threshold(SMALL_SCALE, 5000)
    assert threshold == pytest.approx(5000 * 15 / 210)
    totals = small.groupby("APR DRG Code")["Discharges"].sum()
    rare_share = (totals <= threshold).mean()
    assert 0.05 <= rare_share <= 0.5
    # The long tail spans orders of magnitude.
    assert totals.max() / totals.min() > 100


def test_facility_volumes_span_orders_of_magnitude(small: pd.DataFrame) -> None:
    yearly = small.groupby(["Year", "Facility Id"])["Discharges"].sum()
    per_year_spread = yearly.groupby(level="Year").agg(lambda s: s.max() / s.min())
    assert per_year_spread.median() > 10


def test_total_median_profit_persists_across_years(small: pd.DataFrame) -> None:
    profit = _pair_year_profit(small)
    years = list(profit.columns)
    consecutive = pd.concat(
        [
            profit[[a, b]].dropna().set_axis(["previous", "current"], axis=1)
            for a, b in zip(years[:-1], years[1:], strict=True)
        ]
    )
    assert len(consecutive) > 100
    assert consecutive["previous"].corr(consecutive["current"]) > 0.5


# --- Full scale (~2 s) ----------------------------------------------------------------------------


def test_full_scale_matches_the_real_file_shape() -> None:
    df = generate_raw(**synthetic_settings(seed=SEED))
    # The default frame (the schema's defaults) itself is pinned too (see PINNED_CSV_SHA256;
    # hashing is cheaper here than writing 1.1 M rows of CSV).
    assert len(df) == 1_108_700
    assert int(pd.util.hash_pandas_object(df, index=True).sum()) == 10158993748373712453
    assert abs(len(df) - 1_081_672) <= 0.05 * 1_081_672
    assert df["Facility Id"].nunique() == 210
    assert df["APR DRG Code"].nunique() == 316
    totals = df.groupby("APR DRG Code")["Discharges"].sum()
    assert totals.sum() > 5_000_000
    assert 0.15 <= (totals <= 5000).mean() <= 0.35
