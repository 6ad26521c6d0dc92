"""The ``model_card`` rule's step: the champion's model card."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from drg_workflow.names import SKILL_COLUMNS

from ..baseline import BASELINE_NAME, baseline_rule
from ..years import ModellingYears
from .shared import (
    modelling_settings,
)


def model_card_facts(
    params: Mapping[str, Any],
    champion: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    forecast_metadata: Mapping[str, Any],
    years_document: Mapping[str, Any],
    backtest: pd.DataFrame,
    comparison: pd.DataFrame | None = None,
) -> Any:
    """The facts of the champion's model card (a :class:`..model_card.ModelCardFacts`), from the
    shared modelling settings ``params``, ``champion.json``, every model's (and the
    baseline's) ``metrics.json`` by name, the forecast's metadata, the resolved years
    (``split.json``), the backtest table (the champion's rows are shown) and the comparison
    (the skill gate's test and its result for the champion). Without a champion the card
    describes the persistence fallback the forecast uses."""
    from ..model_card import ModelCardFacts

    years = ModellingYears.from_json(years_document)
    settings = modelling_settings(params, years)
    model = champion["champion"] or BASELINE_NAME
    own, baseline = metrics[model], metrics[BASELINE_NAME]
    split = settings.split
    if champion["champion"] is None:
        model_params: dict[str, Any] = {"prediction": baseline_rule(settings.features)}
        target_form, n_features = "raw", 1
        limitations = ("No model beat persistence: this card describes the fallback.",)
        training_years = split.train
    else:
        model_params = {**own["fixed_params"], **own["best_params"]}
        target_form, n_features = own["target_form"], len(own["features"])
        limitations = ()
        training_years = (min(champion["training_years"]), max(champion["training_years"]))
    return ModelCardFacts(
        registered_model=champion["registered_model"],
        version=champion.get("version"),
        model=model,
        params=model_params,
        target=settings.features.target,
        target_form=target_form,
        n_features=n_features,
        data_version=own["data_version"],
        data_sha256=own["data_sha256"],
        training_years=training_years,
        validation_years=split.validation,
        test_years=split.test,
        forecast_year=int(forecast_metadata["forecast_year"]),
        run_name=champion.get("run_name"),
        tracking_uri=champion["tracking_uri"],
        metrics=own,
        baseline_metrics=baseline,
        intervals=forecast_metadata["interval"],
        backtest=backtest.loc[backtest["model"] == model].reset_index(drop=True),
        limitations=limitations,
        gate=_gate_facts(comparison, champion["champion"]),
    )


def _gate_facts(comparison: pd.DataFrame | None, champion: str | None) -> dict[str, Any] | None:
    """The skill gate's test and its result for the champion (its comparison row), ``None``
    without a comparison or a champion."""
    if comparison is None or champion is None:
        return None
    row = comparison.loc[comparison["model"] == champion].iloc[0]
    columns = ["gate_test", "passes_gate", "choosing_origins", *SKILL_COLUMNS]
    return {column: row[column] for column in columns}


def model_card(
    params: Mapping[str, Any],
    champion: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    forecast_metadata: Mapping[str, Any],
    years_document: Mapping[str, Any],
    backtest: pd.DataFrame,
    comparison: pd.DataFrame | None = None,
) -> tuple[str, str]:
    """The champion's model card as Markdown and HTML (see :func:`model_card_facts`); the
    Markdown becomes the registered version's description and an artifact ``model_card.md``
    of its MLflow run. Without a champion nothing is written to the registry."""
    from ..model_card import model_card as card_blocks
    from ..model_card import to_html, to_markdown
    from ..tracking import log_model_card

    blocks = card_blocks(
        model_card_facts(
            params, champion, metrics, forecast_metadata, years_document, backtest, comparison
        )
    )
    markdown = to_markdown(blocks)
    if champion["champion"] is not None:
        log_model_card(
            champion["tracking_uri"],
            champion["registered_model"],
            champion["version"],
            champion["run_id"],
            markdown,
        )
    return markdown, to_html(blocks)
