"""Runs of equal keys in sorted arrays: where each (facility, DRG) series or group starts, each
row's group number, and values shifted within their series. Shared by the chain's group and
lag steps (:mod:`drg_workflow.transformations`) and the series history
(:mod:`drg_workflow.history`); vectorised, no pandas groupby.
"""

from __future__ import annotations

import numpy as np


def group_starts(sorted_keys: list[np.ndarray]) -> np.ndarray:
    """Start positions of the runs of equal keys in arrays already sorted by those keys."""
    n = len(sorted_keys[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for key in sorted_keys:
        change[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(change)


def group_ids(starts: np.ndarray, n_rows: int) -> np.ndarray:
    """Group number of every row, given the start positions of the runs of equal keys."""
    marker = np.zeros(n_rows, dtype=np.int64)
    marker[starts] = 1
    return np.cumsum(marker) - 1


def shifted_within(
    values: np.ndarray, series_id: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """``values`` shifted down ``steps`` rows within each series; second array says where valid."""
    shifted = np.full(len(values), np.nan)
    valid = np.zeros(len(values), dtype=bool)
    if steps < len(values):
        shifted[steps:] = values[:-steps]
        valid[steps:] = series_id[steps:] == series_id[:-steps]
    return shifted, valid
