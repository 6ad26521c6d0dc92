"""The signed log and its inverse: a log scale for money that can be zero or negative.

Profits are heavy-tailed and can be negative, so changes between years are measured as
differences of signed logs; the target forms (:mod:`drg_workflow.modelling.target_form`) and the
series-history features (:mod:`drg_workflow.history`) share these two functions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def signed_log(values: np.ndarray | pd.Series) -> np.ndarray:
    """``sign(x) * log1p(|x|)``: a log that keeps the sign and maps 0 to 0."""
    x = np.asarray(values, dtype=float)
    # The same operations as np.sign(x) * np.log1p(np.abs(x)), in one buffer: the ridge
    # pipeline applies this to every feature of every fold of every trial.
    out = np.abs(x)
    np.log1p(out, out=out)
    out *= np.sign(x)
    return out


def signed_exp(values: np.ndarray | pd.Series) -> np.ndarray:
    """The inverse of :func:`signed_log`: ``sign(z) * expm1(|z|)``."""
    z = np.asarray(values, dtype=float)
    return np.sign(z) * np.expm1(np.abs(z))
