"""Years from the data, the rolling-origin backtest, its skill and bootstrap intervals, the skill
gate and the champion, and what a model fits (loss weights, the bound that reduces to
persistence), on small frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from modelling_frames import model_settings, modelling_frame, modelling_settings, pooled_skill_test
from threadpoolctl import threadpool_limits

from drg_workflow.ingest import missing_years_warning, raw_years, year_runs
from drg_workflow.modelling.backtest import (
    PREDICTION_COLUMNS,
    SCORE_COLUMNS,
    SKILL_TEST_COLUMNS,
    bootstrap_skill_intervals,
    bootstrap_skill_resamples,
    fit_at_origin,
    score_backtest,
    skill,
)
from drg_workflow.modelling.comparison import (
    COMPARISON_COLUMNS,
    NO_CHAMPION_WARNING,
    build_comparison,
    champion_model,
    gate_failures,
)
from drg_workflow.modelling.data import ModellingDataError, select_features
from drg_workflow.modelling.model_params import PERSISTENCE_PARAMS
from drg_workflow.modelling.models import build_model
from drg_workflow.modelling.settings import BacktestSettings, YearSplit
from drg_workflow.modelling.target_form import (
    TargetFormRegressor,
    loss_weights,
    signed_log,
)
from drg_workflow.modelling.years import (
    ModellingYears,
    resolve_origins,
    resolve_split,
    resolve_years,
    unused_years,
    years_message,
)
from drg_workflow.raw_schema import RAW_YEAR_COLUMN

TARGET = "w_total_median_profit"
LAG, ROLLING = f"{TARGET}_lag1", f"{TARGET}_rolling2"
YEARS = list(range(2010, 2018))
RELATIVE = {"train": None, "validation": 2, "test": 2}
BOOTSTRAP = BacktestSettings(bootstrap_resamples=500, interval_level=0.9, seed=42)


# ----------------------------------------------------------------------------- years


def test_the_relative_split_takes_the_last_years_of_the_data():
    split = resolve_split(RELATIVE, YEARS, cv_folds=3)
    assert split == YearSplit(train=(2010, 2013), validation=(2014, 2015), test=(2016, 2017))
    # Other data, other years: the split follows them.
    later = resolve_split({"train": None, "validation": 1, "test": 3}, range(2012, 2022), 3)
    assert later == YearSplit(train=(2012, 2017), validation=(2018, 2018), test=(2019, 2021))


def test_explicit_years_are_still_allowed_and_checked_against_the_data():
    explicit = {"train": [2010, 2014], "validation": [2015, 2015], "test": [2016, 2017]}
    assert resolve_split(explicit, YEARS, 3) == YearSplit((2010, 2014), (2015, 2015), (2016, 2017))
    with pytest.raises(ModellingDataError, match=r"modelling.split.test: no data for the years"):
        resolve_split({**explicit, "test": [2019, 2020]}, YEARS, 3)
    with pytest.raises(ModellingDataError, match=r"modelling.cv_folds: 3 year folds need 4 train"):
        resolve_split({**explicit, "train": [2012, 2014]}, YEARS, 3)


#: The default relative split with its default minimum (the schema's).
ADAPTIVE = {**RELATIVE, "minimum": {"test": 1, "validation": 1, "cv_folds": 1}}


def test_the_relative_split_shrinks_to_the_years_the_data_has():
    """A raw file of 2009-2016 (8 years: 2009 only gives 2010 its lags) has 7 modelling
    years: one test year, the folds and validation years as configured. Of 5 raw years
    (2009-2013), 4 are left: one of each. The test years shrink first, then the folds, then
    the validation years; what was chosen travels in split.json."""
    eight = resolve_years(ADAPTIVE, None, 3, range(2010, 2017))
    assert eight.split == YearSplit((2010, 2013), (2014, 2015), (2016, 2016))
    assert eight.cv_folds == 3 and eight.choosing_origins == (2014, 2015)
    assert ModellingYears.from_json(json.loads(json.dumps(eight.to_json()))) == eight
    six = resolve_years(ADAPTIVE, None, 3, range(2010, 2016))
    assert (six.split, six.cv_folds) == (YearSplit((2010, 2012), (2013, 2014), (2015, 2015)), 2)
    five = resolve_years(ADAPTIVE, None, 3, range(2010, 2014))
    assert five.split == YearSplit((2010, 2011), (2012, 2012), (2013, 2013))
    assert five.cv_folds == 1 and five.reporting_origins == (2013,)
    # Enough years: nothing shrinks.
    assert resolve_years(ADAPTIVE, None, 3, YEARS) == resolve_years(RELATIVE, None, 3, YEARS)


def test_too_few_years_even_for_the_smallest_split_name_the_years_and_the_key():
    with pytest.raises(ModellingDataError) as raised:
        resolve_split(ADAPTIVE, range(2010, 2013), cv_folds=3)
    assert str(raised.value).startswith(
        "config key modelling.split: the modelling data has 3 years (2010, 2011, 2012); the "
        "smallest split allowed (modelling.split.minimum: 1 test, 1 validation and 2 train "
        "years (1 tuning folds)) needs 4"
    )
    # A minimum equal to the setting keeps it: 6 years are then too few for 2 + 2 + 4.
    with pytest.raises(ModellingDataError, match=r"modelling data has 6 years .* needs 8"):
        resolve_split(RELATIVE, range(2010, 2016), cv_folds=3)


def test_origins_default_to_every_validation_and_test_year_and_the_first_ones_choose():
    split = resolve_split(RELATIVE, YEARS, 3)
    assert resolve_origins(None, split, YEARS) == ((2014, 2015), (2016, 2017))
    assert resolve_origins([2017, 2015], split, YEARS) == ((2015,), (2017,))
    with pytest.raises(ModellingDataError, match=r"backtest.origins: \[2013\] are not years"):
        resolve_origins([2013, 2015], split, YEARS)
    with pytest.raises(ModellingDataError, match="no origin in the validation years"):
        resolve_origins([2016, 2017], split, YEARS)
    with pytest.raises(ModellingDataError, match="no origin in the test years"):
        resolve_origins([2014, 2015], split, YEARS)
    years = resolve_years(RELATIVE, None, 3, YEARS)
    assert years.origins == (2014, 2015, 2016, 2017)
    assert [years.role(o) for o in years.origins] == ["choosing"] * 2 + ["reporting"] * 2
    assert ModellingYears.from_json(json.loads(json.dumps(years.to_json()))) == years


def test_a_year_gap_is_found_named_in_one_warning_and_its_unused_years_named():
    raw = pd.DataFrame({RAW_YEAR_COLUMN: [*range(2009, 2018), 2021, 2021]})
    years = raw_years(raw)
    assert years["missing"] == [2018, 2019, 2020] and years["last"] == 2021
    warning = missing_years_warning(years)
    assert warning.startswith("no data for 2018, 2019, 2020 (the raw data has the years ")
    assert "2009-2017, 2021" in warning and "the forecast is for 2022" in warning
    assert missing_years_warning(raw_years(raw.iloc[:9])) is None
    assert year_runs([2009, 2010, 2011, 2013, 2021, 2022]) == "2009-2011, 2013, 2021-2022"
    # 2021 has no data in the 2 years before it: rolling_columns drops its rows.
    split = resolve_split(RELATIVE, YEARS, 3)
    unused = unused_years(years["present"], YEARS, split, "v13", rolling_window=2)
    assert sorted(unused) == [2009, 2021]
    assert "no data in the 2 years before it" in unused[2021]
    info, warning = years_message(unused, first_modelling_year=2010)
    assert "2009" in info and "2021" in warning and "2009" not in warning
    # A year of the modelling data outside an explicit split is named too.
    explicit = YearSplit((2011, 2013), (2014, 2015), (2016, 2017))
    assert unused_years(YEARS, YEARS, explicit, "v13", 2) == {
        2010: "outside every range of modelling.split"
    }
    assert years_message({}, 2010) == ("every year of the data is fitted or scored", None)


# ----------------------------------------------------------------------------- origin refits


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return modelling_frame()


def features_of(frame: pd.DataFrame) -> list[str]:
    settings = modelling_settings()
    return select_features(frame.columns, settings.features)


@pytest.mark.parametrize("model", ["ridge", "random_forest"])
def test_an_origin_never_sees_its_own_year_or_later_in_training(frame, model):
    """The refit at an origin is the same whatever the origin year's and later years' targets
    are, and with those later years removed: only years before the origin reach the fit."""
    params = {"alpha": 3.0} if model == "ridge" else {"n_estimators": 5, "max_depth": 4}
    settings = model_settings(model, {})
    features = features_of(frame)
    origin = 2015
    fit = fit_at_origin(settings, params, frame, features, origin, "choosing")
    assert fit.training_years == [2010, 2011, 2012, 2013, 2014]
    assert list(fit.predictions.columns) == list(PREDICTION_COLUMNS)
    assert set(fit.predictions["year"]) == {origin} == set(fit.predictions["origin"])
    # The origin's and later years' targets changed wildly; the later years gone.
    changed = frame.copy()
    later = changed["year"] >= origin
    changed.loc[later, TARGET] = changed.loc[later, TARGET] * 1000 + 1e9
    changed = changed.loc[changed["year"] <= origin]
    again = fit_at_origin(settings, params, changed, features, origin, "choosing")
    np.testing.assert_array_equal(again.predictions["prediction"], fit.predictions["prediction"])
    assert not np.allclose(again.predictions["actual"], fit.predictions["actual"])


def test_origin_predictions_keep_persistence_and_last_years_discharges(frame):
    fit = fit_at_origin(model_settings("ridge", {}), {}, frame, features_of(frame), 2016, "x")
    rows = frame.loc[frame["year"] == 2016].sort_values(["facility_id", "apr_drg_code"])
    np.testing.assert_allclose(fit.predictions["actual"], rows[TARGET])
    persistence = rows[LAG].where(rows[LAG].notna(), rows[ROLLING])
    np.testing.assert_allclose(fit.predictions["persistence"], persistence)
    discharges = rows["sum_discharges_lag1"].where(
        rows["sum_discharges_lag1"].notna(), rows["sum_discharges_rolling2"]
    )
    np.testing.assert_allclose(fit.predictions["last_year_discharges"], discharges)
    with pytest.raises(ModellingDataError, match="backtest origin 2030: .* 0 in it"):
        fit_at_origin(model_settings("ridge", {}), {}, frame, features_of(frame), 2030, "x")


# ----------------------------------------------------------------------------- scores


def origin_rows(origin: int, role: str, model: str, actual, prediction, persistence) -> list:
    return [
        {
            "origin": origin,
            "role": role,
            "model": model,
            "year": origin,
            "facility_id": i,
            "apr_drg_code": 1,
            "actual": a,
            "prediction": p,
            "persistence": q,
            "last_year_discharges": 10.0,
        }
        for i, (a, p, q) in enumerate(zip(actual, prediction, persistence, strict=True))
    ]


def test_skill_rmse_mae_and_the_baseline_rows_by_hand():
    actual, persistence = [10.0, 20.0, 30.0, 40.0], [12.0, 16.0, 33.0, 40.0]
    good = [11.0, 19.0, 31.0, 40.0]
    rows = origin_rows(2015, "choosing", "m", actual, good, persistence)
    rows += origin_rows(2015, "choosing", "same", actual, persistence, persistence)
    table = score_backtest(
        pd.DataFrame(rows), {("m", 2015): [2010, 2014], ("same", 2015): [2011, 2014]}, BOOTSTRAP
    ).table
    assert list(table.columns) == list(SCORE_COLUMNS)
    assert list(table["model"]) == ["m", "same", "baseline"]
    m = table.iloc[0]
    rmse, rmse_p = np.sqrt((1 + 1 + 1 + 0) / 4), np.sqrt((4 + 16 + 9 + 0) / 4)
    assert m["rmse"] == pytest.approx(rmse) and m["persistence_rmse"] == pytest.approx(rmse_p)
    assert m["skill_rmse"] == pytest.approx(1 - rmse / rmse_p)
    assert m["skill_mae"] == pytest.approx(1 - 3 / 9)
    assert (m["first_training_year"], m["last_training_year"]) == (2010, 2014)
    assert m["skill_rmse_lower"] <= m["skill_rmse"] <= m["skill_rmse_upper"]
    # Persistence itself, as a model or as the baseline row: skill 0, interval [0, 0].
    for row in (table.iloc[1], table.iloc[2]):
        assert row[["skill_rmse", "skill_rmse_lower", "skill_rmse_upper"]].tolist() == [0, 0, 0]
        assert row[["skill_mae", "skill_mae_lower", "skill_mae_upper"]].tolist() == [0, 0, 0]
    assert skill(0.0, 0.0) == 0 and skill(1.0, 0.0) == -np.inf


def test_the_bootstrap_is_seeded_paired_and_resamples_series():
    rng = np.random.default_rng(1)
    actual = rng.lognormal(10, 1, size=300)
    persistence = actual * rng.lognormal(0, 0.3, size=300)
    better = actual * rng.lognormal(0, 0.2, size=300)
    errors = np.column_stack([actual - better, actual - persistence])
    first = bootstrap_skill_intervals(errors, actual - persistence, BOOTSTRAP, 2015)
    again = bootstrap_skill_intervals(errors, actual - persistence, BOOTSTRAP, 2015)
    other = bootstrap_skill_intervals(errors, actual - persistence, BOOTSTRAP, 2016)
    np.testing.assert_array_equal(first["rmse"], again["rmse"])
    assert not np.array_equal(first["rmse"], other["rmse"])  # another origin, other draws
    # Paired: persistence as a model has exactly skill 0 in every resample.
    assert first["rmse"][:, 1].tolist() == [0, 0] and first["mae"][:, 1].tolist() == [0, 0]
    point = skill(np.sqrt(np.mean(errors[:, 0] ** 2)), np.sqrt(np.mean(errors[:, 1] ** 2)))
    assert first["rmse"][0, 0] < point < first["rmse"][1, 0]
    # The interval narrows with more series (4x the series: about half as wide).
    many = np.tile(errors, (4, 1))
    wide = first["rmse"][1, 0] - first["rmse"][0, 0]
    narrow = np.diff(bootstrap_skill_intervals(many, many[:, 1], BOOTSTRAP, 2015)["rmse"][:, 0])
    assert narrow[0] < 0.7 * wide


def test_the_bootstrap_gives_the_same_bits_with_any_number_of_blas_threads():
    """The resamples' sums do not depend on the BLAS library's threads (a job run in
    Snakemake's process uses all cores' BLAS threads, one in its own process the job's threads):
    the skill test has the same bytes either way."""
    rng = np.random.default_rng(3)
    actual = rng.lognormal(15, 2, size=3000)
    errors = actual[:, None] * rng.normal(0, 0.3, size=(3000, 3))
    persistence = actual * rng.normal(0, 0.4, size=3000)
    with threadpool_limits(1, user_api="blas"):
        one = bootstrap_skill_resamples(errors, persistence, BOOTSTRAP, 2015)
    with threadpool_limits(4, user_api="blas"):
        several = bootstrap_skill_resamples(errors, persistence, BOOTSTRAP, 2015)
    for measure in ("rmse", "mae"):
        assert one[measure].tobytes() == several[measure].tobytes()


# ----------------------------------------------------------------------------- the gate


def backtest_table(skills: dict[str, dict[int, float]], roles: dict[int, str]) -> pd.DataFrame:
    """A backtest table where every model's RMSE and MAE skills (and interval centres) are
    the given ones, the intervals +-0.05 around them."""
    rows = []
    for model, by_origin in skills.items():
        for origin, value in by_origin.items():
            rows.append(
                {
                    "origin": origin,
                    "role": roles[origin],
                    "model": model,
                    "n_series": 100,
                    "first_training_year": 2010,
                    "last_training_year": origin - 1,
                    "rmse": 100 * (1 - value),
                    "mae": 50 * (1 - value),
                    "persistence_rmse": 100.0,
                    "persistence_mae": 50.0,
                    **{
                        f"skill_{m}{end}": value + shift
                        for m in ("rmse", "mae")
                        for end, shift in (("", 0), ("_lower", -0.05), ("_upper", 0.05))
                    },
                }
            )
    for origin, role in roles.items():
        rows.append(
            {
                **rows[0],
                "origin": origin,
                "role": role,
                "model": "baseline",
                "rmse": 100.0,
                "mae": 50.0,
                **{f"skill_{m}{e}": 0.0 for m in ("rmse", "mae") for e in ("", "_lower", "_upper")},
            }
        )
    return pd.DataFrame(rows)


ROLES = {2014: "choosing", 2015: "choosing", 2016: "reporting", 2017: "reporting"}


def metrics_row(model: str) -> dict:
    return {
        "model": model,
        **{c: 1.0 for c in COMPARISON_COLUMNS[1:9]},
        "n_trials_complete": 0 if model == "baseline" else 4,
        "n_trials_pruned": 0,
        "best_params": {},
    }


def test_a_model_losing_to_persistence_on_one_choosing_origin_is_refused_by_the_gate():
    """'star' has the best mean skill and wins three origins by far, but loses in MAE on the
    choosing origin 2015 (its RMSE loss there is within its interval: not a reason): the gate
    refuses it and 'steady' is the champion. A loss on a reporting origin does not count.
    'narrow' wins on every choosing origin, but its pooled interval reaches 0. One origin's own
    interval reaching 0 does not count: only the pooled test does."""
    skills = {
        "star": {2014: 0.60, 2015: -0.02, 2016: 0.5, 2017: 0.5},
        "steady": {2014: 0.10, 2015: 0.04, 2016: -0.3, 2017: 0.1},
        "narrow": {2014: 0.02, 2015: 0.04, 2016: 0.2, 2017: 0.2},
    }
    backtest = backtest_table(skills, ROLES)
    skill_test = pooled_skill_test(backtest)
    assert gate_failures(backtest, skill_test, "steady") == []
    failures = gate_failures(backtest, skill_test, "star")
    assert failures == ["2015: MAE 51 not below persistence's 50"]
    assert gate_failures(backtest, skill_test, "narrow") == [
        "mean RMSE skill +0.030 over 2014, 2015: its 90% interval [-0.020, +0.080] is not above 0",
        "mean MAE skill +0.030 over 2014, 2015: its 90% interval [-0.020, +0.080] is not above 0",
    ]
    rows = [metrics_row(m) for m in ("star", "steady", "narrow", "baseline")]
    table = build_comparison(rows, backtest, skill_test)
    assert list(table.columns) == list(COMPARISON_COLUMNS)
    assert champion_model(table) == "steady" and table["model"].iloc[0] == "steady"
    by_model = table.set_index("model")
    assert by_model.loc["star", "passes_gate"] == False  # noqa: E712 (nullable boolean)
    assert (
        "fails the skill gate on the choosing origins (2014, 2015)"
        in by_model.loc["star", "warning"]
    )
    assert by_model.loc["steady", "choosing_origins"] == "2014 2015"
    assert by_model.loc["steady", "skill_rmse"] == pytest.approx(0.07)
    assert by_model.loc["steady", "skill_rmse_lower"] == pytest.approx(0.02)
    assert by_model.loc["steady", "gate_test"] == (
        "MAE below persistence's on every choosing origin, and RMSE not significantly above it "
        "on any (the upper end of the origin's 90% interval of the RMSE skill above 0); mean "
        "RMSE and MAE skill over them above 0 (paired bootstrap of 1000 resamples of the series "
        "within each origin, pooled: one-sided test at 0.05, the lower end of the 90% interval "
        "above 0)"
    )
    assert json.loads(by_model.loc["steady", "skill_rmse_by_origin"]) == {
        "2014": 0.1,
        "2015": 0.04,
        "2016": -0.3,
        "2017": 0.1,
    }
    assert pd.isna(by_model.loc["baseline", "passes_gate"])


def test_an_rmse_tie_on_one_choosing_origin_passes_a_significant_rmse_loss_does_not():
    """One year's dollar RMSE is often one series' verdict: 'tie' wins MAE everywhere and RMSE
    clearly over the choosing origins, but its 2014 RMSE point is just below persistence's
    (-0.007, interval reaching above 0): it passes and is the champion. 'loser' has the same
    MAE wins and a better mean RMSE skill, but 2014's RMSE interval lies below 0: refused."""
    skills = {
        "tie": {2014: 0.20, 2015: 0.30, 2016: 0.1, 2017: 0.1},
        "loser": {2014: 0.20, 2015: 0.60, 2016: 0.1, 2017: 0.1},
    }
    backtest = backtest_table(skills, ROLES)
    rmse_2014 = {"tie": -0.007, "loser": -0.08}
    for model, value in rmse_2014.items():
        row = (backtest["model"] == model) & (backtest["origin"] == 2014)
        backtest.loc[row, "rmse"] = 100 * (1 - value)
        backtest.loc[row, "skill_rmse"] = value
        backtest.loc[row, "skill_rmse_lower"] = value - 0.05
        backtest.loc[row, "skill_rmse_upper"] = value + 0.05 if model == "tie" else -0.01
    skill_test = pooled_skill_test(backtest)
    assert gate_failures(backtest, skill_test, "tie") == []
    assert gate_failures(backtest, skill_test, "loser") == [
        "2014: RMSE 108 significantly above persistence's 100 (RMSE skill -0.080, its 90% "
        "interval [-0.130, -0.010] is below 0)"
    ]
    table = build_comparison(
        [metrics_row(m) for m in ("tie", "loser", "baseline")], backtest, skill_test
    )
    assert champion_model(table) == "tie"


def test_without_a_model_passing_the_gate_the_champion_is_persistence():
    skills = {"m": {2014: 0.2, 2015: -0.1, 2016: 0.3, 2017: 0.3}}
    table = build_comparison(
        [metrics_row("m"), metrics_row("baseline")],
        backtest_table(skills, ROLES),
        pooled_skill_test(backtest_table(skills, ROLES)),
    )
    assert champion_model(table) is None
    assert table.set_index("model").loc["baseline", "warning"] == NO_CHAMPION_WARNING


def test_among_models_passing_the_gate_the_best_mean_choosing_skill_wins():
    skills = {
        "a": {2014: 0.10, 2015: 0.30, 2016: 0.0, 2017: 0.0},
        "b": {2014: 0.25, 2015: 0.20, 2016: 0.9, 2017: 0.9},
    }
    table = build_comparison(
        [metrics_row(m) for m in ("a", "b", "baseline")],
        backtest_table(skills, ROLES),
        pooled_skill_test(backtest_table(skills, ROLES)),
    )
    # a: 0.20 on the choosing origins, b: 0.225; the reporting origins never choose.
    assert champion_model(table) == "b"
    assert list(table["model"]) == ["b", "a", "baseline"]


def constructed_backtest(rng, models: dict) -> pd.DataFrame:
    """Predictions of two choosing origins and a reporting one, 400 heavy-tailed series each:
    persistence misses by a log-normal factor, each model's error is ``models[name](e, rng)``
    of persistence's error ``e``."""
    rows = []
    for origin, role in ((2014, "choosing"), (2015, "choosing"), (2016, "reporting")):
        actual = rng.lognormal(12, 1.5, size=400)
        persistence = actual * rng.lognormal(0, 0.25, size=400)
        for name, error_of in models.items():
            prediction = actual - error_of(actual - persistence, rng)
            rows += origin_rows(origin, role, name, actual, prediction, persistence)
    return pd.DataFrame(rows)


def test_the_gate_on_constructed_residuals_chooses_a_clear_winner_only():
    """'clear' cuts persistence's error by 15% on every origin (with noise of its own);
    'same' errs like persistence but independently of it; 'worse' errs 20% more. The pooled
    paired bootstrap passes 'clear' only, and the comparison says which test it applied."""
    rng = np.random.default_rng(5)

    def clear(e, rng):
        return 0.85 * e * rng.normal(1.0, 0.1, size=e.size)

    def same(e, rng):
        return e * rng.choice([-1.0, 1.0], size=e.size) * rng.permutation(np.ones(e.size))

    def worse(e, rng):
        return 1.2 * e

    def independent(e, rng):
        return rng.permutation(e)

    predictions = constructed_backtest(
        rng, {"clear": clear, "same": same, "worse": worse, "independent": independent}
    )
    years = {
        (m, o): [2010, o - 1] for m in predictions["model"].unique() for o in (2014, 2015, 2016)
    }
    scores = score_backtest(predictions, years, BacktestSettings(1000, 0.9, 42))
    test = scores.skill_test.set_index("model")
    assert list(scores.skill_test.columns) == list(SKILL_TEST_COLUMNS)
    assert test.loc["clear", "skill_rmse"] == pytest.approx(0.15, abs=0.02)
    assert test.loc["clear", "skill_rmse_lower"] > 0 and test.loc["clear", "skill_mae_lower"] > 0
    assert (
        test.loc["independent", "skill_rmse_lower"]
        < 0
        < test.loc["independent", "skill_rmse_upper"]
    )
    table = build_comparison(
        [metrics_row(m) for m in ("clear", "same", "worse", "independent", "baseline")],
        scores.table,
        scores.skill_test,
    )
    by_model = table.set_index("model")
    assert champion_model(table) == "clear"
    assert by_model["passes_gate"].fillna(False).astype(bool).to_dict() == {
        "clear": True,
        "same": False,
        "worse": False,
        "independent": False,
        "baseline": False,
    }
    assert "its 90% interval" in by_model.loc["independent", "warning"]
    assert "not below persistence's" in by_model.loc["worse", "warning"]
    assert "paired bootstrap of 1000 resamples" in by_model.loc["clear", "gate_test"]


def test_the_pooled_test_passes_a_model_whose_single_origin_interval_reaches_below_zero():
    """Dollar RMSE on a heavy-tailed target is dominated by a few series, so one origin's
    interval can reach below 0 for a model that wins on every origin; pooling the choosing
    origins tightens it. Built so: one origin's own interval reaches 0, the pooled one does
    not."""
    rng = np.random.default_rng(16)
    rows = []
    for origin in (2014, 2015, 2016):
        role = "choosing" if origin < 2016 else "reporting"
        actual = rng.lognormal(12, 2.0, size=300)
        persistence = actual * rng.lognormal(0, 0.3, size=300)
        model_error = (actual - persistence) * rng.lognormal(np.log(0.85), 0.3, size=300)
        rows += origin_rows(origin, role, "m", actual, actual - model_error, persistence)
    predictions = pd.DataFrame(rows)
    years = {("m", o): [2010, o - 1] for o in (2014, 2015, 2016)}
    scores = score_backtest(predictions, years, BacktestSettings(1000, 0.9, 42))
    choosing = scores.table.loc[
        (scores.table["model"] == "m") & (scores.table["role"] == "choosing")
    ]
    assert (choosing["skill_rmse"] > 0).all() and (choosing["skill_mae"] > 0).all()
    pooled = scores.skill_test.iloc[0]
    assert pooled["skill_rmse_lower"] > 0 and pooled["skill_mae_lower"] > 0
    table = build_comparison(
        [metrics_row("m"), metrics_row("baseline")], scores.table, scores.skill_test
    )
    assert champion_model(table) == "m"
    assert (choosing["skill_rmse_lower"] <= 0).any(), choosing[["origin", "skill_rmse_lower"]]


# ----------------------------------------------------------------------------- what is fitted


def test_loss_weights_follow_last_years_value_and_average_one():
    weights = loss_weights(np.array([-2.0, 1.0, 0.0, 5.0]), 1.0)
    np.testing.assert_allclose(weights, np.array([2.0, 1.0, 0.0, 5.0]) / 2.0)
    assert loss_weights(np.array([1.0, 2.0]), 0.0) is None
    assert loss_weights(np.zeros(3), 1.0) is None


def regressor(**params) -> TargetFormRegressor:
    """The workflow's ridge pipeline learning the relative form."""
    return TargetFormRegressor(
        build_model("ridge", {"alpha": 1.0}, 0), "relative", (LAG, ROLLING), **params
    )


def test_the_relative_form_weights_each_row_by_last_years_value(frame):
    """With loss_weight_power 1 the fit equals a fit with sample weights |persistence|: the
    big series decide, as they do in dollar RMSE."""
    train = frame.loc[frame["year"] < 2015]
    X, y = train[features_of(frame)], train[TARGET]
    persistence = train[LAG].where(train[LAG].notna(), train[ROLLING]).to_numpy()
    weighted = regressor(loss_weight_power=1.0).fit(X, y)
    z = signed_log(y) - signed_log(persistence)
    by_hand = build_model("ridge", {"alpha": 1.0}, 0).fit(
        X, z, ridge__sample_weight=np.abs(persistence) / np.abs(persistence).mean()
    )
    coefficients = weighted.regressor_.named_steps["ridge"].coef_
    np.testing.assert_allclose(coefficients, by_hand.named_steps["ridge"].coef_, rtol=1e-6)
    unweighted = regressor(loss_weight_power=0.0).fit(X, y).regressor_.named_steps["ridge"]
    assert not np.allclose(unweighted.coef_, coefficients, rtol=1e-3)


def test_max_log_change_bounds_predictions_and_zero_is_persistence(frame):
    train, test = frame.loc[frame["year"] < 2015], frame.loc[frame["year"] == 2015]
    features = features_of(frame)
    X, y = train[features], train[TARGET]
    persistence = test[LAG].where(test[LAG].notna(), test[ROLLING]).to_numpy()
    free = regressor().fit(X, y).predict(test[features])
    bounded = regressor(max_log_change=0.1).fit(X, y).predict(test[features])
    # Within 0.1 of last year's value in signed-log terms (about 10% for any sizeable value).
    change = signed_log(bounded) - signed_log(persistence)
    assert np.abs(change).max() <= 0.1 + 1e-9
    assert (np.abs(signed_log(free) - signed_log(persistence)) > 0.1).any()
    assert (bounded != free).any()
    none = regressor(**PERSISTENCE_PARAMS).fit(X, y).predict(test[features])
    np.testing.assert_array_equal(none, persistence)
    with pytest.raises(ModellingDataError, match="max_log_change must be >= 0"):
        regressor(max_log_change=-1.0).fit(X, y)
