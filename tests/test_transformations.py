"""Unit tests of every transformation on small hand-made frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drg_workflow import transformations as t

LAGS = ["value"]


def series_frame(rows: list[tuple[int, int, int, float]]) -> pd.DataFrame:
    """(facility_id, apr_drg_code, year, value) rows as a v10-like frame."""
    return pd.DataFrame(rows, columns=["facility_id", "apr_drg_code", "year", "value"])


# --- v1..v6 ----------------------------------------------------------------------------------


def test_sanitize_column_names_matches_spec_examples():
    frame = pd.DataFrame(columns=["APR Severity Of Illness Code", "Facility Id", " Mean  Cost ($)"])
    assert list(t.sanitize_column_names(frame).columns) == [
        "apr_severity_of_illness_code",
        "facility_id",
        "mean_cost",
    ]


def test_sanitize_column_names_refuses_collisions():
    with pytest.raises(t.TransformationError, match="mean_cost"):
        t.sanitize_column_names(pd.DataFrame(columns=["Mean Cost", "mean-cost"]))


def test_drop_description_columns_only_drops_suffix():
    frame = pd.DataFrame(columns=["apr_drg_description", "description_code", "year"])
    assert list(t.drop_description_columns(frame).columns) == ["description_code", "year"]


def test_money_columns():
    frame = pd.DataFrame(
        {
            "discharges": [2, 3],
            "mean_charge": [10.0, 20.0],
            "mean_cost": [4.0, 5.0],
            "median_charge": [8.0, 9.0],
            "median_cost": [3.0, 1.0],
        }
    )
    out = frame
    for step in [
        t.median_profit,
        t.mean_profit,
        t.total_mean_profit,
        t.total_median_profit,
        t.total_median_cost,
        t.total_mean_cost,
    ]:
        out = step(out)
    assert out["median_profit"].tolist() == [5.0, 8.0]
    assert out["mean_profit"].tolist() == [6.0, 15.0]
    assert out["total_mean_profit"].tolist() == [12.0, 45.0]
    assert out["total_median_profit"].tolist() == [10.0, 24.0]
    assert out["total_median_cost"].tolist() == [6.0, 3.0]
    assert out["total_mean_cost"].tolist() == [8.0, 15.0]
    # The input frame is never modified.
    assert list(frame.columns) == [
        "discharges",
        "mean_charge",
        "mean_cost",
        "median_charge",
        "median_cost",
    ]


def test_missing_column_is_named():
    with pytest.raises(t.TransformationError, match="median_cost"):
        t.median_profit(pd.DataFrame({"median_charge": [1.0]}))


# --- v7 --------------------------------------------------------------------------------------


def test_drop_rare_drgs_threshold_is_strict():
    frame = pd.DataFrame(
        {"apr_drg_code": [1, 1, 2, 2, 3], "discharges": [3000, 2000, 3000, 2001, 9000]}
    )
    out = t.drop_rare_drgs(frame, threshold=5000)
    # DRG 1 totals exactly 5000: dropped; DRG 2 totals 5001: kept.
    assert out["apr_drg_code"].tolist() == [2, 2, 3]


# --- v8 --------------------------------------------------------------------------------------


def test_weighted_lower_median_ties_and_dominant_row():
    values = np.array([5.0, 1.0, 3.0, 7.0, 7.0, 2.0, 10.0, 20.0])
    weights = np.array([1, 1, 1, 1, 1, 100, 1, 1])
    groups = np.array([0, 0, 0, 1, 1, 2, 2, 3])
    medians = t.weighted_lower_median(values, weights, groups, 4)
    # group 0: sorted 1,3,5 with weights 1,1,1: cumulative 1,2,3 >= 1.5 first at 3.
    # group 1: ties 7,7: 7. group 2: the dominant row (weight 100) wins. group 3: single row.
    assert medians.tolist() == [3.0, 7.0, 2.0, 20.0]


def test_weighted_lower_median_exact_half_takes_lower_value():
    # cumulative weight 2 of total 4 reaches half exactly at the lower value.
    medians = t.weighted_lower_median(np.array([10.0, 20.0]), np.array([2, 2]), np.array([0, 0]), 1)
    assert medians.tolist() == [10.0]


def v7_frame() -> pd.DataFrame:
    rows = [
        # year, facility, drg, severity, discharges, median_charge
        (2010, 1, 100, 1, 1, 10.0),
        (2010, 1, 100, 2, 3, 30.0),
        (2010, 1, 100, 4, 1, 50.0),
        (2010, 2, 100, 3, 2, 40.0),
        (2009, 1, 100, 1, 4, 5.0),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "year",
            "facility_id",
            "apr_drg_code",
            "apr_severity_of_illness_code",
            "discharges",
            "median_charge",
        ],
    )
    for column in t.WEIGHTED_MEAN_COLUMNS + t.WEIGHTED_MEDIAN_COLUMNS:
        if column != "median_charge":
            frame[column] = frame["median_charge"] * 2
    frame["extra_column"] = "dropped by aggregation"
    return frame


def test_agg_severities_one_row_per_group_with_weights():
    out = t.agg_severities(v7_frame())
    assert list(out.columns) == [
        "year",
        "facility_id",
        "apr_drg_code",
        "sum_discharges",
        "severity_1_portion",
        "severity_2_portion",
        "severity_3_portion",
        "severity_4_portion",
        *[f"w_{c}" for c in t.WEIGHTED_MEAN_COLUMNS + t.WEIGHTED_MEDIAN_COLUMNS],
    ]
    assert out[["year", "facility_id"]].values.tolist() == [[2009, 1], [2010, 1], [2010, 2]]
    group = out.iloc[1]
    assert group["sum_discharges"] == 5
    assert out["sum_discharges"].dtype == np.int64
    assert [group[f"severity_{k}_portion"] for k in (1, 2, 3, 4)] == [0.2, 0.6, 0.0, 0.2]
    # weighted mean of mean_charge (= 2 * median_charge): (20*1 + 60*3 + 100*1) / 5
    assert group["w_mean_charge"] == pytest.approx(60.0)
    # lower median of 10 (w1), 30 (w3), 50 (w1): cumulative 1, 4 >= 2.5 -> 30
    assert group["w_median_charge"] == 30.0
    assert "index" not in out.columns


# --- v9, v10 ---------------------------------------------------------------------------------


def test_ratio_drg_facility_vs_year():
    frame = pd.DataFrame(
        {"year": [1, 1, 1, 2], "facility_id": [1, 1, 2, 1], "apr_drg_code": [10, 11, 10, 10]}
    )
    out = t.ratio_drg_facility_vs_year(frame)
    assert out["facility_drg_count"].tolist() == [2, 2, 1, 1]
    assert out["year_drg_count"].tolist() == [2, 2, 2, 1]
    assert out["ratio_drg_facility_vs_year"].tolist() == [1.0, 1.0, 0.5, 1.0]


def test_yearly_discharge_bin_matches_pandas_qcut_per_year():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "year": np.repeat([2010, 2011], 40),
            "facility_id": np.tile(np.repeat(np.arange(20), 2), 2),
            "apr_drg_code": np.tile([1, 2], 40),
            "sum_discharges": rng.integers(1, 1000, 80),
        }
    )
    out = t.yearly_discharge_bin(frame, bins=5)
    yearly = frame.groupby(["year", "facility_id"])["sum_discharges"].sum()
    for year in (2010, 2011):
        expected = pd.qcut(yearly.loc[year], q=5, labels=False, duplicates="drop")
        got = out[out["year"] == year].groupby("facility_id")["yearly_discharge_bin"].first()
        assert got.tolist() == expected.tolist()
    assert sorted(out["yearly_discharge_bin"].unique()) == [0, 1, 2, 3, 4]


def test_yearly_discharge_bin_duplicate_edges_and_single_facility():
    # Year 1: many equal sums -> duplicate edges dropped, fewer labels (qcut semantics).
    # Year 2: one facility -> one label 0 rather than NaN.
    frame = pd.DataFrame(
        {
            "year": [1] * 6 + [2],
            "facility_id": [1, 2, 3, 4, 5, 6, 1],
            "sum_discharges": [5, 5, 5, 5, 6, 7, 9],
        }
    )
    out = t.yearly_discharge_bin(frame, bins=5)
    expected = pd.qcut(frame["sum_discharges"][:6], q=5, labels=False, duplicates="drop")
    assert out["yearly_discharge_bin"][:6].tolist() == expected.astype(int).tolist()
    assert out["yearly_discharge_bin"].tolist()[-1] == 0
    assert out["yearly_discharge_bin"].dtype == np.int64


# --- v11..v13 --------------------------------------------------------------------------------

# Facility 1 / DRG 10 lacks 2014: calendar and row lags differ in 2015.
GAP_ROWS = [
    (1, 10, 2015, 5.0),
    (1, 10, 2012, 1.0),
    (1, 10, 2013, 2.0),
    (1, 10, 2016, 8.0),
    (2, 10, 2013, 100.0),
]


def test_lag_by_year_leaves_missing_year_empty():
    out = t.lag_columns(series_frame(GAP_ROWS), LAGS, by="year")
    assert out["year"].tolist() == [2012, 2013, 2015, 2016, 2013]  # sorted by series, year
    lag = out["value_lag1"].tolist()
    assert np.isnan(lag[0]) and lag[1] == 1.0 and np.isnan(lag[2]) and lag[3] == 5.0
    assert np.isnan(lag[4])


def test_lag_by_row_takes_previous_observation():
    out = t.lag_columns(series_frame(GAP_ROWS), LAGS, by="row")
    lag = out["value_lag1"].tolist()
    assert lag[1:4] == [1.0, 2.0, 5.0]  # 2015 takes 2013's value
    assert np.isnan(lag[0]) and np.isnan(lag[4])


def test_rolling_by_year_ignores_missing_year_and_drops_rows_without_history():
    out = t.rolling_columns(series_frame(GAP_ROWS), LAGS, window=2, by="year")
    # 2012 and facility 2's only row have no previous value: dropped.
    assert out[["facility_id", "year"]].values.tolist() == [[1, 2013], [1, 2015], [1, 2016]]
    # 2013: mean(2012)=1; 2015: only 2013 in (2013, 2014) -> 2; 2016: 2015 only -> 5.
    assert out["value_rolling2"].tolist() == [1.0, 2.0, 5.0]


def test_rolling_by_row_averages_previous_two_observations():
    out = t.rolling_columns(series_frame(GAP_ROWS), LAGS, window=2, by="row")
    assert out["year"].tolist() == [2013, 2015, 2016]
    assert out["value_rolling2"].tolist() == [1.0, 1.5, 3.5]


def test_rolling_by_year_drops_row_whose_history_is_older_than_window():
    rows = [(1, 10, 2010, 4.0), (1, 10, 2013, 6.0), (1, 10, 2014, 8.0)]
    out = t.rolling_columns(series_frame(rows), LAGS, window=2, by="year")
    assert out["year"].tolist() == [2014]
    assert out["value_rolling2"].tolist() == [6.0]


def test_lags_refuse_duplicate_series_years():
    rows = [(1, 10, 2010, 4.0), (1, 10, 2010, 5.0)]
    with pytest.raises(t.TransformationError, match="share one"):
        t.lag_columns(series_frame(rows), LAGS, by="year")


def test_lag_mode_is_checked():
    with pytest.raises(t.TransformationError, match="by must be"):
        t.lag_columns(series_frame(GAP_ROWS), LAGS, by="month")


def test_drop_non_lag_columns_keeps_target():
    frame = pd.DataFrame(columns=["year", "a", "b", "target", "a_lag1"])
    out = t.drop_non_lag_columns(frame, ["a", "b", "target"], keep=["target"])
    assert list(out.columns) == ["year", "target", "a_lag1"]


def test_apply_transformation_unknown_name():
    with pytest.raises(t.TransformationError, match="unknown transformation"):
        t.apply_transformation("nope", pd.DataFrame(), {})
