"""The champion's model card: what the registered model is, what it was trained and checked on,
what it is for and not for, where it is weak, and how to load it.

:func:`model_card` turns the champion's facts (:class:`ModelCardFacts`, gathered from the
workflow's outputs by the ``model_card`` rule) into a small document of blocks (headings,
paragraphs, lists, tables, code), which :func:`to_markdown` renders for MLflow's model registry
(the registered version's description and an artifact of its run) and :func:`to_html` as a
self-contained page for the report. Pure functions: the same facts give the same bytes.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from drg_workflow.names import BASELINE_NAME, CHOOSING_ROLE, REPORTING_ROLE

from .intervals import ALL_ROWS
from .tracking import champion_uri

#: Columns of a backtest table the card shows, when there is one (one row per origin year);
#: the training years and the skills' bootstrap intervals where the table has them.
BACKTEST_COLUMNS: tuple[str, ...] = (
    "origin",
    "role",
    "rmse",
    "mae",
    "skill_rmse",
    "skill_mae",
)


@dataclass(frozen=True)
class ModelCardFacts:
    """Everything the card states, each from the workflow's outputs.

    ``metrics``: the champion's row of the comparison (``val_rmse``, ``test_mae``, ...) and
    ``baseline_metrics`` the persistence baseline's; ``intervals``: the forecast metadata's
    ``interval`` (method, levels, groups, calibration, test assessment); ``backtest``: the
    champion's skill per origin year (columns of :data:`BACKTEST_COLUMNS`), when the workflow
    ran a backtest; ``None`` otherwise. ``limitations``: known limitations beyond those every
    card states (:func:`default_limitations`).
    """

    registered_model: str
    version: str | None
    model: str
    params: Mapping[str, Any]
    target: str
    target_form: str
    n_features: int
    data_version: str
    data_sha256: str
    training_years: tuple[int, int]
    validation_years: tuple[int, int]
    test_years: tuple[int, int]
    forecast_year: int
    #: The MLflow run of the registered model, by its name (``<model>-refit``): its id is new
    #: with every build and would make the card's bytes differ.
    run_name: str | None
    tracking_uri: str
    metrics: Mapping[str, float]
    baseline_metrics: Mapping[str, float]
    intervals: Mapping[str, Any]
    backtest: pd.DataFrame | None = None
    limitations: Sequence[str] = field(default_factory=tuple)
    #: The skill gate as the comparison applied it to this model: ``gate_test`` (what was
    #: tested), ``passes_gate``, ``choosing_origins`` and the mean skills over them with their
    #: interval (``skill_rmse``, ``skill_rmse_lower``, ...); ``None`` without a comparison.
    gate: Mapping[str, Any] | None = None


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Items:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame


@dataclass(frozen=True)
class Code:
    text: str
    language: str = "python"


Block = Heading | Paragraph | Items | Table | Code


def _money(value: float) -> str:
    return f"${value:,.0f}"


def _years(first_last: Sequence[int]) -> str:
    first, last = int(first_last[0]), int(first_last[-1])
    return str(first) if first == last else f"{first}-{last}"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _skill_table(facts: ModelCardFacts) -> pd.DataFrame:
    rows = []
    for split, label in (("val", "validation"), ("test", "test")):
        years = facts.validation_years if split == "val" else facts.test_years
        model_rmse, base_rmse = (
            facts.metrics[f"{split}_rmse"],
            facts.baseline_metrics[f"{split}_rmse"],
        )
        model_mae, base_mae = facts.metrics[f"{split}_mae"], facts.baseline_metrics[f"{split}_mae"]
        rows.append(
            {
                "years": f"{label} {_years(years)}",
                "RMSE": _money(model_rmse),
                "persistence RMSE": _money(base_rmse),
                "skill (RMSE)": f"{1 - model_rmse / base_rmse:+.3f}" if base_rmse else "",
                "MAE": _money(model_mae),
                "persistence MAE": _money(base_mae),
                "skill (MAE)": f"{1 - model_mae / base_mae:+.3f}" if base_mae else "",
            }
        )
    return pd.DataFrame(rows)


def _skill_text(row: pd.Series, metric: str) -> str:
    text = f"{row[f'skill_{metric}']:+.3f}"
    if f"skill_{metric}_lower" in row.index:
        text += f" [{row[f'skill_{metric}_lower']:+.3f}, {row[f'skill_{metric}_upper']:+.3f}]"
    return text


def _backtest_table(backtest: pd.DataFrame) -> pd.DataFrame:
    shown = backtest.loc[:, [c for c in BACKTEST_COLUMNS if c in backtest.columns]].copy()
    if {"first_training_year", "last_training_year"} <= set(backtest.columns):
        shown.insert(
            2,
            "refitted on",
            [
                _years((first, last))
                for first, last in zip(
                    backtest["first_training_year"], backtest["last_training_year"], strict=True
                )
            ],
        )
    for column in ("rmse", "mae"):
        if column in shown:
            shown[column] = shown[column].map(_money)
    for metric in ("rmse", "mae"):
        if f"skill_{metric}" in shown:
            shown[f"skill_{metric}"] = [_skill_text(row, metric) for _, row in backtest.iterrows()]
    return shown.rename(
        columns={
            "rmse": "RMSE",
            "mae": "MAE",
            "skill_rmse": "skill (RMSE)",
            "skill_mae": "skill (MAE)",
        }
    )


def _gate_text(gate: Mapping[str, Any]) -> str:
    """What the gate tested and what it found for the card's model."""
    origins = ", ".join(str(gate["choosing_origins"]).split())
    skills = "; ".join(
        f"mean {metric.upper()} skill {gate[f'skill_{metric}']:+.3f} "
        f"[{gate[f'skill_{metric}_lower']:+.3f}, {gate[f'skill_{metric}_upper']:+.3f}]"
        for metric in ("rmse", "mae")
    )
    verdict = "passed" if bool(gate["passes_gate"]) else "failed"
    return (
        f"A model may forecast only if it passes this test: {gate['gate_test']}. "
        f"Over the choosing origins ({origins}) this model had {skills}: it {verdict}."
    )


def coverage_table(intervals: Mapping[str, Any]) -> pd.DataFrame:
    """Coverage at the backtest's reporting origins per interval group (rows) and level
    (columns), with the rows of each group, from the forecast metadata's ``interval``."""
    by_level = intervals["test"]["by_group"]
    levels = sorted(by_level, key=float)
    groups = [g for g in intervals["groups"]["order"] if g in by_level[levels[0]]] + [ALL_ROWS]
    frame = pd.DataFrame({"group": groups})
    frame["rows"] = [f"{by_level[levels[0]][g]['rows']:,}" for g in groups]
    for level in levels:
        frame[f"{100 * float(level):g}% coverage"] = [
            _percent(by_level[level][g]["coverage"]) for g in groups
        ]
    return frame


def _summary_table(facts: ModelCardFacts, uri: str) -> pd.DataFrame:
    version = f"version {facts.version}" if facts.version else "no registered version"
    return pd.DataFrame(
        [
            ("model", f"{facts.model} ({facts.target_form} target form)"),
            ("registered as", f"{facts.registered_model}, {version}, alias champion"),
            ("load with", uri),
            ("MLflow run", facts.run_name or "none"),
            ("target", f"{facts.target} (dollars per facility and APR DRG, per year)"),
            ("forecasts", f"{facts.forecast_year}, the year after the data's last year"),
            ("data", f"{facts.data_version}, sha256 {facts.data_sha256}"),
            ("training years", _years(facts.training_years)),
            ("chosen on", _chosen_on(facts)),
            ("reported on", _reported_on(facts)),
            ("features", f"{facts.n_features} columns of {facts.data_version}"),
        ],
        columns=["", ""],
    )


#: What the card says the forecast is for and not for; the same for every champion.
INTENDED_USE: tuple[str, ...] = (
    "Planning and budgeting: next year's yearly total median profit of a facility's "
    "DRG, with an interval that says how far it may land from the forecast.",
    "Screening: which series are expected to change most over last year, read "
    "together with their intervals.",
    "Comparing a series' forecast with naive persistence (last year's value), the "
    "baseline the model was required to beat.",
)
NOT_FIT_FOR: tuple[str, ...] = (
    "Prices, bills or reimbursement of individual patients or stays: the target is a "
    "yearly total per facility and DRG.",
    "Judging the quality or efficiency of hospitals, or any causal claim: the model "
    "extrapolates last years' values; it explains nothing.",
    "Series without last year's values (new facilities or DRGs), years further "
    "ahead than the next, or data of another schema, state or chain of "
    "transformations than the one it was trained on.",
    "Decisions that need every single interval to hold: an 80% interval misses "
    "one series in five by design.",
)


def _skill_blocks(facts: ModelCardFacts) -> list[Block]:
    """Skill on the validation and test years, per backtest origin and in the gate."""
    blocks: list[Block] = [
        Heading("Skill against persistence"),
        Paragraph(
            "RMSE and MAE in dollars of the target; skill = 1 - model / persistence (above 0: "
            "better than last year's value)."
        ),
        Table(_skill_table(facts)),
    ]
    if facts.backtest is not None and len(facts.backtest):
        blocks += [
            Heading("Backtest per origin year"),
            Paragraph(
                "Refitted with its tuned parameters on all years before each origin and scored "
                "on the origin year; choosing origins chose the champion (it had to beat "
                "persistence in MAE on each without being significantly worse in RMSE), "
                "reporting origins only report. In "
                "brackets: the bootstrap interval of the skill over the series."
            ),
            Table(_backtest_table(facts.backtest)),
        ]
    if facts.gate is not None:
        blocks += [Heading("The skill gate"), Paragraph(_gate_text(facts.gate))]
    return blocks


def _interval_blocks(intervals: Mapping[str, Any]) -> list[Block]:
    """How the prediction intervals were calibrated and how often they covered."""
    levels = sorted(intervals["test"]["by_group"], key=float)
    overall = {level: intervals["test"]["by_group"][level][ALL_ROWS] for level in levels}
    groups, calibration, test = intervals["groups"], intervals["calibration"], intervals["test"]
    return [
        Heading("Prediction intervals: coverage per group and level"),
        Paragraph(
            f"Split-conformal intervals ({intervals['method']}) calibrated per group of "
            f"{groups['column']} ({len(groups['order'])} groups) on "
            f"{calibration['rows']:,} {calibration['source']} "
            f"({', '.join(str(y) for y in calibration['years'])}). Coverage measured on the "
            f"{test['rows']:,} rows of the reporting origins "
            f"{', '.join(str(y) for y in test['years'])}, with intervals calibrated the same "
            "way on the choosing origins "
            f"{', '.join(str(y) for y in test.get('calibration_years', []))} only. Overall: "
            + "; ".join(
                f"{100 * float(level):g}% covers {_percent(overall[level]['coverage'])} "
                f"(Winkler score {_money(overall[level]['winkler_score'])})"
                for level in levels
            )
            + "."
        ),
        Table(coverage_table(intervals)),
    ]


def _loading_blocks(facts: ModelCardFacts, uri: str) -> list[Block]:
    return [
        Heading("How to load it"),
        Code(
            "import mlflow\n\n"
            f'mlflow.set_tracking_uri("{facts.tracking_uri}")\n'
            f'model = mlflow.sklearn.load_model("{uri}")\n'
            f"model.predict(rows)  # the columns of {facts.data_version}, dollars out"
        ),
        Paragraph(
            "The model carries the drg_workflow package as its code, so it loads without the "
            "workflow's repository on the Python path."
        ),
    ]


def model_card(facts: ModelCardFacts) -> list[Block]:
    """The card's blocks, in order."""
    uri = champion_uri(facts.registered_model)
    levels = sorted(facts.intervals["test"]["by_group"], key=float)
    level_text = ", ".join(f"{100 * float(level):g}%" for level in levels)
    params = pd.DataFrame(
        [(key, str(value)) for key, value in sorted(facts.params.items())],
        columns=["parameter", "value"],
    )
    refitted = (
        ""
        if facts.model == BASELINE_NAME
        else f", refitted on {_years(facts.training_years)} (every year of the data up to the last)"
    )
    return [
        Heading(f"Model card: {facts.registered_model} ({facts.model})", 1),
        Paragraph(
            f"The champion of the drg-workflow{refitted}: the model that forecasts next year's "
            f"{facts.target} for every facility and APR DRG of the New York State hospital "
            "inpatient cost data, with prediction intervals at "
            f"{level_text}."
        ),
        Table(_summary_table(facts, uri)),
        Heading("Parameters"),
        Table(params),
        Heading("Intended use"),
        Items(INTENDED_USE),
        Heading("Not fit for"),
        Items(NOT_FIT_FOR),
        *_skill_blocks(facts),
        *_interval_blocks(facts.intervals),
        Heading("Known limitations"),
        Items((*default_limitations(facts), *facts.limitations)),
        *_loading_blocks(facts, uri),
    ]


def default_limitations(facts: ModelCardFacts) -> tuple[str, ...]:
    """The limitations every card states, from its facts."""
    return (
        "The target is heavy-tailed: a few very large series make most of the squared error, "
        "so RMSE is dominated by them; MAE and the intervals speak for the typical series.",
        "Intervals assume the test and forecast years' errors are like the calibration "
        "years' (exchangeable within each group); a year of unusual change (a pandemic, a "
        "coding change) can make them too narrow.",
        f"Refitted on {_years(facts.training_years)}: its skill was measured by refitting the "
        "same way before each backtest origin, never on the forecast year itself.",
        "Series with last year missing are forecast from their rolling mean and fall in the "
        "interval group 'missing'.",
    )


def _origins(facts: ModelCardFacts, role: str) -> list[int]:
    if facts.backtest is None or "role" not in facts.backtest:
        return []
    rows = facts.backtest.loc[facts.backtest["role"] == role, "origin"]
    return sorted(int(origin) for origin in rows.unique())


def _chosen_on(facts: ModelCardFacts) -> str:
    origins = _origins(facts, CHOOSING_ROLE)
    if origins:
        return f"backtest origins {', '.join(map(str, origins))} (validation years)"
    return f"validation years {_years(facts.validation_years)}"


def _reported_on(facts: ModelCardFacts) -> str:
    origins = _origins(facts, REPORTING_ROLE)
    if origins:
        return f"backtest origins {', '.join(map(str, origins))} (test years)"
    return f"test years {_years(facts.test_years)}"


# --------------------------------------------------------------------------- rendering


def _markdown_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    """The card as Markdown (what MLflow's registry shows as the version's description)."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Items):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            header = [_markdown_cell(c) for c in block.frame.columns]
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += [
                "| " + " | ".join(_markdown_cell(v) for v in row) + " |"
                for row in block.frame.itertuples(index=False)
            ]
            parts.append("\n".join(lines))
        else:
            parts.append(f"```{block.language}\n{block.text}\n```")
    return "\n\n".join(parts) + "\n"


_CARD_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; font-size: 13px;
       color: #222; margin: 14px; max-width: 70em; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 18px; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
pre { background: #f6f8fa; padding: 8px; border: 1px solid #ddd; }
"""


def to_html(blocks: Sequence[Block]) -> str:
    """The card as a self-contained HTML page (the report shows it)."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "Model card")
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CARD_STYLE}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Items):
            items = "".join(f"<li>{html.escape(item)}</li>" for item in block.items)
            parts.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            columns = [str(c) for c in block.frame.columns]
            head = (
                "<thead><tr>"
                + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
                + "</tr></thead>"
                if any(columns)
                else ""
            )
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                for row in block.frame.itertuples(index=False)
            )
            parts.append(f"<table>{head}<tbody>{body}</tbody></table>")
        else:
            parts.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
