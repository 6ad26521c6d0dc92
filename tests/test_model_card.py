"""The champion's model card (drg_workflow.modelling.model_card), from hand-made facts."""

from __future__ import annotations

import pandas as pd

from drg_workflow.modelling.model_card import (
    ModelCardFacts,
    coverage_table,
    model_card,
    to_html,
    to_markdown,
)

SHA = "ab" * 32
INTERVALS = {
    "method": "signed_log",
    "levels": [0.5, 0.8],
    "groups": {
        "column": "sum_discharges_lag1",
        "bins": 2,
        "edges": [12.0],
        "order": ["< 12", ">= 12"],
    },
    "calibration": {
        "rows": 1234,
        "source": "backtest out-of-sample predictions at every origin",
        "years": [2014, 2015, 2016, 2017],
    },
    "test": {
        "rows": 2000,
        "years": [2016, 2017],
        "calibration_years": [2014, 2015],
        "by_group": {
            level: {
                group: {"rows": n, "coverage": c, "winkler_score": 5e5, "median_width": 1e5}
                for group, n, c in zip(
                    ("< 12", ">= 12", "all"), (900, 1100, 2000), covs, strict=True
                )
            }
            for level, covs in (("0.5", (0.49, 0.51, 0.5)), ("0.8", (0.791, 0.812, 0.8)))
        },
    },
}
METRICS = {"val_rmse": 90.0, "val_mae": 40.0, "test_rmse": 110.0, "test_mae": 45.0}
BASELINE = {"val_rmse": 100.0, "val_mae": 50.0, "test_rmse": 100.0, "test_mae": 50.0}


def facts(**changes) -> ModelCardFacts:
    values = {
        "registered_model": "drg-workflow-forecaster",
        "version": "3",
        "model": "ridge",
        "params": {"alpha": 12.5},
        "target": "w_total_median_profit",
        "target_form": "relative",
        "n_features": 30,
        "data_version": "v13",
        "data_sha256": SHA,
        "training_years": (2010, 2017),
        "validation_years": (2015, 2015),
        "test_years": (2016, 2017),
        "forecast_year": 2018,
        "run_name": "random_forest-refit",
        "tracking_uri": "sqlite:///results/mlflow/mlflow.db",
        "metrics": METRICS,
        "baseline_metrics": BASELINE,
        "intervals": INTERVALS,
    }
    return ModelCardFacts(**{**values, **changes})


def test_the_card_states_the_champions_facts_in_markdown_and_html():
    blocks = model_card(facts())
    markdown, page = to_markdown(blocks), to_html(blocks)
    for text in (
        "# Model card: drg-workflow-forecaster (ridge)",
        "| model | ridge (relative target form) |",
        "| registered as | drg-workflow-forecaster, version 3, alias champion |",
        f"| data | v13, sha256 {SHA} |",
        "| training years | 2010-2017 |",
        "refitted on 2010-2017 (every year of the data up to the last)",
        "| chosen on | validation years 2015 |",
        "| alpha | 12.5 |",
        "## Intended use",
        "## Not fit for",
        "## Known limitations",
        'mlflow.sklearn.load_model("models:/drg-workflow-forecaster@champion")',
        # Skill on validation and test: 1 - 90/100 and 1 - 110/100 (worse than persistence).
        "| validation 2015 | $90 | $100 | +0.100 | $40 | $50 | +0.200 |",
        "| test 2016-2017 | $110 | $100 | -0.100 | $45 | $50 | +0.100 |",
        # Coverage per group and level.
        "| < 12 | 900 | 49.0% | 79.1% |",
        "| all | 2,000 | 50.0% | 80.0% |",
        "80% covers 80.0% (Winkler score $500,000)",
        "rows of the reporting origins 2016, 2017, with intervals calibrated the same way on "
        "the choosing origins 2014, 2015 only",
    ):
        assert text in markdown, text
    assert "Backtest" not in markdown  # none given
    assert "<h1>Model card: drg-workflow-forecaster (ridge)</h1>" in page
    assert "<td>79.1%</td>" in page and "<pre><code>import mlflow" in page
    # Pure: the same facts, the same bytes.
    assert to_markdown(model_card(facts())) == markdown


def test_the_card_shows_the_backtest_per_origin_when_there_is_one():
    backtest = pd.DataFrame(
        {
            "origin": [2014, 2015, 2016],
            "role": ["choosing", "choosing", "reporting"],
            "rmse": [90.0, 95.0, 120.0],
            "mae": [40.0, 41.0, 44.0],
            "skill_rmse": [0.1, 0.05, -0.2],
            "skill_mae": [0.2, 0.18, 0.12],
        }
    )
    markdown = to_markdown(model_card(facts(backtest=backtest)))
    assert "## Backtest per origin year" in markdown
    assert "| 2016 | reporting | $120 | $44 | -0.200 | +0.120 |" in markdown
    assert "| chosen on | backtest origins 2014, 2015 (validation years) |" in markdown
    assert "| reported on | backtest origins 2016 (test years) |" in markdown
    # With the refit years and the skills' bootstrap intervals, as the backtest table has them.
    full = backtest.assign(
        first_training_year=2010,
        last_training_year=[2013, 2014, 2015],
        skill_rmse_lower=[0.01, -0.02, -0.3],
        skill_rmse_upper=[0.2, 0.1, -0.1],
        skill_mae_lower=[0.1, 0.1, 0.05],
        skill_mae_upper=[0.3, 0.25, 0.2],
    )
    markdown = to_markdown(model_card(facts(backtest=full)))
    assert (
        "| 2016 | reporting | 2010-2015 | $120 | $44 | -0.200 [-0.300, -0.100] "
        "| +0.120 [+0.050, +0.200] |" in markdown
    )


def test_a_card_escapes_html_and_markdown_and_names_extra_limitations():
    card = model_card(facts(params={"note": "a|b <c>"}, limitations=("Only two years.",)))
    assert "| note | a\\|b <c> |" in to_markdown(card)
    assert "a|b &lt;c&gt;" in to_html(card)
    assert "- Only two years." in to_markdown(card)


def test_coverage_table_has_a_row_per_group_and_a_column_per_level():
    table = coverage_table(INTERVALS)
    assert list(table.columns) == ["group", "rows", "50% coverage", "80% coverage"]
    assert table["group"].tolist() == ["< 12", ">= 12", "all"]
