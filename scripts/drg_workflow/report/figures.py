"""The report's charts: pure functions from data to a matplotlib :class:`Figure`.

Figures are made without pyplot (no global state, no display needed; rendered by Agg when
saved). Every figure has a title, axis labels with units and a footer naming the data it was
made from (``data``, e.g. ``"v13, sha256 0123456789ab"``) and the settings that matter.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from drg_workflow.modelling.intervals import ALL_ROWS, bound_columns
from drg_workflow.names import ROW_KEY

#: Rows drawn in scatter plots, and used for rank correlations, at most (a fixed, seeded
#: sample beyond that): drawing is what costs, about a second per 20,000 translucent points.
MAX_POINTS = 5_000
#: Seed of every sample drawn for a figure.
SAMPLE_SEED = 0
_STATE_COLOURS = {"COMPLETE": "#2e7d32", "PRUNED": "#ef6c00", "FAIL": "#c62828"}
_SPLIT_COLOURS = {"train": "#9e9e9e", "validation": "#1565c0", "test": "#c62828"}


def _figure(width: float = 8.0, height: float = 4.8) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _footer(figure: Figure, text: str) -> None:
    """Small grey provenance text under the figure, wrapped to the figure's width."""
    figure.get_layout_engine().set(h_pad=0.08)
    width = int(figure.get_figwidth() * 15)
    wrapped = "\n".join(textwrap.wrap(text, width=width))
    figure.supxlabel(wrapped, fontsize=8, color="#555555", x=0.01, ha="left")


def _dollars(value: float, _position: object = None) -> str:
    """Tick text in dollars: $1.2M, $35k, $800, -$1M."""
    sign, magnitude = ("-" if value < 0 else ""), abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{sign}${magnitude / limit:g}{suffix}"
    return f"{sign}${magnitude:g}"


DOLLARS = FuncFormatter(_dollars)


def feature_unit(feature: str) -> str:
    """The unit of a feature of the data: ``discharges`` for discharge counts, ``share`` for
    severity portions and ratios, ``bin`` for discharge bins, else ``dollars``."""
    if "discharges" in feature:
        return "discharges"
    if "portion" in feature or "ratio" in feature:
        return "share"
    if "bin" in feature:
        return "bin"
    if feature.endswith("_count") or feature in ROW_KEY:
        return "count" if feature.endswith("_count") else "code"
    return "dollars"


def sample_rows(frame: pd.DataFrame, n: int = MAX_POINTS) -> pd.DataFrame:
    """At most ``n`` rows of ``frame``: all of them, or a seeded random sample in row order."""
    if len(frame) <= n:
        return frame
    return frame.sample(n=n, random_state=SAMPLE_SEED).sort_index()


def rows_along_chain(lineage: pd.DataFrame) -> Figure:
    """Bar chart of the rows of every data version, in chain order, labelled with the
    transformation that made it (``lineage``: columns version, transformation, rows)."""
    figure = _figure(9.0, 4.8)
    ax = figure.add_subplot()
    positions = np.arange(len(lineage))
    bars = ax.bar(positions, lineage["rows"], color="#1565c0")
    ax.bar_label(bars, labels=[f"{r:,}" for r in lineage["rows"]], fontsize=7, padding=2)
    ax.set_xticks(
        positions,
        [f"{v}\n{t}" for v, t in zip(lineage["version"], lineage["transformation"], strict=True)],
        rotation=60,
        ha="right",
        fontsize=7,
    )
    ax.set_ylabel("rows (count)")
    ax.set_xlabel("data version and the transformation that made it")
    ax.set_title("Rows along the chain of data versions")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    ax.margins(y=0.12)
    first, last = lineage.iloc[0], lineage.iloc[-1]
    _footer(
        figure,
        f"from the metadata of {len(lineage)} versions; {first['version']} sha256 "
        f"{first['sha256']} -> {last['version']} sha256 {last['sha256']}",
    )
    return figure


def target_by_year(frame: pd.DataFrame, target: str, data: str) -> Figure:
    """The target's distribution per year as box plots on a log scale (dollars): box =
    quartiles, whiskers = 5th and 95th percentiles, count per year on top. Values <= 0 cannot
    be drawn on a log scale; their number is given in the footer."""
    figure = _figure()
    ax = figure.add_subplot()
    years = sorted(int(y) for y in frame["year"].unique())
    positive = frame[frame[target] > 0]
    groups = [positive.loc[positive["year"] == y, target].to_numpy() for y in years]
    ax.boxplot(
        groups,
        tick_labels=[str(y) for y in years],
        whis=(5, 95),
        showfliers=False,
        patch_artist=True,
        boxprops={"facecolor": "#bbdefb"},
        medianprops={"color": "#0d47a1"},
    )
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(DOLLARS)
    for i, group in enumerate(groups, start=1):
        ax.annotate(
            f"n={len(group):,}",
            (i, 1.0),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_xlabel("year")
    ax.set_ylabel(f"{target} (dollars, log scale)")
    ax.set_title(f"Distribution of the target {target} by year", pad=14)
    dropped = len(frame) - len(positive)
    _footer(
        figure,
        f"data {data}; boxes: quartiles, whiskers: 5th-95th percentile; "
        f"{dropped:,} rows with a value <= 0 not drawn",
    )
    return figure


def strongest_features(
    frame: pd.DataFrame, target: str, candidates: Sequence[str], n: int
) -> pd.Series:
    """The ``n`` candidates with the largest absolute Spearman correlation with the target
    (computed on at most 4 x :data:`MAX_POINTS` seeded sample rows), strongest first."""
    sample = sample_rows(frame[[target, *candidates]], 4 * MAX_POINTS)
    ranks = sample.rank()
    correlations = ranks[list(candidates)].corrwith(ranks[target]).dropna()
    order = correlations.abs().sort_values(ascending=False, kind="stable").index[:n]
    return correlations[order]


def lag_features_vs_target(
    frame: pd.DataFrame,
    target: str,
    correlations: pd.Series,
    data: str,
) -> Figure:
    """One log-log density panel (hexagonal bins, every row) per feature of ``correlations``
    (feature -> Spearman rho, see :func:`strongest_features`) against the target; units from
    :func:`feature_unit`."""
    features = list(correlations.index)
    columns = min(len(features), 2) or 1
    rows = max(1, -(-len(features) // columns))
    figure = _figure(4.2 * columns, 3.4 * rows + 0.4)
    for i, feature in enumerate(features):
        ax = figure.add_subplot(rows, columns, i + 1)
        shown = frame.loc[(frame[feature] > 0) & (frame[target] > 0), [feature, target]]
        if len(shown):
            ax.hexbin(
                shown[feature],
                shown[target],
                xscale="log",
                yscale="log",
                bins="log",
                gridsize=40,
                mincnt=1,
                cmap="Blues",
                linewidths=0.1,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        unit = feature_unit(feature)
        if unit == "dollars":
            ax.xaxis.set_major_formatter(DOLLARS)
        ax.yaxis.set_major_formatter(DOLLARS)
        ax.set_xlabel(f"{feature} ({unit}, log)", fontsize=8)
        ax.set_ylabel(f"{target} (dollars, log)", fontsize=8)
        ax.set_title(f"{feature}: Spearman rho {correlations[feature]:.2f}", fontsize=9)
        ax.tick_params(labelsize=7)
    figure.suptitle(f"The {len(features)} lag features most correlated with the target")
    _footer(
        figure,
        f"data {data}; all {len(frame):,} rows, darker hexagons hold more rows (log scale); "
        "values <= 0 not drawn",
    )
    return figure


def optimisation_history(trials: pd.DataFrame, model: str, data: str, settings: str) -> Figure:
    """Objective of each trial (its CV loss ratio: the larger of its capped RMSE and its MAE
    over persistence's on the year folds, 1 = persistence) in candidate order (round, then
    candidate), one colour per shard; pruned trials at the running ratio they were stopped at
    (crosses); the best value so far as a step line and persistence as a dashed one. ``trials``: see
    :func:`drg_workflow.report.tables.trials_frame`."""
    figure = _figure()
    ax = figure.add_subplot()
    shards = sorted(trials["shard"].unique())
    colours = [f"C{i % 10}" for i in range(len(shards))]
    for shard, colour in zip(shards, colours, strict=True):
        of_shard = trials[trials["shard"] == shard]
        done = of_shard[of_shard["state"] == "COMPLETE"]
        pruned = of_shard[of_shard["state"] == "PRUNED"]
        ax.scatter(done["trial"], done["value"], color=colour, s=22, label=f"shard {shard}")
        if len(pruned):
            ax.scatter(
                pruned["trial"],
                pruned["last_step_value"],
                color=colour,
                marker="x",
                s=22,
                label=f"shard {shard}, pruned (ratio at stop)",
            )
    complete = trials[trials["state"] == "COMPLETE"].sort_values("trial")
    if len(complete):
        ax.step(
            complete["trial"],
            complete["value"].cummin(),
            where="post",
            color="black",
            linewidth=1.2,
            label="best so far",
        )
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="persistence")
    ax.set_xlabel("trial (round, then candidate; all shards)")
    ax.set_ylabel("CV loss ratio (model / persistence)")
    ax.set_title(f"{model}: optimisation history")
    ax.legend(fontsize=7, ncols=2)
    counts = trials["state"].value_counts()
    _footer(
        figure,
        f"data {data}; {len(trials)} trials ({counts.get('COMPLETE', 0)} complete, "
        f"{counts.get('PRUNED', 0)} pruned); {settings}",
    )
    return figure


def param_importances(importances: Mapping[str, float], model: str, data: str) -> Figure:
    """Horizontal bars of Optuna's parameter importances (fANOVA, shares summing to 1), most
    important on top; a message instead of bars when there are none (fewer than two complete
    trials)."""
    figure = _figure(7.0, 1.6 + 0.35 * max(len(importances), 1))
    ax = figure.add_subplot()
    if importances:
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names], color="#6a1b9a")
        ax.set_xlim(0, 1)
    else:
        ax.text(0.5, 0.5, "not enough complete trials", ha="center", va="center")
        ax.set_yticks([])
    ax.set_xlabel("importance (share of the objective's variance, 0-1)")
    ax.set_ylabel("parameter")
    ax.set_title(f"{model}: hyperparameter importances")
    _footer(figure, f"data {data}; Optuna fANOVA over the complete trials")
    return figure


def trials_per_shard(trials: pd.DataFrame, data: str) -> Figure:
    """Stacked bars of complete, pruned and failed trials for every (model, shard): the
    tuning's fan-out into parallel jobs."""
    counts = trials.groupby(["model", "shard", "state"]).size().unstack("state", fill_value=0)
    figure = _figure(max(6.0, 0.7 * len(counts) + 2.5), 4.6)
    ax = figure.add_subplot()
    positions = np.arange(len(counts))
    bottom = np.zeros(len(counts))
    for state in ("COMPLETE", "PRUNED", "FAIL"):
        if state in counts:
            values = counts[state].to_numpy()
            ax.bar(positions, values, bottom=bottom, color=_STATE_COLOURS[state], label=state)
            bottom += values
    ax.set_xticks(
        positions,
        [f"{m}\nshard {s}" for m, s in counts.index],
        rotation=30,
        ha="right",
        fontsize=7,
    )
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, bottom.max() * 1.25 + 0.5)
    ax.set_xlabel("model and tuning shard (one Snakemake job each)")
    ax.set_ylabel("trials (count)")
    ax.set_title("Trials per tuning shard: complete vs pruned")
    ax.legend(fontsize=8, ncols=3, loc="upper center")
    _footer(figure, f"data {data}; all shards of a model share its one Optuna study")
    return figure


def predicted_vs_actual(
    predictions: pd.DataFrame, model: str, data: str, warning: str = ""
) -> Figure:
    """Predicted against actual target on the test years, log-log, with the identity line;
    ``warning`` (the model fails the skill gate) is printed in red on the figure.
    ``predictions``: columns split, year, y_true, y_pred."""
    test = predictions[predictions["split"] == "test"]
    positive = test[(test["y_true"] > 0) & (test["y_pred"] > 0)]
    shown = sample_rows(positive)
    figure = _figure(6.4, 6.0 if warning else 5.6)
    ax = figure.add_subplot()
    for i, year in enumerate(sorted(shown["year"].unique())):
        of_year = shown[shown["year"] == year]
        ax.scatter(
            of_year["y_true"],
            of_year["y_pred"],
            s=5,
            alpha=0.35,
            color=f"C{i}",
            label=str(year),
            rasterized=True,
        )
    if len(shown):
        low = min(shown["y_true"].min(), shown["y_pred"].min())
        high = max(shown["y_true"].max(), shown["y_pred"].max())
        ax.plot([low, high], [low, high], color="black", linewidth=1, label="identity")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(DOLLARS)
    ax.yaxis.set_major_formatter(DOLLARS)
    ax.set_xlabel("actual target (dollars, log)")
    ax.set_ylabel("predicted target (dollars, log)")
    ax.set_title(f"{model}: predicted vs actual, test years")
    ax.legend(fontsize=7, title="test year", title_fontsize=7)
    if warning:
        ax.text(
            0.02,
            0.98,
            "WARNING: fails the skill gate against persistence (backtest)",
            transform=ax.transAxes,
            va="top",
            color="#c62828",
            fontsize=9,
            fontweight="bold",
        )
    dropped = len(test) - len(positive)
    _footer(
        figure,
        f"data {data}; {len(test):,} test rows"
        + (f", {dropped:,} with a value <= 0 not drawn" if dropped else "")
        + (f", {len(shown):,} drawn (seeded sample)" if len(shown) < len(positive) else ""),
    )
    return figure


def residuals_by_year(predictions: pd.DataFrame, model: str, data: str) -> Figure:
    """Residuals (predicted - actual, dollars) per year and split, as box plots (quartiles,
    whiskers 5th-95th percentile, no outliers drawn)."""
    frame = predictions.assign(residual=predictions["y_pred"] - predictions["y_true"])
    keys = (
        frame[["split", "year"]].drop_duplicates().sort_values(["year", "split"], ignore_index=True)
    )
    groups = [
        frame.loc[(frame["split"] == s) & (frame["year"] == y), "residual"].to_numpy()
        for s, y in zip(keys["split"], keys["year"], strict=True)
    ]
    figure = _figure(max(6.0, 0.8 * len(groups) + 2.5), 4.8)
    ax = figure.add_subplot()
    boxes = ax.boxplot(
        groups,
        tick_labels=[f"{y}\n{s}" for s, y in zip(keys["split"], keys["year"], strict=True)],
        whis=(5, 95),
        showfliers=False,
        patch_artist=True,
        medianprops={"color": "black"},
    )
    for patch, split in zip(boxes["boxes"], keys["split"], strict=True):
        patch.set_facecolor(_SPLIT_COLOURS.get(split, "#9e9e9e"))
        patch.set_alpha(0.5)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.yaxis.set_major_formatter(DOLLARS)
    ax.set_xlabel("year and split")
    ax.set_ylabel("residual: predicted - actual (dollars)")
    ax.set_title(f"{model}: residuals by year")
    _footer(figure, f"data {data}; boxes: quartiles, whiskers: 5th-95th percentile")
    return figure


def feature_importances(
    permutation: pd.DataFrame,
    impurity: pd.DataFrame | None,
    model: str,
    data: str,
    top: int = 15,
) -> Figure:
    """The ``top`` permutation importances (RMSE increase in dollars on validation when the
    feature is shuffled, with its standard deviation) and, when given and non-empty, the
    model's impurity importances (shares) beside them.

    ``permutation``: columns feature, importance_mean, importance_std; ``impurity``: columns
    feature, importance.
    """
    has_impurity = impurity is not None and not impurity.empty
    shown = permutation.nlargest(top, "importance_mean").iloc[::-1]
    height = 1.6 + 0.28 * len(shown)
    figure = _figure(12.0 if has_impurity else 7.5, height)
    ax = figure.add_subplot(1, 2 if has_impurity else 1, 1)
    ax.barh(
        shown["feature"],
        shown["importance_mean"],
        xerr=shown["importance_std"],
        color="#00838f",
    )
    ax.xaxis.set_major_formatter(DOLLARS)
    ax.set_xlabel("RMSE increase when shuffled (dollars)")
    ax.set_ylabel("feature")
    ax.set_title("permutation importance (validation)", fontsize=10)
    ax.tick_params(axis="y", labelsize=7)
    if has_impurity:
        tree = impurity.nlargest(top, "importance").iloc[::-1]
        side = figure.add_subplot(1, 2, 2)
        side.barh(tree["feature"], tree["importance"], color="#558b2f")
        side.set_xlabel("impurity importance (share of the split gain, 0-1)")
        side.set_title("impurity importance (training)", fontsize=10)
        side.tick_params(axis="y", labelsize=7)
    figure.suptitle(f"{model}: top {len(shown)} feature importances")
    _footer(figure, f"data {data}")
    return figure


def forecast_changes(forecast: pd.DataFrame, model: str, year: int, data: str) -> Figure:
    """The distribution of the forecast's change over last year: (prediction - persistence) /
    |persistence| per (facility, DRG), in percent, clipped to +-100% (rows beyond are counted
    in the end bins), with the median marked."""
    persistence = forecast["persistence"].to_numpy(dtype=float)
    change = (forecast["prediction"].to_numpy(dtype=float) - persistence) / np.abs(persistence)
    change = 100 * change[np.isfinite(change)]
    median = float(np.median(change)) if change.size else 0.0
    figure = _figure()
    ax = figure.add_subplot()
    ax.hist(np.clip(change, -100, 100), bins=80, range=(-100, 100), color="#1565c0", alpha=0.8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.axvline(median, color="#c62828", linestyle="--", label=f"median {median:+.1f}%")
    ax.set_xlabel(f"forecast change over {year - 1} (% of last year's value, clipped at +-100%)")
    ax.set_ylabel("facility x DRG rows")
    ax.set_title(f"Forecast for {year} by {model}: change over last year")
    ax.legend(loc="upper right")
    _footer(figure, f"data {data}; {len(forecast)} rows, one per (facility, DRG) of {year - 1}")
    return figure


#: One colour per interval level, narrowest first.
_LEVEL_COLOURS = ("#1565c0", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f")


def _level_colour(index: int) -> str:
    return _LEVEL_COLOURS[index % len(_LEVEL_COLOURS)]


def _coverage_frame(
    by_level: Mapping[str, Mapping[str, Mapping[str, float]]], order: Sequence[str]
) -> pd.DataFrame:
    """``{level: {group: {rows, coverage, ...}}}`` (the forecast metadata's interval assessment)
    as a frame of coverage in percent: index group (in ``order``, then all rows), columns level
    (as numbers, ascending)."""
    frame = pd.DataFrame(
        {
            float(level): {group: 100 * figures["coverage"] for group, figures in groups.items()}
            for level, groups in by_level.items()
        }
    )
    rows = [g for g in order if g in frame.index] + [ALL_ROWS]
    return frame.reindex(index=rows, columns=sorted(frame.columns))


def coverage_by_group(
    assessment: Mapping[str, Any], order: Sequence[str], column: str, method: str, data: str
) -> Figure:
    """Each interval group's coverage at the backtest's reporting origins (test years the
    intervals never saw, calibrated on the choosing origins) at every level (filled markers:
    the group-conditional intervals; hollow: one split-conformal quantile for every row),
    against the nominal levels (dashed) and a band of +-3 points around them.

    ``assessment``: the forecast metadata's ``interval.test`` (``by_group`` and
    ``split_conformal_by_group``: ``{level: {group: {rows, coverage, ...}}}``); ``order``: the
    groups in their order.
    """
    mondrian = _coverage_frame(assessment["by_group"], order)
    plain = _coverage_frame(assessment["split_conformal_by_group"], order)
    groups = list(mondrian.index)
    positions = np.arange(len(groups))
    figure = _figure(max(8.0, 0.75 * len(groups) + 3.0), 5.2)
    ax = figure.add_subplot()
    for i, level in enumerate(mondrian.columns):
        colour = _level_colour(i)
        ax.axhspan(100 * level - 3, 100 * level + 3, color=colour, alpha=0.08, linewidth=0)
        ax.axhline(100 * level, color=colour, linestyle="--", linewidth=0.8)
        ax.plot(positions, mondrian[level], "o-", color=colour, label=f"{100 * level:g}% by group")
        ax.plot(
            positions,
            plain[level],
            "o",
            markerfacecolor="none",
            color=colour,
            alpha=0.7,
            label=f"{100 * level:g}% one quantile for all",
        )
    ax.set_xticks(positions, groups, rotation=35, ha="right", fontsize=8)
    ax.set_xlabel(f"interval group: {column} (the last point: all rows)")
    ax.set_ylabel("actual values inside the interval (%)")
    ax.set_ylim(max(0.0, float(np.nanmin([mondrian.min().min(), plain.min().min()])) - 8), 101)
    ax.set_title("Coverage of the prediction intervals by group at the reporting origins")
    ax.legend(loc="lower left", fontsize=7, ncol=len(mondrian.columns))
    _footer(
        figure,
        f"data {data}; {assessment['rows']:,} rows at the reporting origins "
        f"{_years(assessment['years'])}; split-conformal ({method}) calibrated per group on the "
        f"choosing origins {_years(assessment['calibration_years'])}; dashed: nominal level, "
        "band +-3 points",
    )
    return figure


def backtest_skill(backtest: pd.DataFrame, champion: str | None, level: float, data: str) -> Figure:
    """The backtest's skill against persistence per origin and model, RMSE and MAE side by
    side: a point per model and origin with its bootstrap interval as a bar, persistence as the
    line at 0, the choosing origins shaded and told apart from the reporting ones on the axis.
    ``backtest``: the backtest table (origin, role, model, skill_* columns); ``champion``: the
    model drawn as the champion (``None`` when persistence is the fallback)."""
    from drg_workflow.names import BASELINE_NAME, CHOOSING_ROLE

    origins = sorted(backtest["origin"].unique())
    roles = dict(zip(backtest["origin"], backtest["role"], strict=False))
    models = [m for m in dict.fromkeys(backtest["model"]) if m != BASELINE_NAME]
    position = {origin: i for i, origin in enumerate(origins)}
    width = 0.6 / max(len(models), 1)
    figure = _figure(max(8.0, 1.6 * len(origins) + 4.0), 4.8)
    axes = figure.subplots(1, 2, sharey=True)
    for ax, metric in zip(axes, ("rmse", "mae"), strict=True):
        for i, origin in enumerate(origins):
            if roles[origin] == CHOOSING_ROLE:
                ax.axvspan(i - 0.45, i + 0.45, color="#e3f2fd", zorder=0)
        ax.axhline(0, color="black", linewidth=1.2, label="persistence (skill 0)")
        for j, model in enumerate(models):
            rows = backtest.loc[backtest["model"] == model].sort_values("origin")
            x = rows["origin"].map(position).to_numpy() + (j - (len(models) - 1) / 2) * width
            skill = rows[f"skill_{metric}"].to_numpy(float)
            lower = rows[f"skill_{metric}_lower"].to_numpy(float)
            upper = rows[f"skill_{metric}_upper"].to_numpy(float)
            is_champion = model == champion
            ax.errorbar(
                x,
                skill,
                # A percentile interval need not hold the point itself (skewed resamples): the
                # bar then starts at the point.
                yerr=[np.clip(skill - lower, 0, None), np.clip(upper - skill, 0, None)],
                fmt="D" if is_champion else "o",
                markersize=8 if is_champion else 5,
                capsize=3,
                color=f"C{j}",
                label=f"{model} (champion)" if is_champion else model,
            )
        ax.set_xticks(range(len(origins)), [f"{origin}\n{roles[origin]}" for origin in origins])
        ax.set_xlim(-0.6, len(origins) - 0.4)
        ax.set_xlabel("origin year (shaded: chooses the champion)")
        ax.set_title(f"{metric.upper()} skill = 1 - {metric.upper()} / persistence's")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("skill against persistence (higher is better)")
    axes[1].legend(fontsize=7, loc="best")
    figure.suptitle("Backtest: each model refitted before each origin, skill per origin")
    _footer(
        figure,
        f"data {data}; bars: {100 * level:.0f}% bootstrap interval over the series of the "
        "origin year; the skill gate needs the MAE point and the RMSE interval's upper end above "
        "0 on every choosing origin, and the pooled intervals of both mean skills above 0",
    )
    return figure


def _years(years: Sequence[int]) -> str:
    return ", ".join(str(year) for year in years)


def interval_calibration(
    assessment: Mapping[str, Any], order: Sequence[str], method: str, data: str
) -> Figure:
    """Nominal against empirical coverage at the backtest's reporting origins: one thin line per
    interval group,
    all rows in black, one quantile for all rows dashed; on the diagonal is right."""
    mondrian = _coverage_frame(assessment["by_group"], order)
    plain = _coverage_frame(assessment["split_conformal_by_group"], order)
    levels = 100 * np.asarray(mondrian.columns, dtype=float)
    figure = _figure(6.4, 5.6)
    ax = figure.add_subplot()
    ax.plot([0, 100], [0, 100], color="#9e9e9e", linewidth=1, label="nominal = empirical")
    groups = [g for g in mondrian.index if g != ALL_ROWS]
    for i, group in enumerate(groups):
        ax.plot(
            levels,
            mondrian.loc[group],
            "-",
            color="#1565c0",
            alpha=0.35,
            linewidth=1,
            label="each group, by group" if i == 0 else None,
        )
        ax.plot(
            levels,
            plain.loc[group],
            ":",
            color="#c62828",
            alpha=0.35,
            linewidth=1,
            label="each group, one quantile for all" if i == 0 else None,
        )
    ax.plot(levels, mondrian.loc[ALL_ROWS], "o-", color="black", label="all rows, by group")
    lowest = float(min(levels.min(), np.nanmin(mondrian.to_numpy()), np.nanmin(plain.to_numpy())))
    ax.set_xlim(lowest - 5, 100)
    ax.set_ylim(lowest - 5, 100)
    ax.set_aspect("equal")
    ax.set_xlabel("nominal coverage (%)")
    ax.set_ylabel("empirical coverage at the reporting origins (%)")
    ax.set_title("Calibration of the prediction intervals")
    ax.legend(loc="upper left", fontsize=7)
    _footer(figure, f"data {data}; {len(groups)} groups; split-conformal ({method})")
    return figure


def interval_width_by_group(
    forecast: pd.DataFrame,
    levels: Sequence[float],
    groups: Sequence[str],
    column: str,
    year: int,
    data: str,
) -> Figure:
    """The median width (dollars, log scale) of the forecast's intervals in each group at
    every level, with the median prediction of the group for scale."""
    shown = [g for g in groups if g in set(forecast["interval_group"])]
    positions = np.arange(len(shown))
    width = 0.8 / max(len(levels), 1)
    figure = _figure(max(8.0, 0.75 * len(shown) + 3.0), 5.0)
    ax = figure.add_subplot()
    grouped = forecast.groupby("interval_group", sort=False)
    for i, level in enumerate(levels):
        lower, upper = bound_columns(level)
        widths = (forecast[upper] - forecast[lower]).groupby(forecast["interval_group"])
        medians = widths.median().reindex(shown)
        ax.bar(
            positions + (i - (len(levels) - 1) / 2) * width,
            medians,
            width=width,
            color=_level_colour(i),
            label=f"{100 * float(level):g}% interval",
        )
    predictions = grouped["prediction"].median().reindex(shown).abs()
    ax.plot(positions, predictions, "k_", markersize=18, mew=2, label="median |forecast|")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(DOLLARS)
    ax.set_xticks(positions, shown, rotation=35, ha="right", fontsize=8)
    ax.set_xlabel(f"interval group: {column}")
    ax.set_ylabel("median interval width (dollars, log scale)")
    ax.set_title(f"Width of the {year} forecast's intervals by group")
    ax.legend(loc="upper left", fontsize=8)
    _footer(figure, f"data {data}; {len(forecast):,} forecast rows")
    return figure
