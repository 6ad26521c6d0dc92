"""The best forecast of the modelling target the bundled generator allows.

:func:`drg_workflow.synthetic.draw_generator_state` keeps the latent per-pair effects that the
generated rows only show with noise. Knowing them for year t-1, the expected value of year t's
``w_total_median_profit`` of a series (the modelling target with the default ``target``) is a
pure function of the generator's model: next year's effects are an AR(1) step, its counts
Gamma-Poisson, its costs and charges noisy around them, and the target is the discharge-weighted
lower median of the severity rows' ``total_median_profit`` (v8's ``agg_severities``).
:func:`oracle_forecast` estimates that expectation by simulating year t many times.

No model can know more than this oracle (it sees the latent state, a model only the data), and
its forecast minimises the expected squared dollar error. Where even the oracle loses to
persistence in RMSE on a backtest origin, the loss comes from that year's noise, which no model
foresees; ``scripts/oracle_skill.py`` compares it with a build's backtest.
"""

from __future__ import annotations

import numpy as np

from drg_workflow.synthetic import GeneratorState, simulate_cells

__all__ = ["oracle_forecast", "series_indices", "simulated_targets"]

#: Series simulated together: bounds the memory of one batch to a few arrays of
#: ``batch x n_draws x 4`` values.
_SERIES_PER_BATCH = 1024


def series_indices(
    state: GeneratorState, facility_ids: np.ndarray, drg_codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each (``facility_ids``, ``drg_codes``) pair in the state's arrays.

    Raises:
        KeyError: If an id or code is not one the generator drew.
    """
    indices = []
    for known, wanted in ((state.facilities.ids, facility_ids), (state.drgs.codes, drg_codes)):
        wanted = np.asarray(wanted, dtype=np.int64)
        position = np.clip(np.searchsorted(known, wanted), 0, len(known) - 1)
        unknown = known[position] != wanted
        if unknown.any():
            raise KeyError(f"not drawn by this generator state: {wanted[unknown][:5].tolist()}")
        indices.append(position)
    return indices[0], indices[1]


def simulated_targets(
    state: GeneratorState,
    year: int,
    facility: np.ndarray,
    drg: np.ndarray,
    n_draws: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(len(facility), n_draws)`` simulated targets of year ``year``; NaN where a draw has no
    discharges (the series would have no row that year)."""
    counts, median_cost, median_charge = simulate_cells(state, year, facility, drg, n_draws, rng)
    total_median_profit = np.where(counts >= 1, (median_charge - median_cost) * counts, np.inf)
    return _lower_median_over_severities(total_median_profit, counts)


def _lower_median_over_severities(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Discharge-weighted lower median over the last axis (the severities), as v8's
    ``weighted_lower_median`` defines it; cells with no discharges hold ``inf`` and weigh
    nothing. NaN where no cell has discharges."""
    order = np.argsort(values, axis=-1)
    weights = np.take_along_axis(counts, order, axis=-1).cumsum(axis=-1)
    first_at_half = np.argmax(2 * weights >= weights[..., -1:], axis=-1)[..., None]
    median = np.take_along_axis(np.take_along_axis(values, order, axis=-1), first_at_half, -1)
    return np.where(weights[..., -1] > 0, median[..., 0], np.nan)


def oracle_forecast(
    state: GeneratorState,
    year: int,
    facility: np.ndarray,
    drg: np.ndarray,
    *,
    n_draws: int,
    seed: int,
) -> np.ndarray:
    """Expected target of each series (``facility``, ``drg`` indices) in 0-based ``year``,
    given the latent effects of ``year - 1``.

    The expectation is over ``n_draws`` simulations of the year, among those in which the
    series has a row (the backtest scores only series that have one); the simulation is seeded
    by ``seed``, so the forecast is reproducible. A series with a row in no draw gets NaN.

    Raises:
        ValueError: If ``year`` is 0 (no earlier year to start from) or not a year of ``state``.
    """
    if not 1 <= year < state.volume_effects.shape[0]:
        raise ValueError(
            f"year {year} needs the effects of year {year - 1}: the state has years 0.."
            f"{state.volume_effects.shape[0] - 1}"
        )
    facility, drg = np.asarray(facility), np.asarray(drg)
    rng = np.random.default_rng(seed)
    forecasts = np.empty(len(facility))
    for start in range(0, len(facility), _SERIES_PER_BATCH):
        batch = slice(start, start + _SERIES_PER_BATCH)
        simulated = simulated_targets(state, year, facility[batch], drg[batch], n_draws, rng)
        has_row = ~np.isnan(simulated)
        with np.errstate(invalid="ignore"):
            forecasts[batch] = np.where(has_row, simulated, 0.0).sum(axis=1) / has_row.sum(1)
    return forecasts
