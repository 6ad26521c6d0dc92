"""Tables of the report: the data lineage, Optuna trials, and HTML pages of tables."""

from __future__ import annotations

import base64
import html
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from drg_workflow.hashing import short_sha
from drg_workflow.modelling.comparison import METRIC_COLUMNS
from drg_workflow.modelling.intervals import bound_columns
from drg_workflow.modelling.trial_attrs import SHARD_ATTR, candidate_order
from drg_workflow.names import BASELINE_NAME

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
TRIAL_COLUMNS: tuple[str, ...] = (
    "model",
    "trial",
    "round",
    "candidate",
    "shard",
    "state",
    "value",
    "last_step_value",
)


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


def trials_frame(model: str, trials: Sequence[Any]) -> pd.DataFrame:
    """One row per Optuna trial of a model, in the order no timing changes (round, then
    candidate: :func:`drg_workflow.modelling.trial_attrs.candidate_order`): ``trial`` (its
    position in that order), its round, candidate and shard, state (``COMPLETE``,
    ``PRUNED``, ...), objective value (CV loss ratio; empty unless complete) and the last value
    it reported (a pruned trial's running value when it was stopped).

    ``trials`` are Optuna ``FrozenTrial`` objects (anything with ``user_attrs``, ``state.name``,
    ``value`` and ``intermediate_values``). Optuna's trial number is left out: it depends on
    which shard created its trial first. A trial killed while it ran comes before the one that
    redid its candidate. Trials without a shard get shard ``-1``.
    """
    ordered = sorted(
        trials, key=lambda trial: (*candidate_order(trial), trial.state.name != "FAIL")
    )
    records = []
    for position, trial in enumerate(ordered):
        steps = trial.intermediate_values
        round_index, candidate = candidate_order(trial)
        records.append(
            {
                "model": model,
                "trial": position,
                "round": round_index,
                "candidate": candidate,
                "shard": int(trial.user_attrs.get(SHARD_ATTR, -1)),
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
            "champion: it must beat persistence in MAE on each and not be significantly worse "
            "in RMSE on any (the RMSE skill's interval reaches above 0), and its mean RMSE and "
            "MAE skill over them must be above 0 in a pooled bootstrap (the comparison). "
            "Reporting origins (the test years) are never used to choose."
        ),
        row_classes=classes,
        float_format="{:,.0f}",
    )


def significant(values: np.ndarray, digits: int) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits (whole numbers stay whole):
    ``239_097 -> 239_000``, ``-1_483_780 -> -1_480_000``, ``87 -> 87``."""
    array = np.asarray(values, dtype=float)
    magnitude = np.floor(np.log10(np.maximum(np.abs(array), 1.0)))
    step = 10.0 ** np.maximum(magnitude - (digits - 1), 0)
    return np.round(array / step) * step


#: Rows the forecast page shows at once (it holds every row; a page is a slice of them).
FORECAST_PAGE_ROWS = 50

_FORECAST_SCRIPT = r"""
const data = JSON.parse(document.getElementById("forecast-meta").textContent);
const money = new Intl.NumberFormat("en-US", {maximumFractionDigits: 0});
const short = new Intl.NumberFormat("en-US", {notation: "compact", maximumSignificantDigits: 3});
const columns = data.columns;
let rows = [], shown = rows, sortColumn = -1, sortUp = true, page = 0;
function cell(row, i) {
  const kind = columns[i].kind, at = columns[i].at, value = row[at];
  if (kind === "facility") return data.facilities[value].join(" ");
  if (kind === "drg") return data.drgs[value].join(" ");
  if (kind === "group") return data.groups[value];
  if (kind === "interval") return short.format(value) + " to " + short.format(row[at + 1]);
  return "$" + money.format(value);
}
function sortKey(row, i) {
  const kind = columns[i].kind, at = columns[i].at;
  if (kind === "facility" || kind === "drg") return cell(row, i).toLowerCase();
  if (kind === "group") return row[at];
  if (kind === "interval") return row[at + 1] - row[at];
  return row[at];
}
function render() {
  const pages = Math.max(1, Math.ceil(shown.length / data.pageRows));
  page = Math.min(page, pages - 1);
  const body = shown.slice(page * data.pageRows, (page + 1) * data.pageRows).map(row =>
    "<tr>" + columns.map((c, i) => {
      const text = cell(row, i).replace(/&/g, "&amp;").replace(/</g, "&lt;");
      return c.kind === "facility" || c.kind === "drg" || c.kind === "group"
        ? '<td class="text">' + text + "</td>" : "<td>" + text + "</td>";
    }).join("") + "</tr>").join("");
  document.getElementById("forecast-body").innerHTML = body;
  document.getElementById("forecast-count").textContent =
    shown.length.toLocaleString("en-US") + " of " + rows.length.toLocaleString("en-US") +
    " rows; page " + (page + 1) + " of " + pages;
  document.querySelectorAll("#forecast-table th").forEach((th, i) => {
    th.dataset.sort = i === sortColumn ? (sortUp ? "up" : "down") : "";
  });
}
function filter() {
  const words = document.getElementById("forecast-search").value.toLowerCase().split(/\s+/)
    .filter(w => w);
  shown = words.length === 0 ? rows.slice() : rows.filter(row => {
    const text = (cell(row, 0) + " " + cell(row, 1) + " " + cell(row, 2)).toLowerCase();
    return words.every(w => text.includes(w));
  });
  if (sortColumn >= 0) sortRows();
  page = 0;
  render();
}
function sortRows() {
  const sign = sortUp ? 1 : -1;
  shown.sort((a, b) => {
    const x = sortKey(a, sortColumn), y = sortKey(b, sortColumn);
    return x < y ? -sign : x > y ? sign : 0;
  });
}
document.querySelectorAll("#forecast-table th").forEach((th, i) => th.addEventListener(
  "click", () => {
    sortUp = i === sortColumn ? !sortUp : true;
    sortColumn = i;
    sortRows();
    render();
  }));
document.getElementById("forecast-search").addEventListener("input", filter);
document.getElementById("forecast-previous").addEventListener("click", () => {
  page = Math.max(0, page - 1); render(); });
document.getElementById("forecast-next").addEventListener("click", () => { page += 1; render(); });
async function load() {
  // The rows: deflate-compressed JSON, one array per column, in base64.
  const text = atob(document.getElementById("forecast-data").textContent.trim());
  const bytes = Uint8Array.from(text, c => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  const table = JSON.parse(await new Response(stream).text());
  rows = table[0].map((_, r) => table.map(column => column[r]));
  filter();
}
load();
"""

_FORECAST_STYLE = """
input#forecast-search { width: 28em; padding: 3px; margin: 0 8px 8px 0; }
th { cursor: pointer; white-space: nowrap; text-align: left; }
th[data-sort="up"]::after { content: " \\25B2"; }
th[data-sort="down"]::after { content: " \\25BC"; }
td { white-space: nowrap; }
"""


def forecast_page(
    forecast: pd.DataFrame,
    name_columns: Mapping[str, str],
    levels: Sequence[float],
    groups: Sequence[str],
    group_column: str,
    *,
    title: str,
    note: str,
) -> str:
    """The forecast as a self-contained HTML page with a searchable, sortable, paged table:
    facility (id and name), DRG (code and description), interval group, last year's value,
    the forecast and its interval at each level, in whole dollars (the CSV keeps cents).
    ``groups``: the interval groups in their order (sorting by group follows it), groups of
    ``group_column``. Intervals read in compact dollars (``239K to 656K``).

    The rows travel in the page as deflate-compressed JSON columns (facilities and DRGs once
    each, rows referring to them by index), since Chromium shows no report item whose data URL
    exceeds 2 MB; a small inline script unpacks them (the browser's DecompressionStream) and
    renders a page of rows at a time; typing in the search
    box keeps the rows whose facility, DRG or group contain every word typed, a click on a
    column's header sorts by it (intervals by their width). No network, no library.
    """
    facility_key, drg_key = list(name_columns)
    facilities = forecast[[facility_key, name_columns[facility_key]]].drop_duplicates(facility_key)
    facilities = facilities.sort_values(facility_key, kind="stable")
    drgs = forecast[[drg_key, name_columns[drg_key]]].drop_duplicates(drg_key)
    drgs = drgs.sort_values(drg_key, kind="stable")
    present = set(forecast["interval_group"])
    groups = [g for g in groups if g in present] + sorted(present - set(groups))
    facility_index = pd.Index(facilities[facility_key]).get_indexer(forecast[facility_key])
    drg_index = pd.Index(drgs[drg_key]).get_indexer(forecast[drg_key])
    group_index = pd.Index(groups).get_indexer(forecast["interval_group"])
    # One integer column each: facility, DRG and group indices, last year's value and the
    # forecast in whole dollars, then every interval's lower and upper bound to the 3
    # significant digits shown (which also makes them compress to a third).
    bounds = [c for level in levels for c in bound_columns(level)]
    table = np.column_stack(
        [
            facility_index,
            drg_index,
            group_index,
            np.round(forecast[["persistence", "prediction"]].to_numpy(dtype=float)),
            significant(forecast[bounds].to_numpy(dtype=float), 3),
        ]
    ).astype(np.int64)
    year = int(forecast["year"].iloc[0]) if len(forecast) else 0
    columns = [
        {"name": "facility", "kind": "facility", "at": 0},
        {"name": "APR DRG", "kind": "drg", "at": 1},
        {"name": f"group ({group_column})", "kind": "group", "at": 2},
        {"name": f"{year - 1} (last year)", "kind": "money", "at": 3},
        {"name": f"forecast {year}", "kind": "money", "at": 4},
        *[
            {"name": f"{100 * float(level):g}% interval ($)", "kind": "interval", "at": 5 + 2 * i}
            for i, level in enumerate(levels)
        ],
    ]
    meta = {
        "columns": columns,
        "facilities": [[str(k), str(n)] for k, n in facilities.itertuples(index=False)],
        "drgs": [[str(k), str(n)] for k, n in drgs.itertuples(index=False)],
        "groups": groups,
        "pageRows": FORECAST_PAGE_ROWS,
    }
    return _forecast_html(title, note, columns, meta, table)


def _forecast_html(
    title: str,
    note: str,
    columns: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any],
    table: np.ndarray,
) -> str:
    """The forecast page around its packed rows: ``meta`` as JSON, ``table``'s columns as
    deflate-compressed JSON in base64, and the script that unpacks and renders them."""
    meta_json = json.dumps(meta, separators=(",", ":")).replace("</", "<\\/")
    rows = json.dumps(table.T.tolist(), separators=(",", ":")).encode()
    data = base64.b64encode(zlib.compress(rows, 9)).decode()
    head = "".join(f"<th>{html.escape(c['name'])}</th>" for c in columns)
    return (
        "\n".join(
            [
                "<!DOCTYPE html>",
                '<html><head><meta charset="utf-8">',
                f"<title>{html.escape(title)}</title>",
                f"<style>{_STYLE}{_FORECAST_STYLE}</style></head><body>",
                f"<h1>{html.escape(title)}</h1>",
                f'<p class="note">{html.escape(note)}</p>',
                '<input id="forecast-search" type="search" '
                'placeholder="search facility, DRG or group (e.g. a name or an id)">',
                '<button id="forecast-previous">previous</button> '
                '<button id="forecast-next">next</button> <span id="forecast-count"></span>',
                f'<table id="forecast-table"><thead><tr>{head}</tr></thead>',
                '<tbody id="forecast-body"></tbody></table>',
                f'<script type="application/json" id="forecast-meta">{meta_json}</script>',
                f'<script type="application/octet-stream" id="forecast-data">{data}</script>',
                f"<script>{_FORECAST_SCRIPT}</script>",
                "</body></html>",
            ]
        )
        + "\n"
    )
