"""Synthetic raw (v0) data in exactly the schema of NY State's inpatient cost file.

The real "Hospital Inpatient Cost Transparency: Beginning 2009" CSV cannot be downloaded from the
build machines, so the workflow generates a stand-in with the same 14 columns, dtypes, key
structure and, as far as the downstream chain cares, the same statistical shape:

* facilities whose volumes span orders of magnitude (lognormal), with their own cost level and
  charge-to-cost ratio (2-5x);
* APR DRGs with a long popularity tail, so ``drop_rare_drgs`` (total discharges <= 5000) really
  drops a share of the codes at full scale;
* four severities, more discharges at low severity, higher cost at high severity;
* (facility, DRG) pairs that enter, leave and skip years, so calendar lags and row lags differ;
* slowly varying (AR(1)) per-pair volume and cost effects, so last year's values carry signal for
  this year's total median profit (the modelling target).

How ``scale`` maps to sizes
---------------------------
Rows are roughly ``n_facilities x n_drgs x n_years x 1.8`` (about 60% of (facility, DRG) pairs
report in a year, with ~3 severities each), so both dimensions shrink with the square root of
``scale`` to make the row count roughly linear in it::

    n_facilities = max(6, round(210 * sqrt(scale)))
    n_drgs       = max(12, round(316 * sqrt(scale)))

``scale=1`` gives ~1.08 million rows over 2009-2017 (the real file has 1,081,672). The floors
keep tiny test frames (``scale=0.002`` -> 9 facilities x 14 DRGs, ~2,000 rows) exercising every
transformation; below ``scale`` ~0.0015 the floors bind and the row count stops shrinking.

The per-pair volume distribution does not depend on ``scale`` (small frames stay realistic), so a
DRG's total discharges grow with the number of facilities, i.e. like ``sqrt(scale)``, not like
``scale``. :func:`equivalent_rare_drg_threshold` converts the real ``drop_rare_drgs`` threshold
into the one that drops about the same share of DRG codes at a given scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from drg_workflow.errors import DrgWorkflowError
from drg_workflow.raw_schema import RAW_COLUMNS, SEVERITY_DESCRIPTIONS

__all__ = [
    "FULL_N_DRGS",
    "FULL_N_FACILITIES",
    "RAW_COLUMNS",
    "GeneratorState",
    "draw_generator_state",
    "equivalent_rare_drg_threshold",
    "generate_raw",
    "simulate_cells",
    "sizes_for_scale",
]

#: Number of facilities and APR DRG codes at ``scale=1`` (as in the real 2009-2017 file).
FULL_N_FACILITIES = 210
FULL_N_DRGS = 316
#: Floors that keep tiny frames useful for tests.
MIN_FACILITIES = 6
MIN_DRGS = 12

_N_SEV = 4
# Tuned so that scale=1 gives ~1.08 M rows and ~20 M discharges (the real file has about 2.3-2.5
# M discharges a year): the overall volume level, and the spread of facility sizes and of DRG
# popularity (log-sd). The DRG spread is what makes ~25% of codes "rare" (<= 5000 discharges in
# nine years) while the most common codes have hundreds of thousands.
_LOG_VOLUME_LEVEL = math.log(5.5)
_FACILITY_LOG_SD = 1.0
_DRG_LOG_SD = 1.7
# Share of surgical DRGs and their cost premium.
_SURGICAL_SHARE = 0.3
_SURGICAL_COST_FACTOR = 2.2
# Average severity mix (more discharges at low severity) and the cost multipliers by severity.
_SEVERITY_MIX = np.array([0.42, 0.33, 0.18, 0.07])
_SEVERITY_COST = np.array([1.0, 1.45, 2.3, 5.0])
# Year-over-year persistence (AR(1) coefficient) and stationary sd of the per-pair effects.
_VOLUME_AR = 0.9
_VOLUME_SD = 0.35
_COST_AR = 0.85
_COST_SD = 0.15
_INFLATION = 0.03
# Charge-to-cost ratio range of facilities, and the clip of the per-cell noise around it.
_CHARGE_RATIO_RANGE = (2.0, 5.0)
_CHARGE_NOISE_CLIP = (0.9, 1.1)

# Word lists for deterministic, obviously made-up names (no real hospital is named on purpose).
_NAME_TREES = (
    "Maple", "Cedar", "Oak", "Birch", "Willow", "Pine", "Elm", "Aspen", "Hawthorn", "Juniper",
    "Laurel", "Spruce", "Alder", "Linden", "Hazel", "Chestnut", "Sycamore", "Poplar",
)  # fmt: skip
_NAME_PLACES = (
    "Valley", "Ridge", "Lake", "Harbor", "Hill", "Creek", "Falls", "Point", "Grove", "Meadow",
    "Brook", "Park", "Springs", "Bay", "Heights", "Crossing",
)  # fmt: skip
_NAME_KINDS = (
    "Hospital", "General Hospital", "Medical Center", "Memorial Hospital", "Community Hospital",
    "Regional Medical Center", "Health Center",
)  # fmt: skip
_DRG_SYSTEMS = (
    "Cardiac", "Respiratory", "Renal", "Hepatobiliary", "Pancreatic", "Gastrointestinal",
    "Esophageal", "Neurological", "Cerebrovascular", "Spinal", "Musculoskeletal", "Hip & Femur",
    "Knee", "Skin & Subcutaneous", "Endocrine", "Thyroid", "Urinary Tract", "Prostate",
    "Uterine & Adnexa", "Obstetric", "Neonatal", "Hematologic", "Lymphatic", "Infectious",
    "Ear, Nose & Throat", "Ocular", "Vascular", "Pulmonary", "Metabolic", "Psychiatric",
)  # fmt: skip
_DRG_MEDICAL = (
    "Disorders", "Infections", "Malignancy", "Injuries", "Failure", "Symptoms & Signs",
    "Congenital Anomalies", "Disorders Except Malignancy", "Inflammation", "Obstruction",
    "Degenerative Disorders", "Complications Of Treatment",
)  # fmt: skip
_DRG_SURGICAL = (
    "Procedures", "Major Procedures", "Minor Procedures", "Implant Procedures",
    "Procedures Except Implant", "Reconstructive Procedures", "Transplant",
    "Excision Procedures", "Bypass Procedures", "Replacement Procedures",
    "Procedures For Malignancy", "Revision Procedures",
)  # fmt: skip


def sizes_for_scale(scale: float) -> tuple[int, int]:
    """Return ``(n_facilities, n_drgs)`` generated at ``scale``.

    Both shrink with ``sqrt(scale)`` so that their product, and hence the row count, is roughly
    linear in ``scale``; floors of 6 facilities and 12 DRGs keep tiny frames useful.
    """
    if not (math.isfinite(scale) and scale > 0):
        raise DrgWorkflowError(f"scale must be a positive finite number, got {scale!r}")
    root = math.sqrt(scale)
    return (
        max(MIN_FACILITIES, round(FULL_N_FACILITIES * root)),
        max(MIN_DRGS, round(FULL_N_DRGS * root)),
    )


def equivalent_rare_drg_threshold(scale: float, threshold: float) -> float:
    """Translate a full-scale ``drop_rare_drgs`` threshold to the frame generated at ``scale``.

    A DRG's total discharges are a sum over facilities of a scale-independent volume, so they are
    proportional to the number of facilities. Scaling the threshold the same way drops about the
    same share of DRG codes as ``threshold`` does at ``scale=1``.
    """
    n_facilities, _ = sizes_for_scale(scale)
    return threshold * n_facilities / FULL_N_FACILITIES


def _spread_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    """Standard normal quantiles at ``(i + 0.5) / n`` in random order.

    Using evenly spaced quantiles instead of random draws keeps the shape of the distribution
    (e.g. the DRG popularity tail) the same at every size and seed; only who gets which value is
    random.
    """
    dist = NormalDist()
    quantiles = np.array([dist.inv_cdf((i + 0.5) / n) for i in range(n)])
    return rng.permutation(quantiles)


def _standardise(x: np.ndarray) -> np.ndarray:
    """Centre and scale ``x`` to mean 0 and sd 1 (sd 0 -> all zeros)."""
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _names(
    rng: np.random.Generator, n: int, parts: tuple[tuple[str, ...], ...], fallback: str
) -> np.ndarray:
    """Return ``n`` distinct names, each joining one word from every list in ``parts``.

    Names are drawn without replacement from the Cartesian product (decoded in mixed radix);
    beyond its size, ``fallback.format(i)`` is used. Returns an object array of ``str``.
    """
    radices = [len(p) for p in parts]
    n_combos = math.prod(radices)
    picks = rng.choice(n_combos, size=min(n, n_combos), replace=False)
    names = []
    for pick in picks.tolist():
        words = []
        for words_list, radix in zip(parts, radices, strict=True):
            pick, digit = divmod(pick, radix)
            words.append(words_list[digit])
        names.append(" ".join(words))
    names.extend(fallback.format(i + 1) for i in range(n_combos, n))
    return np.array(names, dtype=object)


def _ar1_step(
    rng: np.random.Generator,
    previous: np.ndarray | None,
    shape: tuple[int, ...],
    rho: float,
    sd: float,
) -> np.ndarray:
    """One step of a stationary AR(1) with coefficient ``rho`` and marginal sd ``sd``.

    With ``previous=None`` the draw comes from the stationary distribution N(0, sd^2).
    """
    shock = rng.standard_normal(shape)
    if previous is None:
        return sd * shock
    return _ar1_next(previous, rho, sd, shock)


def _ar1_next(previous: np.ndarray, rho: float, sd: float, shock: np.ndarray) -> np.ndarray:
    """The stationary AR(1)'s next value from ``previous`` and standard normal ``shock``
    (broadcast together)."""
    return rho * previous + sd * math.sqrt(1.0 - rho * rho) * shock


def generate_raw(*, seed: int, scale: float, first_year: int, last_year: int) -> pd.DataFrame:
    """Generate a synthetic raw (v0) frame in exactly the real file's schema.

    Every argument is required: the settings' defaults live in the config schema
    (``raw.synthetic``), not here.

    Args:
        seed: Seed of ``numpy.random.default_rng``; the same ``(seed, scale, years)`` always give
            an identical frame.
        scale: Size relative to the real 2009-2017 file: ``scale=1`` gives ~1.08 M rows with 210
            facilities and 316 APR DRG codes; sizes follow :func:`sizes_for_scale` (both counts
            shrink like ``sqrt(scale)``, so rows are roughly linear in ``scale``).
        first_year: First discharge year (inclusive).
        last_year: Last discharge year (inclusive).

    Returns:
        A frame with the 14 :data:`RAW_COLUMNS` in order: ``int64`` Year, Facility Id, APR DRG
        Code, APR Severity Of Illness Code and Discharges (>= 1); ``float64`` Mean/Median Charge
        and Cost (dollars, rounded to cents, >= 0); the text columns in pandas' default string
        dtype (the one ``pandas.read_csv`` gives them). Rows are sorted by, and unique on,
        (Year, Facility Id, APR DRG Code, APR Severity Of Illness Code), with a fresh RangeIndex.

    Raises:
        DrgWorkflowError: If ``scale`` is not positive or ``last_year < first_year``.
    """
    if last_year < first_year:
        raise DrgWorkflowError(f"last_year ({last_year}) is before first_year ({first_year})")
    n_years = last_year - first_year + 1
    state = draw_generator_state(seed=seed, scale=scale, n_years=n_years)
    return _assemble(state.blocks, state.facilities, state.drgs, first_year)


@dataclass(frozen=True)
class GeneratorState:
    """Everything :func:`generate_raw` draws, including what its output only shows with noise.

    ``volume_effects`` and ``cost_effects`` have shape ``(n_years, n_facilities, n_drgs)``: the
    AR(1) per-pair effects of each year (0-based). They are what an oracle forecaster knows and
    a model can only estimate from the data (see :mod:`drg_workflow.generator_oracle`).
    """

    facilities: _Facilities
    drgs: _Drgs
    pairs: _Pairs
    volume_effects: np.ndarray
    cost_effects: np.ndarray
    blocks: list[dict[str, np.ndarray]]


def draw_generator_state(*, seed: int, scale: float, n_years: int) -> GeneratorState:
    """Draw the traits, the latent per-pair effects and the yearly rows of ``n_years`` years.

    :func:`generate_raw` assembles its frame from ``blocks``; the same arguments always give
    the same state.
    """
    n_fac, n_drg = sizes_for_scale(scale)
    # One generator drawn from in a fixed order (facilities, DRGs, pairs, then year by year):
    # changing that order changes every value, which the pinned-output tests would catch.
    rng = np.random.default_rng(seed)
    facilities = _draw_facilities(rng, n_fac, n_years)
    drgs = _draw_drgs(rng, n_drg)
    pairs = _draw_pairs(rng, facilities, drgs, n_years)
    blocks, volume_effects, cost_effects = _draw_years(rng, facilities, drgs, pairs, n_years)
    return GeneratorState(
        facilities, drgs, pairs, np.stack(volume_effects), np.stack(cost_effects), blocks
    )


def simulate_cells(
    state: GeneratorState,
    year: int,
    facility: np.ndarray,
    drg: np.ndarray,
    n_draws: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_draws`` fresh draws of 0-based ``year`` for the (``facility``, ``drg``) pairs
    (index arrays into ``state``), from the effects of ``year - 1`` on, as the generator draws
    a year: the effects' AR(1) step, Gamma-Poisson counts, noisy costs and charges.

    Returns ``(discharges, median_cost, median_charge)``, each of shape
    ``(len(facility), n_draws, 4)`` (the last axis: severities). A cell with 0 discharges would
    have no row; its money values are those of 1 discharge.
    """
    shape = (len(facility), n_draws)
    volume = _ar1_next(
        state.volume_effects[year - 1, facility, drg][:, None],
        _VOLUME_AR,
        _VOLUME_SD,
        rng.standard_normal(shape),
    )
    cost = _ar1_next(
        state.cost_effects[year - 1, facility, drg][:, None],
        _COST_AR,
        _COST_SD,
        rng.standard_normal(shape),
    )
    pairs = state.pairs
    expected = (
        np.exp(pairs.log_volume[facility, drg][:, None] + volume)[:, :, None]
        * pairs.severity_share[facility, drg][:, None, :]
    )
    counts = _discharge_counts(rng, expected)
    median_cost = _median_cost(
        (pairs.cost[facility, drg][:, None] * state.drgs.severity_cost[drg])[:, None, :],
        cost[:, :, None],
        year,
        np.maximum(counts, 1),
        rng.standard_normal(counts.shape),
    )
    charge_ratio = state.facilities.charge_ratio[facility][:, None, None]
    median_charge = median_cost * charge_ratio * _charge_noise(rng, counts.shape)[0]
    return counts, median_cost, median_charge


@dataclass(frozen=True)
class _Facilities:
    """Per-facility traits, indexed by facility number (sorted by id)."""

    ids: np.ndarray
    names: np.ndarray
    log_size: np.ndarray  # log volume level
    size_z: np.ndarray  # log_size standardised
    cost: np.ndarray  # cost level multiplier
    severity_tilt: np.ndarray  # towards higher severities if positive
    charge_ratio: np.ndarray  # charges / costs
    first_year: np.ndarray  # 0-based year offsets of the first and last year reported
    last_year: np.ndarray


def _draw_facilities(rng: np.random.Generator, n_fac: int, n_years: int) -> _Facilities:
    """Facilities sorted by id, so the generated rows come out in key order."""
    ids = np.sort(rng.choice(np.arange(1, max(10_000, 4 * n_fac)), n_fac, replace=False))
    names = _names(rng, n_fac, (_NAME_TREES, _NAME_PLACES, _NAME_KINDS), "Facility {:05d} Hospital")
    log_size = _FACILITY_LOG_SD * _spread_normal(rng, n_fac)
    size_z = _standardise(log_size)
    # Big (teaching) hospitals are costlier and see sicker patients.
    cost = np.exp(0.1 * size_z + 0.2 * rng.standard_normal(n_fac))
    severity_tilt = 0.1 * size_z + 0.15 * rng.standard_normal(n_fac)
    charge_ratio = rng.uniform(*_CHARGE_RATIO_RANGE, n_fac)
    # A few facilities open late or close early (whole facility-years missing). Years are
    # 0-based offsets; drawing over all years keeps this valid for a one-year frame.
    opens = np.where(rng.random(n_fac) < 0.05, rng.integers(0, n_years, n_fac), 0)
    closes = np.where(rng.random(n_fac) < 0.05, rng.integers(0, n_years, n_fac), n_years)
    closes = np.maximum(closes, opens)  # every facility reports at least one year
    return _Facilities(
        ids, names, log_size, size_z, cost, severity_tilt, charge_ratio, opens, closes
    )


@dataclass(frozen=True)
class _Drgs:
    """Per-APR-DRG traits, indexed by DRG number (sorted by code)."""

    codes: np.ndarray
    descriptions: np.ndarray
    ms_codes: np.ndarray  # "M" (medical) or "S" (surgical)
    ms_descriptions: np.ndarray
    log_popularity: np.ndarray
    base_cost: np.ndarray  # cost of one discharge at the lowest severity
    log_severity_share: np.ndarray  # (n_drg, 4): log of the severity mix
    severity_cost: np.ndarray  # (n_drg, 4): cost multipliers, rising with severity


def _draw_drgs(rng: np.random.Generator, n_drg: int) -> _Drgs:
    """APR DRGs sorted by code, medical or surgical, with a long popularity tail."""
    codes = np.sort(rng.choice(np.arange(1, max(1000, 3 * n_drg)), n_drg, replace=False))
    surgical = rng.random(n_drg) < _SURGICAL_SHARE
    descriptions = np.empty(n_drg, dtype=object)
    for is_surgical, words in ((False, _DRG_MEDICAL), (True, _DRG_SURGICAL)):
        mask = surgical == is_surgical
        descriptions[mask] = _names(
            rng, int(mask.sum()), (_DRG_SYSTEMS, words), "Other Condition Group {:03d}"
        )
    log_popularity = _DRG_LOG_SD * _spread_normal(rng, n_drg)
    base_cost = np.exp(math.log(7000.0) + 0.5 * rng.standard_normal(n_drg))
    base_cost *= np.where(surgical, _SURGICAL_COST_FACTOR, 1.0)
    # Per-DRG severity mix (gamma draws = Dirichlet around the average mix); surgical DRGs lean
    # towards higher severity. Log shares, so facility tilts can be added before normalising.
    severity_gamma = rng.gamma(40.0 * _SEVERITY_MIX, size=(n_drg, _N_SEV))
    log_share = np.log(severity_gamma / severity_gamma.sum(axis=1, keepdims=True))
    log_share += np.where(surgical, 0.15, 0.0)[:, None] * (np.arange(_N_SEV) - 1.5)
    # Per-DRG severity cost multipliers, sorted so cost always rises with severity.
    severity_cost = np.sort(_SEVERITY_COST * np.exp(0.1 * rng.standard_normal((n_drg, _N_SEV))), 1)
    return _Drgs(
        codes,
        descriptions,
        np.where(surgical, "S", "M").astype(object),
        np.where(surgical, "Surgical", "Medical").astype(object),
        log_popularity,
        base_cost,
        log_share,
        severity_cost,
    )


@dataclass(frozen=True)
class _Pairs:
    """(facility, DRG) pairs: arrays of shape (n_fac, n_drg), or (n_fac, n_drg, 4)."""

    offered: np.ndarray  # whether the facility ever treats the DRG
    first_year: np.ndarray  # 0-based year offsets between which it is offered
    last_year: np.ndarray
    log_volume: np.ndarray  # expected log discharges before the yearly effect
    severity_share: np.ndarray  # (n_fac, n_drg, 4): severity mix, summing to 1
    cost: np.ndarray  # cost of one discharge before severity, year and per-pair effects


def _draw_pairs(
    rng: np.random.Generator, facilities: _Facilities, drgs: _Drgs, n_years: int
) -> _Pairs:
    """Which facility treats which DRG in which years, and how much of it."""
    shape = (len(facilities.ids), len(drgs.codes))
    drg_z = _standardise(drgs.log_popularity)
    # Big facilities offer more DRGs; rare DRGs are offered by fewer facilities.
    offer_logit = 2.4 + 1.0 * facilities.size_z[:, None] + 0.8 * drg_z[None, :]
    offered = rng.random(shape) < 1.0 / (1.0 + np.exp(-offer_logit))
    # Some pairs start after the first year and some stop before the last (service lines open
    # and close); empty [entry, exit] ranges just mean "never offered".
    entry = np.where(rng.random(shape) < 0.12, rng.integers(0, n_years, shape), 0)
    exit_ = np.where(rng.random(shape) < 0.10, rng.integers(0, n_years, shape), n_years)
    entry = np.maximum(entry, facilities.first_year[:, None])
    exit_ = np.minimum(exit_, facilities.last_year[:, None])
    # Static specialisation (some facilities are big in some DRGs) on top of size x popularity.
    log_volume = (
        _LOG_VOLUME_LEVEL
        + facilities.log_size[:, None]
        + drgs.log_popularity[None, :]
        + 0.6 * rng.standard_normal(shape)
    )
    # Facility severity tilt applied to each DRG's mix, then renormalised: (n_fac, n_drg, 4).
    tilt = facilities.severity_tilt[:, None, None] * (np.arange(_N_SEV) - 1.5)
    log_share = drgs.log_severity_share[None, :, :] + tilt
    share = np.exp(log_share - log_share.max(axis=2, keepdims=True))
    share /= share.sum(axis=2, keepdims=True)
    cost = facilities.cost[:, None] * drgs.base_cost[None, :]
    return _Pairs(offered, entry, exit_, log_volume, share, cost)


def _draw_years(
    rng: np.random.Generator, facilities: _Facilities, drgs: _Drgs, pairs: _Pairs, n_years: int
) -> tuple[list[dict[str, np.ndarray]], list[np.ndarray], list[np.ndarray]]:
    """One block of rows per year (0-based ``year``; facility, DRG and severity numbers ``f``,
    ``d``, ``s``; discharges ``n``; the money columns), in key order within the year; and each
    year's volume and cost effects, shape (n_fac, n_drg)."""
    shape = pairs.offered.shape
    # Cell grid indices for one year, in (facility, DRG, severity) order.
    fac_idx, drg_idx, sev_idx = (a.ravel() for a in np.indices((*shape, _N_SEV), dtype=np.int64))
    volume_effect: np.ndarray | None = None
    cost_effect: np.ndarray | None = None
    blocks: list[dict[str, np.ndarray]] = []
    volume_effects: list[np.ndarray] = []
    cost_effects: list[np.ndarray] = []
    for t in range(n_years):
        # Slowly varying per-pair effects carry last year's level into this year; the first
        # year starts from the stationary distribution.
        volume_effect = _ar1_step(rng, volume_effect, shape, _VOLUME_AR, _VOLUME_SD)
        cost_effect = _ar1_step(rng, cost_effect, shape, _COST_AR, _COST_SD)
        volume_effects.append(volume_effect)
        cost_effects.append(cost_effect)
        active = pairs.offered & (pairs.first_year <= t) & (t <= pairs.last_year)
        expected = np.exp(pairs.log_volume + volume_effect)[:, :, None] * pairs.severity_share
        counts = _discharge_counts(rng, expected).ravel()
        keep = (counts >= 1) & np.repeat(active.ravel(), _N_SEV)
        f, d, s, n = fac_idx[keep], drg_idx[keep], sev_idx[keep], counts[keep]
        median_cost = _median_cost(
            pairs.cost[f, d] * drgs.severity_cost[d, s],
            cost_effect[f, d],
            t,
            n,
            rng.standard_normal(n.size),
        )
        money = _money(rng, median_cost, n, facilities.charge_ratio[f])
        year = np.full(n.size, t, dtype=np.int64)
        blocks.append({"year": year, "f": f, "d": d, "s": s, "n": n.astype(np.int64), **money})
    return blocks, volume_effects, cost_effects


def _discharge_counts(rng: np.random.Generator, expected: np.ndarray) -> np.ndarray:
    """Discharges of cells with ``expected`` mean counts, in the shape of ``expected``.

    Gamma-Poisson (negative binomial) counts: many small counts, a few large, and zeros (absent
    rows) mostly for low-volume cells, which makes pairs skip years.
    """
    return rng.poisson(expected * rng.gamma(4.0, 0.25, expected.shape))


def _median_cost(
    base_cost: np.ndarray, cost_effect: np.ndarray, t: int, n: np.ndarray, noise: np.ndarray
) -> np.ndarray:
    """Median cost of cells with ``n`` discharges in 0-based year ``t``.

    ``base_cost`` is the pair's cost times the severity's multiplier, ``cost_effect`` the pair's
    effect that year and ``noise`` standard normal draws.
    """
    # The median of n cases is less noisy than one case.
    spread = 0.05 + 0.35 / np.sqrt(n)
    return base_cost * np.exp(cost_effect) * (1.0 + _INFLATION) ** t * np.exp(spread * noise)


def _charge_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Multiplicative noise of the median and the mean charge around cost x charge ratio,
    shape ``(2, *shape)``."""
    return np.clip(np.exp(0.04 * rng.standard_normal((2, *shape))), *_CHARGE_NOISE_CLIP)


def _money(
    rng: np.random.Generator, median_cost: np.ndarray, n: np.ndarray, charge_ratio: np.ndarray
) -> dict[str, np.ndarray]:
    """Mean cost and both charges of cells with ``n`` discharges and ``median_cost``."""
    # Costs are right-skewed, so mean > median; with 1 or 2 discharges they coincide.
    skew = np.where(n <= 2, 0.0, rng.gamma(2.0, 0.12, n.size))
    mean_cost = median_cost * (1.0 + skew)
    charge_noise = _charge_noise(rng, (n.size,))
    median_charge = median_cost * charge_ratio * charge_noise[0]
    mean_charge = np.where(
        n <= 2,
        median_charge,
        # max(): a mean charge never falls below the median charge, as with costs.
        np.maximum(mean_cost * charge_ratio * charge_noise[1], median_charge),
    )
    return {
        "mean_charge": mean_charge,
        "median_charge": median_charge,
        "mean_cost": mean_cost,
        "median_cost": median_cost,
    }


def _assemble(
    blocks: list[dict[str, np.ndarray]], facilities: _Facilities, drgs: _Drgs, first_year: int
) -> pd.DataFrame:
    """The raw frame from the yearly blocks: codes and names looked up, money in cents."""
    cols = {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}
    f, d, s = cols["f"], cols["d"], cols["s"]
    severity_names = np.array([SEVERITY_DESCRIPTIONS[k + 1] for k in range(_N_SEV)], dtype=object)
    data = {
        "Year": cols["year"] + first_year,
        "Facility Id": facilities.ids[f].astype(np.int64),
        "Facility Name": pd.array(facilities.names[f], dtype="str"),
        "APR DRG Code": drgs.codes[d].astype(np.int64),
        "APR Severity Of Illness Code": (s + 1).astype(np.int64),
        "APR DRG Description": pd.array(drgs.descriptions[d], dtype="str"),
        "APR Severity Of Illness Description": pd.array(severity_names[s], dtype="str"),
        "APR Medical Surgical Code": pd.array(drgs.ms_codes[d], dtype="str"),
        "APR Medical Surgical Description": pd.array(drgs.ms_descriptions[d], dtype="str"),
        "Discharges": cols["n"],
        "Mean Charge": np.round(cols["mean_charge"], 2),
        "Median Charge": np.round(cols["median_charge"], 2),
        "Mean Cost": np.round(cols["mean_cost"], 2),
        "Median Cost": np.round(cols["median_cost"], 2),
    }
    return pd.DataFrame(data, columns=RAW_COLUMNS)
