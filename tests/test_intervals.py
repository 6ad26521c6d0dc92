"""Group-conditional (Mondrian) split-conformal intervals, their coverage and Winkler score
(drg_workflow.modelling.intervals), on small synthetic frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from drg_workflow.modelling.intervals import (
    ALL_ROWS,
    MISSING_GROUP,
    GroupBinning,
    IntervalError,
    MondrianIntervals,
    conformal_quantiles,
    interval_assessment,
    winkler_scores,
)

LEVELS = (0.5, 0.8, 0.95)
#: Log-scale noise of each group: small series' relative errors are far larger than large ones'.
NOISE = {"small": 1.0, "medium": 0.3, "large": 0.1}


def heteroscedastic_rows(n_per_group: int, seed: int) -> pd.DataFrame:
    """Exchangeable rows of three groups of last year's discharges whose errors differ
    tenfold: prediction p, actual p x exp(noise of the group's scale)."""
    rng = np.random.default_rng(seed)
    parts = []
    for volume, (name, scale) in zip((10.0, 100.0, 1000.0), NOISE.items(), strict=True):
        prediction = rng.lognormal(12, 1.0, n_per_group)
        parts.append(
            pd.DataFrame(
                {
                    "group": name,
                    "discharges": volume + rng.uniform(0, volume / 2, n_per_group),
                    "y_pred": prediction,
                    "y_true": prediction * np.exp(rng.normal(0, scale, n_per_group)),
                }
            )
        )
    return pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=seed)


def calibrate(rows: pd.DataFrame, bins: int | None = 3, column: str = "discharges"):
    return MondrianIntervals.calibrate(
        rows["y_true"],
        rows["y_pred"],
        rows[column],
        method="signed_log",
        levels=LEVELS,
        column=column,
        bins=bins,
    )


def coverage_by_group(intervals: MondrianIntervals, rows: pd.DataFrame, values) -> pd.DataFrame:
    labels = intervals.group_labels(values)
    bounds = intervals.bounds(rows["y_pred"], values)
    table = interval_assessment(rows["y_true"], bounds, labels, intervals.groups)
    return table.pivot(index="group", columns="level", values="coverage")


def test_mondrian_holds_every_groups_coverage_where_plain_split_conformal_does_not():
    calibration, test = heteroscedastic_rows(5000, seed=1), heteroscedastic_rows(5000, seed=2)
    mondrian = calibrate(calibration)
    # Three equal-count bins of last year's discharges: the three kinds of series (the edges
    # are observed values, each the first of its bin).
    assert len(mondrian.groups) == 3
    assert np.abs(np.asarray(mondrian.n_calibration) - 5000).max() <= 1
    plain = MondrianIntervals.calibrate(
        calibration["y_true"],
        calibration["y_pred"],
        np.zeros(len(calibration)),
        method="signed_log",
        levels=LEVELS,
        column="constant",
        bins=None,
    )
    by_group = coverage_by_group(mondrian, test, test["discharges"])
    labels = mondrian.group_labels(test["discharges"])
    plain_table = interval_assessment(
        test["y_true"], plain.bounds(test["y_pred"], np.zeros(len(test))), labels, mondrian.groups
    ).pivot(index="group", columns="level", values="coverage")
    small, large = mondrian.groups[0], mondrian.groups[-1]
    for level in LEVELS:
        # Every group within 3 points of the level (5000 rows each to calibrate and to test:
        # the standard error of a group's coverage is below a point) ...
        assert (by_group[level] - level).abs().max() < 0.03, by_group[level]
        # ... where one pooled quantile over-covers the large series and under-covers the
        # small ones by far more.
        assert plain_table.loc[large, level] > level + 0.03
        assert plain_table.loc[small, level] < level - 0.08, plain_table
        # On average, both hold the level.
        assert abs(plain_table.loc[ALL_ROWS, level] - level) < 0.02
        assert abs(by_group.loc[ALL_ROWS, level] - level) < 0.02


def test_levels_nest_even_where_a_small_group_takes_the_pooled_quantile():
    rows = heteroscedastic_rows(400, seed=3)
    # A fourth group of 5 rows with huge errors: 5 rows give its own 50% and 80% quantiles
    # (ranks 3 and 5) but not the 95% one (rank 6 > 5), which comes from all rows and is far
    # smaller than its own 80% quantile.
    few = pd.DataFrame(
        {
            "group": "few",
            "discharges": np.nan,
            "y_pred": 1e5,
            "y_true": 1e5 * np.exp(np.arange(5.0) + 3),
        }
    )
    intervals = calibrate(pd.concat([rows, few], ignore_index=True))
    few_index = intervals.groups.index(MISSING_GROUP)
    assert intervals.n_calibration[few_index] == 5
    assert intervals.from_pooled[few_index] == (False, False, True)
    q = np.asarray(intervals.quantiles)
    assert (np.diff(q, axis=1) >= 0).all()
    prediction = np.asarray([*rows["y_pred"][:50], 1e5])
    bounds = intervals.bounds(prediction, [*rows["discharges"][:50], np.nan])
    for narrow, wide in zip(LEVELS[:-1], LEVELS[1:], strict=True):
        assert (bounds[wide][0] <= bounds[narrow][0]).all()
        assert (bounds[narrow][1] <= bounds[wide][1]).all()
    assert ((bounds[0.5][0] <= prediction) & (prediction <= bounds[0.5][1])).all()


def test_the_quantile_has_the_finite_sample_correction():
    scores = np.arange(1.0, 10.0)  # n = 9
    q, counts = conformal_quantiles(scores, np.zeros(9, int), 1, np.asarray([0.5, 0.8, 0.95]))
    # ceil(10 x 0.5) = 5th, ceil(10 x 0.8) = 8th, ceil(10 x 0.95) = 10th > 9 rows: infinite.
    assert counts.tolist() == [9] and q[0].tolist() == [5.0, 8.0, math.inf]
    # 19 rows: ceil(20 x 0.95) = 19, exactly (no rounding up to 20 by float error).
    q, _ = conformal_quantiles(np.arange(1.0, 20.0), np.zeros(19, int), 1, np.asarray([0.95]))
    assert q[0].tolist() == [19.0]


def test_group_quantiles_equal_a_per_group_computation():
    rng = np.random.default_rng(4)
    scores, codes = rng.exponential(size=1000), rng.integers(0, 7, 1000)
    levels = np.asarray(LEVELS)
    q, counts = conformal_quantiles(scores, codes, 8, levels)  # group 7 has no rows
    for group in range(7):
        own = np.sort(scores[codes == group])
        n = own.size
        assert counts[group] == n
        expected = [own[math.ceil((n + 1) * level) - 1] for level in levels]
        np.testing.assert_array_equal(q[group], expected)
    assert counts[7] == 0 and np.isinf(q[7]).all()


def test_winkler_score_by_hand():
    # 80%: alpha 0.2, a miss costs 2 / 0.2 = 10 times its distance outside the interval.
    scores = winkler_scores([5.0, 0.0, 12.0], [2.0, 2.0, 2.0], [8.0, 8.0, 8.0], 0.8)
    np.testing.assert_allclose(scores, [6.0, 6.0 + 10 * 2, 6.0 + 10 * 4])
    assert scores.mean() == pytest.approx(26.0)


def test_groups_are_equal_count_bins_with_a_missing_group():
    values = np.asarray([*range(1, 101), np.nan, np.nan], dtype=float)
    binning = GroupBinning.fit(values, "discharges", 4)
    assert binning.edges == (25.0, 50.0, 75.0)  # observed values
    assert binning.labels() == ["< 25", "25 to < 50", "50 to < 75", ">= 75"]
    labels = binning.assign(values)
    assert pd.Series(labels).value_counts(sort=False).to_dict() == {
        "< 25": 24,
        "25 to < 50": 25,
        "50 to < 75": 25,
        ">= 75": 26,
        MISSING_GROUP: 2,
    }
    assert binning.order(labels)[-1] == MISSING_GROUP
    # Tied values merge bins instead of making empty ones.
    tied = GroupBinning.fit(np.asarray([1.0] * 80 + [2.0] * 20), "discharges", 10)
    assert tied.edges == (1.0, 2.0) and len(tied.labels()) == 3
    # bins null: the column's values are the groups, in numeric order.
    categorical = GroupBinning.fit([3, 1, 10, 2], "yearly_discharge_bin", None)
    assert categorical.order(categorical.assign([3, 1, 10, 2])) == ["1", "2", "3", "10"]


def test_an_unseen_group_takes_the_pooled_quantiles_and_bad_settings_are_refused():
    rows = heteroscedastic_rows(200, seed=5)
    intervals = MondrianIntervals.calibrate(
        rows["y_true"],
        rows["y_pred"],
        rows["group"],
        method="absolute",
        levels=LEVELS,
        column="group",
        bins=None,
    )
    quantiles = intervals.row_quantiles(np.asarray(["large", "never seen"]))
    np.testing.assert_array_equal(quantiles[1], intervals.pooled)
    assert not np.array_equal(quantiles[0], quantiles[1])
    with pytest.raises(IntervalError, match="unknown interval method 'quantile'"):
        MondrianIntervals.calibrate(
            [1.0], [1.0], [1.0], method="quantile", levels=LEVELS, column="c", bins=2
        )
    with pytest.raises(IntervalError, match=r"levels must be numbers in \(0, 1\)"):
        MondrianIntervals.calibrate(
            [1.0], [1.0], [1.0], method="absolute", levels=[0.8, 1.0], column="c", bins=2
        )
