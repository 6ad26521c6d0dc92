"""A small synthetic v13 frame for tests and smoke runs of the modelling code.

Not a substitute for the raw-data generator of the workflow: it skips the v0..v12 chain and
builds v13's columns directly, with calendar lags, missing years and a persistent target.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import LAG_LIST, TARGET


def synthetic_v13(
    n_facilities: int = 6,
    n_drgs: int = 10,
    first_year: int = 2009,
    last_year: int = 2017,
    missing_rate: float = 0.12,
    seed: int = 0,
) -> pd.DataFrame:
    """v13-shaped frame: keys, the four same-year columns, the target and ``<col>_lag1`` /
    ``<col>_rolling2`` for the 15 lag-list columns.

    Each (facility, DRG) has a persistent profit level with a mild trend and noise, so last
    year's target predicts this year's (the persistence baseline is meaningful). Random
    (facility, DRG, year) cells are absent, so calendar lag1 is sometimes NaN while rolling2
    (mean of t-1, t-2) is not; rows with no previous year are dropped as in v12.
    """
    rng = np.random.default_rng(seed)
    years = np.arange(first_year, last_year + 1)
    rows = []
    for f in range(n_facilities):
        facility_id = 1000 + 7 * f
        size = rng.lognormal(3.0, 0.6)
        for d in range(n_drgs):
            drg = 100 + 3 * d
            level = rng.lognormal(11.0, 1.0) * (1 + 0.2 * f)
            trend = rng.normal(0.03, 0.02)
            for i, year in enumerate(years):
                if i > 0 and rng.random() < missing_rate:
                    continue
                discharges = max(1, int(rng.poisson(size * (1 + 0.1 * d))))
                sev = rng.dirichlet([4, 3, 2, 1])
                cost = rng.lognormal(9.5, 0.3) * (1 + trend) ** i
                charge = cost * rng.uniform(2, 5)
                profit = level * (1 + trend) ** i * rng.normal(1.0, 0.08)
                rows.append(
                    {
                        "year": int(year),
                        "facility_id": facility_id,
                        "apr_drg_code": drg,
                        "sum_discharges": float(discharges),
                        "severity_1_portion": sev[0],
                        "severity_2_portion": sev[1],
                        "severity_3_portion": sev[2],
                        "severity_4_portion": sev[3],
                        "w_mean_charge": charge,
                        "w_mean_cost": cost,
                        "w_mean_profit": charge - cost,
                        "w_total_mean_profit": (charge - cost) * discharges,
                        "w_total_mean_cost": cost * discharges,
                        "w_median_charge": charge * 0.95,
                        "w_median_cost": cost * 0.95,
                        "w_median_profit": profit / discharges,
                        "w_total_median_profit": profit,
                        "w_total_median_cost": cost * 0.95 * discharges,
                    }
                )
    df = pd.DataFrame(rows)
    df["facility_drg_count"] = df.groupby(["year", "facility_id"])["apr_drg_code"].transform(
        "nunique"
    )
    df["year_drg_count"] = df.groupby("year")["apr_drg_code"].transform("nunique")
    df["ratio_drg_facility_vs_year"] = df["facility_drg_count"] / df["year_drg_count"]
    volume = df.groupby(["year", "facility_id"])["sum_discharges"].transform("sum")
    df["yearly_discharge_bin"] = volume.groupby(df["year"]).transform(
        lambda s: pd.qcut(s.rank(method="first"), q=5, labels=False, duplicates="drop")
    )

    # Calendar lags: look up (facility, DRG, year - 1) and (year - 2).
    keys = ["facility_id", "apr_drg_code", "year"]
    values = df[keys + list(LAG_LIST)]
    prev1 = df[keys].assign(year=df["year"] - 1).merge(values, on=keys, how="left")
    prev2 = df[keys].assign(year=df["year"] - 2).merge(values, on=keys, how="left")
    for col in LAG_LIST:
        df[f"{col}_lag1"] = prev1[col].to_numpy()
        df[f"{col}_rolling2"] = pd.concat([prev1[col], prev2[col]], axis=1).mean(axis=1).to_numpy()
    df = df[df[f"{TARGET}_rolling2"].notna()]
    df = df.drop(columns=[c for c in LAG_LIST if c != TARGET])
    return df.sort_values(keys, ignore_index=True)
