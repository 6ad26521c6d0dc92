"""The report's figures and tables, on small hand-made frames (drg_workflow.report)."""

from __future__ import annotations

import base64
import json
import zlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from drg_workflow.report import figures, tables
from drg_workflow.report.output import save_png

DATA = "v13, sha256 0123456789ab"


def _metadata(
    version: str, source: str | None, rows: int, parameters: dict, checks: tuple[str, ...] = ()
) -> dict:
    return {
        "version": version,
        "rows": rows,
        "sha256": version.encode().hex().ljust(64, "f"),
        "columns": [{"name": "a", "dtype": "int64"}, {"name": "b", "dtype": "float64"}],
        "input": {"version": source, "sha256": None},
        "transformation": {"name": f"make_{version}", "parameters": parameters},
        "contracts": [{"check": name, "passed": True, "measured": {}} for name in checks],
    }


LINEAGE = tables.lineage_table(
    [
        _metadata("v0", None, 100, {"source": "synthetic", "seed": 7}, ["keys_not_null"]),
        _metadata("v1", "v0", 90, {"columns": [f"c{i}" for i in range(15)], "by": "year"}),
        _metadata("v5_1", "v1", 40, {}),
    ]
)


def _texts(figure: Figure) -> str:
    """Every title, axis label, tick label and text of a figure, joined."""
    parts = [figure._suptitle.get_text() if figure._suptitle else ""]
    parts.append(figure._supxlabel.get_text() if figure._supxlabel else "")
    for ax in figure.axes:
        parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        parts += [t.get_text() for t in ax.texts]
    return "\n".join(parts)


def _check(figure: Figure, *expected: str) -> str:
    """The figure has a title, labelled axes and a footer naming its data; returns its text."""
    assert isinstance(figure, Figure)
    text = _texts(figure)
    assert figure._supxlabel is not None and figure._supxlabel.get_text()
    for ax in figure.axes:
        assert ax.get_xlabel() and ax.get_ylabel() or ax.get_xlabel()
    assert any(ax.get_title() for ax in figure.axes) or figure._suptitle is not None
    for piece in expected:
        assert piece in text, (piece, text)
    return text


def test_lineage_table_has_one_row_per_version_in_order():
    assert list(LINEAGE.columns) == list(tables.LINEAGE_COLUMNS)
    assert list(LINEAGE["version"]) == ["v0", "v1", "v5_1"]
    assert list(LINEAGE["input"]) == ["", "v0", "v1"]
    assert list(LINEAGE["rows"]) == [100, 90, 40]
    assert list(LINEAGE["columns"]) == [2, 2, 2]
    assert LINEAGE["sha256"].str.len().eq(12).all()
    assert list(LINEAGE["contract checks"]) == ["1 passed: keys_not_null"] + ["none recorded"] * 2
    assert LINEAGE.loc[0, "parameters"] == 'seed=7, source="synthetic"'
    assert LINEAGE.loc[1, "parameters"] == 'by="year", columns=[15 columns]'


def test_short_parameters():
    assert tables.short_parameters('{"b": 33.884658, "a": 3, "c": "sqrt"}') == (
        "a=3, b=33.88, c=sqrt"
    )
    assert tables.short_parameters("{}") == "" and tables.short_parameters("odd") == "odd"


def test_lineage_page_names_every_version():
    page = tables.lineage_page(LINEAGE)
    assert page.startswith("<!DOCTYPE html>")
    for version in ("v0", "v1", "v5_1"):
        assert f'<td class="text">{version}</td>' in page
    assert "<script" not in page


def test_rows_along_chain():
    figure = figures.rows_along_chain(LINEAGE)
    _check(figure, "rows (count)", "v0 sha256", "v5_1 sha256")
    (ax,) = figure.axes
    assert [round(p.get_height()) for p in ax.patches] == [100, 90, 40]


def _frame(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    lag = rng.lognormal(12, 1, n)
    return pd.DataFrame(
        {
            "year": np.repeat([2015, 2016], n // 2),
            "target": lag * rng.lognormal(0, 0.1, n),
            "target_lag1": lag,
            "sum_discharges_lag1": rng.integers(1, 100, n).astype(float),
            "noise_rolling2": rng.normal(size=n),
        }
    )


def test_target_by_year_is_log_dollars_and_counts_dropped_values():
    frame = _frame()
    frame.loc[:2, "target"] = -5.0
    figure = figures.target_by_year(frame, "target", DATA)
    text = _check(figure, "target (dollars, log scale)", DATA, "3 rows with a value <= 0")
    assert "year" in text
    assert figure.axes[0].get_yscale() == "log"


def test_strongest_features_and_their_figure():
    frame = _frame()
    strongest = figures.strongest_features(
        frame, "target", ["noise_rolling2", "sum_discharges_lag1", "target_lag1"], 2
    )
    assert list(strongest.index)[0] == "target_lag1"
    assert len(strongest) == 2
    figure = figures.lag_features_vs_target(frame, "target", strongest, DATA)
    _check(figure, "target_lag1 (dollars, log)", "target (dollars, log)", DATA)
    assert len(figure.axes) == 2
    assert figures.feature_unit("sum_discharges_lag1") == "discharges"
    assert figures.feature_unit("severity_2_portion_rolling2") == "share"


def test_dollar_ticks():
    ticks = [figures.DOLLARS(v, None) for v in (-1e6, 0, 800, 35_000, 1.2e6, 3e9)]
    assert ticks == ["-$1M", "$0", "$800", "$35k", "$1.2M", "$3B"]


def test_sample_rows_is_seeded_and_bounded():
    frame = pd.DataFrame({"a": range(100)})
    assert figures.sample_rows(frame, 200) is frame
    first, second = figures.sample_rows(frame, 10), figures.sample_rows(frame, 10)
    assert len(first) == 10 and first.equals(second)


def _trial(number: int, shard: int, candidate: int, state: str, value, steps: dict[int, float]):
    return SimpleNamespace(
        number=number,
        user_attrs={"shard": shard, "round": candidate // 2, "candidate": candidate % 2},
        state=SimpleNamespace(name=state),
        value=value,
        intermediate_values=steps,
    )


# Optuna's numbers in the order the shards happened to create the trials, not their candidates'
TRIALS = tables.trials_frame(
    "ridge",
    [
        _trial(2, 0, 2, "PRUNED", None, {0: 1.2}),
        _trial(1, 0, 0, "COMPLETE", 1.0, {0: 1.0, 1: 1.0}),
        _trial(0, 1, 1, "COMPLETE", 0.8, {0: 0.7, 1: 0.8}),
        _trial(3, 1, 3, "COMPLETE", 0.9, {0: 0.9, 1: 0.9}),
    ],
)


def test_trials_frame_orders_trials_by_round_and_candidate_not_number():
    assert list(TRIALS.columns) == list(tables.TRIAL_COLUMNS)
    assert list(TRIALS["trial"]) == [0, 1, 2, 3]
    assert list(TRIALS["round"]) == [0, 0, 1, 1] and list(TRIALS["candidate"]) == [0, 1, 0, 1]
    assert list(TRIALS["shard"]) == [0, 1, 0, 1]
    assert list(TRIALS["state"]) == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    assert np.isnan(TRIALS.loc[2, "value"]) and TRIALS.loc[2, "last_step_value"] == 1.2


def test_optimisation_history_draws_best_so_far():
    figure = figures.optimisation_history(TRIALS, "ridge", DATA, "2 shards x 2 trials")
    _check(figure, "CV loss ratio (model / persistence)", "round, then candidate", DATA)
    (ax,) = figure.axes
    best, persistence = ax.lines
    assert list(best.get_ydata()) == [1.0, 0.8, 0.8]
    assert list(persistence.get_ydata()) == [1.0, 1.0]


def test_param_importances_with_and_without_values():
    figure = figures.param_importances({"alpha": 0.8, "l1": 0.2}, "ridge", DATA)
    _check(figure, "importance", "parameter", DATA)
    assert [round(p.get_width(), 1) for p in figure.axes[0].patches] == [0.2, 0.8]
    empty = figures.param_importances({}, "ridge", DATA)
    _check(empty, "not enough complete trials")


def test_trials_per_shard_stacks_complete_and_pruned():
    figure = figures.trials_per_shard(pd.concat([TRIALS, TRIALS.assign(model="forest")]), DATA)
    _check(figure, "trials (count)", "shard", DATA)
    heights = sorted(round(p.get_height()) for p in figure.axes[0].patches if p.get_height())
    assert heights == [1, 1, 1, 1, 2, 2]  # 3 complete + 1 pruned per model, split by shard


PREDICTIONS = pd.DataFrame(
    {
        "split": ["validation"] * 2 + ["test"] * 4,
        "year": [2015, 2015, 2016, 2016, 2017, 2017],
        "y_true": [10.0, 20.0, 100.0, 200.0, 300.0, 400.0],
        "y_pred": [12.0, 18.0, 110.0, -5.0, 280.0, 420.0],
    }
)


def test_predicted_vs_actual_is_log_log_with_identity_and_warning():
    figure = figures.predicted_vs_actual(PREDICTIONS, "ridge", DATA, warning="loses")
    text = _check(figure, "actual target (dollars, log)", "predicted target (dollars, log)")
    assert "WARNING: fails the skill gate against persistence" in text
    assert "1 with a value <= 0 not drawn" in text
    (ax,) = figure.axes
    assert ax.get_xscale() == ax.get_yscale() == "log"
    (identity,) = ax.lines
    assert list(identity.get_xdata()) == list(identity.get_ydata())
    quiet = figures.predicted_vs_actual(PREDICTIONS, "ridge", DATA)
    assert "WARNING" not in _texts(quiet)


def test_residuals_by_year_has_one_box_per_year_and_split():
    figure = figures.residuals_by_year(PREDICTIONS, "ridge", DATA)
    _check(figure, "residual: predicted - actual (dollars)", DATA)
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert labels == ["2015\nvalidation", "2016\ntest", "2017\ntest"]


def test_forecast_changes_counts_every_row_and_marks_the_median():
    forecast = pd.DataFrame(
        {
            "persistence": [100.0, 200.0, -50.0, 400.0, 10.0],
            "prediction": [110.0, 180.0, -45.0, 2000.0, 10.0],
        }
    )
    figure = figures.forecast_changes(forecast, "ridge", 2018, DATA)
    _check(figure, "facility x DRG rows", DATA)
    ax = figure.axes[0]
    # +10%, -10%, +10% (a smaller loss), +400% (clipped into the last bin), 0%.
    assert sum(patch.get_height() for patch in ax.patches) == 5
    assert ax.patches[-1].get_height() == 1
    assert ax.get_legend().get_texts()[0].get_text() == "median +10.0%"


#: The forecast metadata's interval assessment for two groups and two levels.
ASSESSMENT = {
    "rows": 300,
    "years": [2016, 2017],
    "calibration_years": [2014, 2015],
    "by_group": {
        level: {
            group: {"rows": 100, "coverage": cov, "winkler_score": 1.0, "median_width": 1.0}
            for group, cov in zip(("< 12", ">= 12", "all"), covs, strict=True)
        }
        for level, covs in (("0.5", (0.49, 0.52, 0.505)), ("0.8", (0.78, 0.81, 0.795)))
    },
    "split_conformal_by_group": {
        level: {
            group: {"rows": 100, "coverage": cov, "winkler_score": 1.0, "median_width": 1.0}
            for group, cov in zip(("< 12", ">= 12", "all"), covs, strict=True)
        }
        for level, covs in (("0.5", (0.40, 0.60, 0.5)), ("0.8", (0.70, 0.90, 0.8)))
    },
}


def test_coverage_by_group_draws_each_group_at_each_level_against_the_nominal_line():
    figure = figures.coverage_by_group(
        ASSESSMENT, [">= 12", "< 12"], "sum_discharges_lag1", "signed_log", DATA
    )
    _check(figure, "actual values inside the interval (%)", "sum_discharges_lag1", DATA)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [">= 12", "< 12", "all"]
    # Per level: the nominal line, the groups by group and with one quantile for all.
    by_group = [line for line in ax.lines if line.get_label() == "80% by group"]
    np.testing.assert_allclose(by_group[0].get_ydata(), [81.0, 78.0, 79.5])
    plain = [line for line in ax.lines if line.get_label() == "80% one quantile for all"]
    np.testing.assert_allclose(plain[0].get_ydata(), [90.0, 70.0, 80.0])
    assert any(list(line.get_ydata()) == [80.0, 80.0] for line in ax.lines)


def test_interval_calibration_puts_nominal_against_empirical_coverage():
    figure = figures.interval_calibration(ASSESSMENT, ["< 12", ">= 12"], "signed_log", DATA)
    _check(figure, "nominal coverage (%)", "empirical coverage", DATA)
    ax = figure.axes[0]
    overall = [line for line in ax.lines if line.get_label() == "all rows, by group"][0]
    np.testing.assert_allclose(overall.get_xdata(), [50.0, 80.0])
    np.testing.assert_allclose(overall.get_ydata(), [50.5, 79.5])
    # The diagonal, and two lines per group (by group and one quantile for all).
    assert len(ax.lines) == 1 + 2 * 2 + 1


def test_interval_width_by_group_is_the_median_width_per_group_and_level():
    forecast = pd.DataFrame(
        {
            "interval_group": ["< 12", "< 12", ">= 12"],
            "prediction": [100.0, 300.0, 5000.0],
            "lower_0.5": [90.0, 250.0, 4000.0],
            "upper_0.5": [110.0, 350.0, 6000.0],
            "lower_0.8": [50.0, 200.0, 3000.0],
            "upper_0.8": [150.0, 500.0, 7000.0],
        }
    )
    figure = figures.interval_width_by_group(
        forecast, [0.5, 0.8], ["< 12", ">= 12"], "sum_discharges_lag1", 2018, DATA
    )
    _check(figure, "median interval width (dollars, log scale)", DATA)
    ax = figure.axes[0]
    heights = [round(p.get_height(), 6) for p in ax.patches]
    assert heights == [60.0, 2000.0, 200.0, 4000.0]  # 50%: medians of 20, 100; 2000 ...


def test_forecast_page_holds_every_row_and_a_search_and_sort_script():
    forecast = pd.DataFrame(
        {
            "year": 2018,
            "facility_id": [7, 3, 7],
            "facility_name": ["St. Mary's <Hospital>", "Albany Med", "St. Mary's <Hospital>"],
            "apr_drg_code": [194, 194, 720],
            "apr_drg_description": ["Heart failure", "Heart failure", "Septicemia"],
            "interval_group": ["< 12", ">= 12", "< 12"],
            "persistence": [1000.4, -2000.0, 30.0],
            "prediction": [1100.6, -1900.0, 31.0],
            "lower_0.8": [901.2, -2504.9, 20.0],
            "upper_0.8": [1300.0, -1495.0, 40.4],
        }
    )
    names = {"facility_id": "facility_name", "apr_drg_code": "apr_drg_description"}
    page = tables.forecast_page(
        forecast,
        names,
        [0.8],
        [">= 12", "< 12"],
        "sum_discharges_lag1",
        title="Forecast for 2018",
        note=DATA,
    )
    assert page.startswith("<!DOCTYPE html>") and DATA in page
    meta = page.split('<script type="application/json" id="forecast-meta">')[1]
    payload = json.loads(meta.split("</script>")[0])
    data = page.split('<script type="application/octet-stream" id="forecast-data">')[1]
    columns = json.loads(zlib.decompress(base64.b64decode(data.split("</script>")[0])))
    # Facilities and DRGs once each (sorted by key), rows refer to them; whole dollars, the
    # intervals to 3 significant digits (as shown).
    assert payload["facilities"] == [["3", "Albany Med"], ["7", "St. Mary's <Hospital>"]]
    assert payload["drgs"] == [["194", "Heart failure"], ["720", "Septicemia"]]
    assert payload["groups"] == [">= 12", "< 12"]
    assert [list(row) for row in zip(*columns, strict=True)] == [
        [1, 0, 1, 1000, 1101, 901, 1300],
        [0, 0, 0, -2000, -1900, -2500, -1500],
        [1, 1, 1, 30, 31, 20, 40],
    ]
    assert [c["name"] for c in payload["columns"]][-3:] == [
        "2017 (last year)",
        "forecast 2018",
        "80% interval ($)",
    ]
    assert 'id="forecast-search"' in page and 'addEventListener("input", filter)' in page
    assert "<Hospital>" not in page.split("<script")[0]  # escaped outside the JSON


def test_feature_importances_with_and_without_impurity():
    permutation = pd.DataFrame(
        {"feature": list("abcd"), "importance_mean": [4.0, 3.0, 2.0, 1.0], "importance_std": 0.1}
    )
    impurity = pd.DataFrame({"feature": list("abcd"), "importance": [0.4, 0.3, 0.2, 0.1]})
    both = figures.feature_importances(permutation, impurity, "forest", DATA, top=3)
    _check(both, "RMSE increase when shuffled (dollars)", "impurity importance", DATA)
    assert len(both.axes) == 2
    assert [t.get_text() for t in both.axes[0].get_yticklabels()] == ["c", "b", "a"]
    alone = figures.feature_importances(permutation, impurity.iloc[:0], "ridge", DATA)
    assert len(alone.axes) == 1


def test_comparison_page_highlights_models_that_fail_the_gate():
    metrics = {c: [1.0, 2.0, 3.0] for c in ("cv_rmse", "cv_mae", "val_rmse", "val_mae")}
    metrics |= {c: [1.0, 2.0, 3.0] for c in ("test_rmse", "test_mae", "val_r2", "test_r2")}
    skills = '{"2014": 0.2, "2015": 0.25, "2017": -0.1}'
    comparison = pd.DataFrame(
        {
            "model": ["forest", "baseline", "ridge"],
            **metrics,
            "n_trials_complete": [3, 0, 3],
            "n_trials_pruned": [1, 0, 1],
            "best_params": ['{"depth": 3}', "{}", '{"alpha": 1.0}'],
            "choosing_origins": ["2014 2015"] * 3,
            "skill_rmse": [0.225, 0.0, 0.3],
            "skill_mae": [0.1, 0.0, 0.2],
            "skill_rmse_by_origin": [skills] * 3,
            "skill_mae_by_origin": [skills] * 3,
            "passes_gate": [True, None, False],
            "champion": [True, False, False],
            "warning": ["", None, "model 'ridge' fails the skill gate on the choosing origins"],
        }
    )
    page = tables.comparison_page(comparison, DATA)
    assert page.count('<td class="text">champion</td>') == 1
    assert '<div class="warning">WARNING: model &#x27;ridge&#x27; fails the skill gate' in page
    assert page.count('<tr class="warn">') == 1 and page.count('<tr class="baseline">') == 1
    assert DATA in page
    assert "<td>3 / 1</td>" not in page and '<td class="text">3 / 1</td>' in page
    assert '<td class="text">NO</td>' in page and '<td class="text">yes</td>' in page
    assert "RMSE skill per origin (2014\u00a0/\u00a02015\u00a0/\u00a02017)" in page
    assert "+0.200\u00a0/\u00a0+0.250\u00a0/\u00a0-0.100" in page
    assert '<td class="text">2014, 2015</td>' in page and "<td>+0.225</td>" in page


BACKTEST = pd.DataFrame(
    {
        "origin": [2014] * 3 + [2017] * 3,
        "role": ["choosing"] * 3 + ["reporting"] * 3,
        "model": ["forest", "ridge", "baseline"] * 2,
        "n_series": [100] * 6,
        "first_training_year": [2010, 2010, 2013, 2010, 2010, 2016],
        "last_training_year": [2013, 2013, 2013, 2016, 2016, 2016],
        "rmse": [8.0, 9.0, 10.0, 7.0, 11.0, 10.0],
        "mae": [4.0, 4.5, 5.0, 4.0, 5.5, 5.0],
        "skill_rmse": [0.2, 0.1, 0.0, 0.3, -0.1, 0.0],
        # The forest's 2017 interval does not hold its point (a skewed bootstrap).
        "skill_rmse_lower": [0.1, -0.05, 0.0, 0.31, -0.2, 0.0],
        "skill_rmse_upper": [0.3, 0.2, 0.0, 0.5, 0.05, 0.0],
        "skill_mae": [0.2, 0.1, 0.0, 0.2, -0.1, 0.0],
        "skill_mae_lower": [0.1, 0.05, 0.0, 0.1, -0.2, 0.0],
        "skill_mae_upper": [0.3, 0.2, 0.0, 0.3, 0.0, 0.0],
    }
)


def test_backtest_skill_shows_every_origin_persistence_at_zero_and_the_roles():
    figure = figures.backtest_skill(BACKTEST, "forest", 0.9, DATA)
    text = _check(figure, "RMSE skill", "MAE skill", "90% bootstrap interval", DATA)
    assert "origin year (shaded: chooses the champion)" in text
    rmse, mae = figure.axes
    assert [t.get_text() for t in rmse.get_xticklabels()] == ["2014\nchoosing", "2017\nreporting"]
    labels = [t.get_text() for t in mae.get_legend().get_texts()]
    assert labels == ["persistence (skill 0)", "forest (champion)", "ridge"]
    assert rmse.lines[0].get_ydata()[0] == 0  # persistence
    assert len(rmse.patches) == 1  # the one choosing origin shaded


def test_backtest_page_tells_choosing_from_reporting_origins():
    page = tables.backtest_page(BACKTEST, "forest", 0.9, DATA)
    assert '<td class="text">2014</td>' in page and "2,014" not in page
    assert page.count('<td class="text">choosing</td>') == 3
    assert page.count('<td class="text">reporting</td>') == 3
    assert '<td class="text">forest (champion)</td>' in page
    assert "+0.200 [+0.100, +0.300]" in page and "90% bootstrap interval" in page
    assert '<td class="text">(last year&#x27;s value)</td>' in page
    assert page.count('<tr class="baseline">') == 2


def test_significant_digits():
    values = np.asarray([239_097.0, -1_483_780.0, 87.0, 0.4, 999.6])
    np.testing.assert_array_equal(
        tables.significant(values, 3), [239_000.0, -1_480_000.0, 87.0, 0.0, 1_000.0]
    )


@pytest.mark.parametrize("make", [lambda: figures.rows_along_chain(LINEAGE)])
def test_png_bytes_are_reproducible_and_carry_no_stamp(tmp_path, make):
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    save_png(make(), first)
    save_png(make(), second)
    data = first.read_bytes()
    assert data.startswith(b"\x89PNG") and data == second.read_bytes()
    assert b"matplotlib" not in data.lower() and b"Software" not in data
