"""Tables of the report: the data lineage, Optuna trials, and HTML pages of tables."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from drg_workflow.modelling.comparison import METRIC_COLUMNS
from drg_workflow.names import BASELINE_NAME

#: Hex digits of a sha256 shown in tables, labels and footers.
SHORT_SHA = 12

LINEAGE_COLUMNS: tuple[str, ...] = (
    "version",
    "transformation",
    "input",
    "rows",
    "columns",
    "sha256",
    "contract checks",
    "parameters",
)

#: Columns of :func:`trials_frame`.
TRIAL_COLUMNS: tuple[str, ...] = ("model", "shard", "number", "state", "value", "last_step_value")


def short_sha(sha256: str | None) -> str:
    """The first :data:`SHORT_SHA` hex digits of a sha256, or ``""`` for none."""
    return (sha256 or "")[:SHORT_SHA]


def data_label(metadata: Mapping[str, Any]) -> str:
    """``"v13, sha256 0123456789ab"``: a data version and its short sha256, from its metadata."""
    return f"{metadata['version']}, sha256 {short_sha(metadata['sha256'])}"


def compact_parameters(parameters: Mapping[str, Any], max_items: int = 4) -> str:
    """Parameters as short ``key=value`` text; lists longer than ``max_items`` become a count
    (the lag list of 15 columns reads ``columns=[15 columns]``)."""
    parts = []
    for key in sorted(parameters):
        value = parameters[key]
        if isinstance(value, list | tuple) and len(value) > max_items:
            text = f"[{len(value)} columns]"
        else:
            text = json.dumps(value, default=str)
        parts.append(f"{key}={text}")
    return ", ".join(parts)


def short_parameters(text: str) -> str:
    """A model's best parameters (a JSON object) as ``key=value`` text, floats to 4 significant
    digits: ``{"alpha": 33.884658}`` reads ``alpha=33.88``. Text that is not JSON is kept."""
    try:
        params = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return text
    return ", ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in sorted(params.items())
    )


def contract_summary(checks: Sequence[Mapping[str, Any]]) -> str:
    """``"8 passed: keys_not_null, ..."`` for a version's recorded contract checks; a version is
    only written when every check passed, so the metadata lists passed checks alone."""
    names = [check["check"] for check in checks if check.get("passed")]
    return f"{len(names)} passed: {', '.join(names)}" if names else "none recorded"


def lineage_table(metadata: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per data version, in the order given (the chain's): version, transformation,
    input version, rows, columns, short sha256, the contract checks it passed as it was built
    and parameters, from the versions' metadata documents (``{version}_metadata.json``)."""
    rows = [
        {
            "version": meta["version"],
            "transformation": meta["transformation"]["name"],
            "input": meta["input"]["version"] or "",
            "rows": int(meta["rows"]),
            "columns": len(meta["columns"]),
            "sha256": short_sha(meta["sha256"]),
            "contract checks": contract_summary(meta.get("contracts", [])),
            "parameters": compact_parameters(meta["transformation"]["parameters"]),
        }
        for meta in metadata
    ]
    return pd.DataFrame.from_records(rows, columns=list(LINEAGE_COLUMNS))


def trials_frame(
    model: str, trials: Sequence[Any], shard_numbers: Mapping[int, Sequence[int]]
) -> pd.DataFrame:
    """One row per Optuna trial of a model: its shard, number, state (``COMPLETE``,
    ``PRUNED``, ...), objective value (CV RMSE; empty unless complete) and the last value it
    reported (a pruned trial's running mean when it was stopped).

    ``trials`` are Optuna ``FrozenTrial`` objects (anything with ``number``, ``state.name``,
    ``value`` and ``intermediate_values``); ``shard_numbers`` maps a shard index to the trial
    numbers it ran. Trials no shard claims get shard ``-1``.
    """
    shard_of = {n: shard for shard, numbers in shard_numbers.items() for n in numbers}
    records = []
    for trial in sorted(trials, key=lambda t: t.number):
        steps = trial.intermediate_values
        records.append(
            {
                "model": model,
                "shard": shard_of.get(trial.number, -1),
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value if trial.state.name == "COMPLETE" else float("nan"),
                "last_step_value": steps[max(steps)] if steps else float("nan"),
            }
        )
    return pd.DataFrame.from_records(records, columns=list(TRIAL_COLUMNS))


_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; font-size: 12px;
       color: #222; margin: 12px; }
h1 { font-size: 18px; margin: 0 0 6px 0; }
p.note { color: #555; margin: 4px 0 10px 0; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 2px 4px; text-align: right; vertical-align: top; }
th { background: #f0f0f0; }
td.text { text-align: left; }
tr.warn td { background: #fdecea; }
tr.baseline td { background: #eef4fb; font-style: italic; }
div.warning { border-left: 4px solid #c62828; background: #fdecea; padding: 6px 10px;
              margin: 6px 0; }
"""


def html_page(
    title: str,
    frame: pd.DataFrame,
    *,
    note: str = "",
    warnings: Sequence[str] = (),
    row_classes: Sequence[str] | None = None,
    float_format: str = "{:,.2f}",
    formats: Mapping[str, str] | None = None,
) -> str:
    """A self-contained HTML page (no scripts, no external files) showing ``frame`` as a table
    under ``title``, with an optional ``note`` and highlighted ``warnings`` above it.

    Numbers are right-aligned (floats with ``float_format``), text left-aligned; missing values
    are blank; ``formats`` overrides ``float_format`` per column. ``row_classes`` gives each
    row a CSS class (``warn``, ``baseline`` or ``""``).
    """
    formats = dict(formats or {})
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for i, (_, row) in enumerate(frame.iterrows()):
        cells = []
        for column, value in row.items():
            if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
                cells.append("<td></td>")
            elif isinstance(value, bool):
                cells.append(f'<td class="text">{value}</td>')
            elif isinstance(value, float):
                cells.append(f"<td>{formats.get(column, float_format).format(value)}</td>")
            elif isinstance(value, int):
                cells.append(f"<td>{value:,}</td>")
            else:
                cells.append(f'<td class="text">{html.escape(str(value))}</td>')
        css = row_classes[i] if row_classes else ""
        body.append(f'<tr class="{css}">' + "".join(cells) + "</tr>")
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if note:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    parts.extend(f'<div class="warning">WARNING: {html.escape(w)}</div>' for w in warnings)
    parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>")
    parts.extend(body)
    parts.append("</tbody></table></body></html>")
    return "\n".join(parts) + "\n"


def comparison_page(comparison: pd.DataFrame, data: str) -> str:
    """The comparison table (every model and the naive baseline) as an HTML page: the backtest
    skill on the choosing origins that decides, whether the model passes the skill gate, the
    champion, then CV, validation and test metrics in dollars; rows of models failing the gate
    highlighted, their warnings above the table. ``data`` names the data version (see
    :func:`data_label`)."""
    warnings = [w for w in comparison["warning"].astype("string").fillna("") if w]
    passes = comparison["passes_gate"].astype("string").fillna("")
    classes = [
        "baseline" if model == BASELINE_NAME else ("warn" if p != "True" else "")
        for model, p in zip(comparison["model"], passes, strict=True)
    ]
    trials = [
        "" if model == BASELINE_NAME else f"{int(done)} / {int(pruned)}"
        for model, done, pruned in zip(
            comparison["model"],
            comparison["n_trials_complete"],
            comparison["n_trials_pruned"],
            strict=True,
        )
    ]
    frame = pd.DataFrame(
        {
            "model": comparison["model"],
            # The model the forecast uses (the baseline when no model passes the gate).
            "champion": [
                "champion" if str(flag) == "True" else "" for flag in comparison["champion"]
            ],
            "passes gate": passes.map({"True": "yes", "False": "NO"}).fillna("").to_list(),
            "chosen on": [
                "" if model == BASELINE_NAME else ", ".join(str(origins).split())
                for model, origins in zip(
                    comparison["model"], comparison["choosing_origins"], strict=True
                )
            ],
            "RMSE skill": comparison["skill_rmse"].astype(float),
            "MAE skill": comparison["skill_mae"].astype(float),
            f"RMSE skill per origin ({origins_of(comparison)})": [
                skills_by_origin(text) for text in comparison["skill_rmse_by_origin"]
            ],
            **{column: comparison[column].astype(float) for column in METRIC_COLUMNS},
            "trials complete / pruned": trials,
            "best parameters": [
                short_parameters(text)
                for text in comparison["best_params"].astype("string").fillna("")
            ],
        }
    )
    return html_page(
        "Models against the naive persistence baseline",
        frame,
        note=(
            f"Data {data}. Skill = 1 - RMSE / persistence's RMSE (and the same for MAE) in the "
            "rolling-origin backtest, mean over the choosing origins (see the Backtest "
            "category): the champion is the model passing the skill gate with the best RMSE "
            "skill, refitted on every year up to the last. RMSE and MAE in dollars of the "
            "target, R² unitless; cv = mean over the year folds of tuning, val = validation "
            "years, test = test years, both fitted on the train years only. The baseline "
            "predicts last year's value."
        ),
        warnings=warnings,
        row_classes=classes,
        float_format="{:,.0f}",
        formats={
            "val_r2": "{:.3f}",
            "test_r2": "{:.3f}",
            "RMSE skill": "{:+.3f}",
            "MAE skill": "{:+.3f}",
        },
    )


#: Joins the skills of the origins in one table cell, never broken across lines.
_ORIGIN_SEPARATOR = "\u00a0/\u00a0"


def skills_by_origin(text: str) -> str:
    """A JSON object of skill by origin, ``{"2014": 0.15, "2015": 0.16}``, as
    ``+0.150 / +0.160`` (non-breaking spaces: one line in a table)."""
    return _ORIGIN_SEPARATOR.join(f"{value:+.3f}" for value in json.loads(text).values())


def origins_of(comparison: pd.DataFrame) -> str:
    """The origins of the comparison's skills by origin, ``2014 / 2015 / 2017``."""
    return _ORIGIN_SEPARATOR.join(json.loads(comparison["skill_rmse_by_origin"].iloc[0]))


def lineage_page(lineage: pd.DataFrame) -> str:
    """The lineage table (see :func:`lineage_table`) as an HTML page."""
    return html_page(
        "Data versions: lineage",
        lineage,
        note=(
            "Each version is made from its input version by one transformation with the "
            "parameters shown; sha256 is the first 12 hex digits of the version's CSV; the "
            "contract checks are those the version passed before it was written."
        ),
    )


def backtest_page(backtest: pd.DataFrame, champion: str | None, level: float, data: str) -> str:
    """The backtest table as an HTML page: per origin (choosing or reporting) and model, the
    series scored, the years refitted on, RMSE and MAE in dollars and both skills with their
    bootstrap intervals; the champion's rows marked, persistence's rows as the baseline."""

    def interval(metric: str) -> list[str]:
        return [
            f"{row[f'skill_{metric}']:+.3f} [{row[f'skill_{metric}_lower']:+.3f}, "
            f"{row[f'skill_{metric}_upper']:+.3f}]"
            for _, row in backtest.iterrows()
        ]

    frame = pd.DataFrame(
        {
            # Text: a year, not a count with a thousands separator.
            "origin": backtest["origin"].astype(int).astype(str),
            "role": backtest["role"],
            "model": [
                f"{model} (champion)" if model == champion else model for model in backtest["model"]
            ],
            "series": backtest["n_series"].astype(int),
            "refitted on": [
                "(last year's value)" if model == BASELINE_NAME else f"{first}-{last}"
                for model, first, last in zip(
                    backtest["model"],
                    backtest["first_training_year"],
                    backtest["last_training_year"],
                    strict=True,
                )
            ],
            "RMSE": backtest["rmse"].astype(float),
            "MAE": backtest["mae"].astype(float),
            "RMSE skill [interval]": interval("rmse"),
            "MAE skill [interval]": interval("mae"),
        }
    )
    classes = ["baseline" if model == BASELINE_NAME else "" for model in backtest["model"]]
    return html_page(
        "Backtest: skill against persistence per origin",
        frame,
        note=(
            f"Data {data}. At each origin every model was refitted with its tuned parameters "
            "on every year before it and predicted it; persistence (the baseline) predicts "
            "last year's value. Skill = 1 - RMSE / persistence's RMSE (and the same for MAE): "
            f"0 is persistence, higher is better; in brackets its {100 * level:.0f}% bootstrap "
            "interval over the series. Choosing origins (the validation years) choose the "
            "champion: it must beat persistence in RMSE and MAE on each, with both intervals "
            "above 0. Reporting origins (the test years) are never used to choose."
        ),
        row_classes=classes,
        float_format="{:,.0f}",
    )
