"""Group-conditional (Mondrian) split-conformal prediction intervals, their coverage and their
interval (Winkler) score.

Split-conformal intervals take held-out residuals (the *calibration* rows: out-of-sample
predictions and the actual values) and put the ``ceil((n + 1) x level)``-th smallest absolute
residual around each new prediction; for rows exchangeable with the calibration rows that
covers the actual value with probability at least ``level``. One quantile for every row holds
that level *on average*: series whose errors are larger than the average (small hospitals, in
relative terms) are covered less often, the others more often.

*Mondrian* intervals (Vovk et al., 2003) calibrate each group of rows on its own residuals:
rows are put into groups by a column (``forecast.interval_groups``, by default last year's
discharges cut into equal-count bins), and each group gets its own quantile, so the guarantee
holds within every group. A group with too few calibration rows for a level
(``ceil((n + 1) x level) > n``) takes the pooled quantile of all rows for that level (flagged in
:attr:`MondrianIntervals.from_pooled`), and the quantiles are made non-decreasing over the
levels, so the intervals always nest (50% inside 80% inside 95%).

Residuals are taken in the scale of ``forecast.interval_method``: ``signed_log`` (differences of
signed logs, so an interval's width grows with its prediction, as this heavy-tailed target's
errors do) or ``absolute`` (dollars).

Everything here is vectorised over rows: the per-group quantiles come from one sort of all
residuals by (group, residual), never a Python function applied per group or row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from drg_workflow.errors import DrgWorkflowError
from drg_workflow.signed_log import signed_exp, signed_log

#: The ways residuals become an interval (``forecast.interval_method``; the schema lists them).
INTERVAL_METHODS: tuple[str, ...] = ("signed_log", "absolute")
#: The group of rows whose grouping column is missing.
MISSING_GROUP = "missing"
#: The label of the one bin of a column whose values are all alike.
SINGLE_BIN = "every value"
#: The name of all rows together in coverage tables.
ALL_ROWS = "all"
#: Columns of :func:`interval_assessment`.
ASSESSMENT_COLUMNS: tuple[str, ...] = (
    "level",
    "group",
    "rows",
    "coverage",
    "winkler_score",
    "median_width",
)


class IntervalError(DrgWorkflowError):
    """Intervals cannot be calibrated or applied with these rows or settings."""


def level_name(level: float) -> str:
    """A level as it appears in column names and metadata keys: ``0.8`` -> ``"0.8"``."""
    return f"{float(level):g}"


def bound_columns(level: float) -> tuple[str, str]:
    """The forecast's columns of one level's interval: ``lower_<level>``, ``upper_<level>``."""
    name = level_name(level)
    return f"lower_{name}", f"upper_{name}"


def residual_scale(values: np.ndarray | pd.Series, method: str) -> np.ndarray:
    """``values`` in the scale residuals are taken in: signed log or dollars."""
    if method not in INTERVAL_METHODS:
        raise IntervalError(
            f"unknown interval method {method!r}; known: {', '.join(INTERVAL_METHODS)}"
        )
    return signed_log(values) if method == "signed_log" else np.asarray(values, dtype=float)


def _check_levels(levels: Sequence[float]) -> np.ndarray:
    array = np.asarray(sorted({float(level) for level in levels}), dtype=float)
    if array.size == 0 or not ((array > 0) & (array < 1)).all():
        raise IntervalError(f"interval levels must be numbers in (0, 1), not {list(levels)}")
    return array


# --------------------------------------------------------------------------- groups


def _edge_text(edge: float) -> str:
    """A bin edge as a label shows it: ``1,250`` for a whole number, else up to 4 decimals."""
    if float(edge).is_integer():
        return f"{int(edge):,}"
    return f"{edge:,.4f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class GroupBinning:
    """How rows are put into interval groups (``forecast.interval_groups``).

    With ``bins``: the column is cut at ``edges``, the inner quantiles of the calibration rows'
    values (``bins`` equal-count bins, up to ties; the quantiles are observed values; edges that
    coincide, as on heavily tied counts, are merged, so there may be fewer bins); a value ``v``
    falls in bin ``i`` when ``edges[i-1] <= v < edges[i]``. Without (``edges`` is ``None``):
    each value of the column is its own group. A missing value is the group :data:`MISSING_GROUP`.
    """

    column: str
    bins: int | None
    edges: tuple[float, ...] | None

    @classmethod
    def fit(cls, values: np.ndarray | pd.Series, column: str, bins: int | None) -> GroupBinning:
        """The binning of ``column`` for the calibration rows' ``values``."""
        if bins is None:
            return cls(column=column, bins=None, edges=None)
        if bins < 1:
            raise IntervalError(f"interval groups: bins must be at least 1, not {bins}")
        numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
        present = numbers[np.isfinite(numbers)]
        if present.size == 0:
            raise IntervalError(f"interval groups: column {column!r} has no values to bin")
        # Observed values as edges (not interpolated ones), so counts keep whole-number edges.
        inner = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf")
        edges = tuple(float(e) for e in np.unique(inner))
        return cls(column=column, bins=int(bins), edges=edges)

    def labels(self) -> list[str]:
        """The bins' group labels in order (``< 12``, ``12 to < 30``, ..., ``>= 400``); empty
        for a column whose values are the groups."""
        if self.edges is None:
            return []
        if not self.edges:
            return [SINGLE_BIN]
        text = [_edge_text(edge) for edge in self.edges]
        middle = [f"{low} to < {high}" for low, high in zip(text[:-1], text[1:], strict=True)]
        return [f"< {text[0]}", *middle, f">= {text[-1]}"]

    def assign(self, values: np.ndarray | pd.Series) -> np.ndarray:
        """The group label of each value (an array of strings)."""
        series = pd.Series(values).reset_index(drop=True)
        missing = series.isna().to_numpy()
        if self.edges is None:
            text = series.astype("string").fillna(MISSING_GROUP).to_numpy(dtype=object)
            return np.where(missing, MISSING_GROUP, text).astype(str)
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
        index = np.searchsorted(np.asarray(self.edges, dtype=float), numbers, side="right")
        labels = np.asarray(self.labels(), dtype=object)
        assigned = labels[np.minimum(index, len(labels) - 1)]
        return np.where(missing | np.isnan(numbers), MISSING_GROUP, assigned).astype(str)

    def order(self, labels: np.ndarray) -> list[str]:
        """The groups present in ``labels`` in display order: bins in order (or values sorted
        as numbers where they are numbers), then :data:`MISSING_GROUP`."""
        present = set(np.unique(labels).tolist())
        if self.edges is not None:
            ordered = [label for label in self.labels() if label in present]
        else:
            values = sorted(present - {MISSING_GROUP})
            numeric = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
            if numeric.notna().all():
                values = [v for _, v in sorted(zip(numeric.tolist(), values, strict=True))]
            ordered = values
        return ordered + ([MISSING_GROUP] if MISSING_GROUP in present else [])

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "bins": self.bins, "edges": self.edges}


# --------------------------------------------------------------------------- quantiles


def conformal_quantiles(
    scores: np.ndarray, group_codes: np.ndarray, n_groups: int, levels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The split-conformal quantile of each group and level, with the finite-sample correction.

    ``scores``: non-negative residuals; ``group_codes``: each row's group, ``0 .. n_groups-1``.
    Returns ``(quantiles, counts)``: ``quantiles[g, l]`` is the ``ceil((n_g + 1) x
    levels[l])``-th smallest score of group ``g`` (``inf`` when that rank exceeds its ``n_g``
    rows), ``counts[g]`` is ``n_g``. One sort of all rows by (group, score); no loop over rows
    or groups.
    """
    scores = np.asarray(scores, dtype=float)
    codes = np.asarray(group_codes, dtype=np.int64)
    if scores.shape != codes.shape:
        raise IntervalError("every residual needs its group")
    if np.isnan(scores).any():
        raise IntervalError(f"{int(np.isnan(scores).sum())} calibration residuals are missing")
    counts = np.bincount(codes, minlength=n_groups)[:n_groups]
    if scores.size == 0:
        return np.full((n_groups, levels.size), np.inf), counts
    sorted_scores = scores[np.lexsort((scores, codes))]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # The small tolerance keeps (n + 1) x level that is an integer in exact arithmetic
    # (e.g. 20 x 0.95) from rounding up to the next rank.
    ranks = np.ceil((counts[:, None] + 1) * levels[None, :] - 1e-9).astype(np.int64)
    valid = ranks <= counts[:, None]
    index = np.clip(starts[:, None] + ranks - 1, 0, scores.size - 1)
    return np.where(valid, sorted_scores[index], np.inf), counts


@dataclass(frozen=True)
class MondrianIntervals:
    """Split-conformal intervals calibrated per group (see the module's docstring).

    ``quantiles[g][l]`` is the residual quantile of group ``groups[g]`` at ``levels[l]`` (in the
    scale of ``method``), non-decreasing over the levels; ``pooled[l]`` the quantile of all
    calibration rows together (plain split-conformal), used for a group that has too few rows
    for a level (``from_pooled[g][l]``) and for a group the calibration rows never had.
    """

    method: str
    levels: tuple[float, ...]
    binning: GroupBinning
    groups: tuple[str, ...]
    quantiles: tuple[tuple[float, ...], ...]
    pooled: tuple[float, ...]
    n_calibration: tuple[int, ...]
    from_pooled: tuple[tuple[bool, ...], ...]

    @classmethod
    def calibrate(
        cls,
        y_true: np.ndarray | pd.Series,
        y_pred: np.ndarray | pd.Series,
        group_values: np.ndarray | pd.Series,
        *,
        method: str,
        levels: Sequence[float],
        column: str,
        bins: int | None,
        binning: GroupBinning | None = None,
    ) -> MondrianIntervals:
        """Calibrate on held-out actual values ``y_true``, their out-of-sample predictions
        ``y_pred`` and each row's value of the grouping ``column`` (binned into ``bins``
        equal-count bins of these rows, or used as it is with ``bins=None``; or by the given
        ``binning``, so that two calibrations share their groups)."""
        level_array = _check_levels(levels)
        truth, prediction = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
        if truth.size == 0:
            raise IntervalError("no calibration rows for the prediction intervals")
        scores = np.abs(residual_scale(truth, method) - residual_scale(prediction, method))
        if binning is None:
            binning = GroupBinning.fit(group_values, column, bins)
        labels = binning.assign(group_values)
        groups = binning.order(labels)
        codes = pd.Index(groups).get_indexer(labels)
        by_group, counts = conformal_quantiles(scores, codes, len(groups), level_array)
        pooled, _ = conformal_quantiles(scores, np.zeros(scores.size, int), 1, level_array)
        from_pooled = ~np.isfinite(by_group)
        quantiles = np.maximum.accumulate(np.where(from_pooled, pooled, by_group), axis=1)
        return cls(
            method=method,
            levels=tuple(float(level) for level in level_array),
            binning=binning,
            groups=tuple(groups),
            quantiles=tuple(tuple(float(q) for q in row) for row in quantiles),
            pooled=tuple(float(q) for q in np.maximum.accumulate(pooled[0])),
            n_calibration=tuple(int(n) for n in counts),
            from_pooled=tuple(tuple(bool(f) for f in row) for row in from_pooled),
        )

    def group_labels(self, group_values: np.ndarray | pd.Series) -> np.ndarray:
        """Each row's group, by this calibration's binning."""
        return self.binning.assign(group_values)

    def row_quantiles(self, labels: np.ndarray) -> np.ndarray:
        """``(rows, levels)``: each row's quantiles by its group label; groups the calibration
        never saw take the pooled quantiles."""
        table = np.vstack([np.asarray(self.quantiles, dtype=float), np.asarray(self.pooled)])
        codes = pd.Index(list(self.groups)).get_indexer(np.asarray(labels))
        return table[np.where(codes < 0, len(self.groups), codes)]

    def bounds(
        self, y_pred: np.ndarray | pd.Series, group_values: np.ndarray | pd.Series
    ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """``{level: (lower, upper)}`` around each prediction, by its grouping column's value;
        every interval holds its prediction and the levels nest."""
        scaled = residual_scale(y_pred, self.method)
        q = self.row_quantiles(self.group_labels(group_values))
        result = {}
        for i, level in enumerate(self.levels):
            lower, upper = scaled - q[:, i], scaled + q[:, i]
            if self.method == "signed_log":
                lower, upper = signed_exp(lower), signed_exp(upper)
            result[level] = (lower, upper)
        return result

    def to_json(self) -> dict[str, Any]:
        """The calibration as metadata: method, levels, binning and, per group, its rows and
        quantile per level (and whether it took the pooled one)."""
        return {
            "method": self.method,
            "levels": list(self.levels),
            # Metadata is written with sorted keys: the groups' order is kept here.
            "groups": {**self.binning.to_json(), "order": list(self.groups)},
            "pooled_quantiles": dict(zip(map(level_name, self.levels), self.pooled, strict=True)),
            "by_group": {
                group: {
                    "calibration_rows": n,
                    "quantiles": dict(zip(map(level_name, self.levels), q, strict=True)),
                    "pooled_levels": [
                        level_name(level)
                        for level, flag in zip(self.levels, flags, strict=True)
                        if flag
                    ],
                }
                for group, n, q, flags in zip(
                    self.groups, self.n_calibration, self.quantiles, self.from_pooled, strict=True
                )
            },
        }


# --------------------------------------------------------------------------- assessment


def winkler_scores(
    y_true: np.ndarray | pd.Series,
    lower: np.ndarray | pd.Series,
    upper: np.ndarray | pd.Series,
    level: float,
) -> np.ndarray:
    """The interval (Winkler) score of each row, in the unit of ``y_true``: the interval's width
    plus ``2 / (1 - level)`` times the distance by which the actual value falls outside it.
    Lower is better; it rewards narrow intervals and punishes misses in proportion to their
    size, so a level's intervals of different methods can be compared by its mean."""
    truth = np.asarray(y_true, dtype=float)
    low, high = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    penalty = 2.0 / (1.0 - float(level))
    below, above = np.maximum(low - truth, 0.0), np.maximum(truth - high, 0.0)
    return (high - low) + penalty * (below + above)


def interval_assessment(
    y_true: np.ndarray | pd.Series,
    bounds: Mapping[float, tuple[np.ndarray, np.ndarray]],
    labels: np.ndarray,
    groups: Sequence[str],
) -> pd.DataFrame:
    """Coverage, mean Winkler score and median width of each level's intervals, per group and
    for all rows (group :data:`ALL_ROWS`): one row per (level, group), groups in the order of
    ``groups`` (those without rows left out; labels not among them after them), then all
    rows.

    ``bounds``: ``{level: (lower, upper)}`` of :meth:`MondrianIntervals.bounds`; ``labels``:
    each row's group.
    """
    truth = np.asarray(y_true, dtype=float)
    extra = sorted(set(np.asarray(labels).tolist()) - set(groups))
    categories = [*groups, *extra]
    parts = []
    for level, (lower, upper) in bounds.items():
        rows = pd.DataFrame(
            {
                "group": pd.Categorical(np.asarray(labels), categories=categories),
                "covered": (truth >= lower) & (truth <= upper),
                "winkler_score": winkler_scores(truth, lower, upper, level),
                "width": np.asarray(upper) - np.asarray(lower),
            }
        )
        by_group = rows.groupby("group", observed=True).agg(
            rows=("covered", "size"),
            coverage=("covered", "mean"),
            winkler_score=("winkler_score", "mean"),
            median_width=("width", "median"),
        )
        overall = pd.DataFrame(
            {
                "rows": [len(rows)],
                "coverage": [rows["covered"].mean()],
                "winkler_score": [rows["winkler_score"].mean()],
                "median_width": [rows["width"].median()],
            },
            index=[ALL_ROWS],
        )
        table = pd.concat([by_group.set_axis(by_group.index.astype(str)), overall])
        parts.append(table.rename_axis("group").reset_index().assign(level=float(level)))
    result = pd.concat(parts, ignore_index=True)
    result["rows"] = result["rows"].astype(int)
    return result.loc[:, list(ASSESSMENT_COLUMNS)]


def assessment_json(assessment: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """An :func:`interval_assessment` as metadata: ``{level: {group: {rows, coverage,
    winkler_score, median_width}}}``, figures rounded to 6 significant digits."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for row in assessment.itertuples(index=False):
        result.setdefault(level_name(row.level), {})[str(row.group)] = {
            "rows": int(row.rows),
            "coverage": float(f"{row.coverage:.6g}"),
            "winkler_score": float(f"{row.winkler_score:.6g}"),
            "median_width": float(f"{row.median_width:.6g}"),
        }
    return result
