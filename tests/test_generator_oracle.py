"""The generator's oracle forecast (drg_workflow.generator_oracle): its simulated year has the
distribution of the year the generator really drew, so its forecast is the best there is."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from modelling_frames import small_config
from scipy import stats

from drg_workflow.chain import configured_parameters
from drg_workflow.generator_oracle import oracle_forecast, series_indices, simulated_targets
from drg_workflow.synthetic import draw_generator_state, generate_raw
from drg_workflow.transformations import apply_transformation

#: Big enough (about 3,000 series a year) that the calibration test sees a shift of a few
#: percent, small enough to simulate in seconds.
SETTINGS = {"seed": 11, "scale": 0.08, "first_year": 2009, "last_year": 2013}
YEARS = (2011, 2012, 2013)


@pytest.fixture(scope="module")
def state():
    return draw_generator_state(
        seed=SETTINGS["seed"],
        scale=SETTINGS["scale"],
        n_years=SETTINGS["last_year"] - SETTINGS["first_year"] + 1,
    )


@pytest.fixture(scope="module")
def targets() -> pd.DataFrame:
    """The target of every series and year, computed by the workflow's own chain up to v8
    (``agg_severities``), from the raw frame the same settings generate."""
    config = small_config(raw={"synthetic": SETTINGS})
    frame = generate_raw(**SETTINGS)
    for step in config["chain"]:
        frame = apply_transformation(
            step["transformation"], frame, configured_parameters(config, step["transformation"])
        )
        if step["transformation"] == "agg_severities":
            break
    return frame[["year", "facility_id", "apr_drg_code", config["target"]]].rename(
        columns={config["target"]: "actual"}
    )


def test_the_year_the_generator_drew_is_a_typical_draw_of_the_oracles_simulation(state, targets):
    """Probability integral transform: where each series' real target falls among the oracle's
    simulations of its year. If the simulation has the generator's distribution, those ranks
    are uniform over thousands of series; a wrong effect, inflation, count or median would
    shift them."""
    rng = np.random.default_rng(5)
    ranks = []
    for year in YEARS:
        rows = targets[targets["year"] == year]
        facility, drg = series_indices(state, rows["facility_id"], rows["apr_drg_code"])
        offset = year - SETTINGS["first_year"]
        simulated = simulated_targets(state, offset, facility, drg, 200, rng)
        has_row = ~np.isnan(simulated)
        below = (simulated < rows["actual"].to_numpy()[:, None]) & has_row
        # A uniform share of one draw's step makes the ranks continuous (randomised PIT).
        ranks.append((below.sum(axis=1) + rng.random(len(rows))) / (has_row.sum(axis=1) + 1))
    ranks = np.concatenate(ranks)
    assert len(ranks) > 8_000
    assert stats.kstest(ranks, "uniform").pvalue > 0.001


def test_the_oracle_forecast_beats_persistence_and_its_own_rescaling(state, targets):
    """The expected value minimises the expected squared error: pooled over years it beats
    persistence and the same forecast 10% lower or higher."""
    wide = targets.pivot_table(
        index=["facility_id", "apr_drg_code"], columns="year", values="actual"
    )
    errors: dict[str, list[np.ndarray]] = {"oracle": [], "persistence": [], "0.9": [], "1.1": []}
    for year in YEARS:
        pairs = wide[[year - 1, year]].dropna()
        facility, drg = series_indices(
            state,
            pairs.index.get_level_values("facility_id"),
            pairs.index.get_level_values("apr_drg_code"),
        )
        forecast = oracle_forecast(
            state, year - SETTINGS["first_year"], facility, drg, n_draws=300, seed=year
        )
        actual = pairs[year].to_numpy()
        errors["oracle"].append(actual - forecast)
        errors["persistence"].append(actual - pairs[year - 1].to_numpy())
        errors["0.9"].append(actual - 0.9 * forecast)
        errors["1.1"].append(actual - 1.1 * forecast)
    mse = {name: float(np.mean(np.concatenate(e) ** 2)) for name, e in errors.items()}
    assert mse["oracle"] < 0.8 * mse["persistence"]
    assert mse["oracle"] < min(mse["0.9"], mse["1.1"])


def test_the_oracle_is_reproducible_and_refuses_what_it_cannot_know(state):
    facility, drg = series_indices(state, state.facilities.ids[:3], state.drgs.codes[:3])
    first = oracle_forecast(state, 2, facility, drg, n_draws=50, seed=1)
    # Only the effects of the years before the forecast year are read.
    unknown_future = replace(
        state,
        volume_effects=np.where(np.arange(5)[:, None, None] >= 2, np.nan, state.volume_effects),
        cost_effects=np.where(np.arange(5)[:, None, None] >= 2, np.nan, state.cost_effects),
    )
    assert np.array_equal(
        first, oracle_forecast(unknown_future, 2, facility, drg, n_draws=50, seed=1)
    )
    with pytest.raises(ValueError, match="needs the effects of year -1"):
        oracle_forecast(state, 0, facility, drg, n_draws=50, seed=1)
    with pytest.raises(KeyError, match="not drawn"):
        series_indices(state, np.array([state.facilities.ids.max() + 1]), state.drgs.codes[:1])
