"""Rule model_card: the champion's model card, as Markdown (also the registered version's
description and an artifact of its run) and as HTML for the report."""

import pandas as pd

from drg_workflow.documents import read_json
from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.steps.model_card import model_card
from drg_workflow.modelling.tracking import route_library_logs
from drg_workflow.report.output import save_text

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    route_library_logs(log, optuna=False)
    champion = read_json(snakemake.input.champion)
    metrics = {
        model: read_json(path)
        for model, path in zip(snakemake.params.models, snakemake.input.metrics, strict=True)
    }
    markdown, page = model_card(
        snakemake.params.settings,
        champion,
        metrics,
        read_json(snakemake.input.forecast_metadata),
        read_json(snakemake.input.split),
        pd.read_csv(snakemake.input.backtest),
        pd.read_csv(snakemake.input.comparison),
    )
    save_text(markdown, snakemake.output.markdown)
    save_text(page, snakemake.output.html)
    if champion["champion"] is None:
        log.info("model card of the persistence fallback; nothing registered to describe")
    else:
        log.info(
            "model card of %s version %s written to the registry's description and run %s",
            champion["registered_model"],
            champion["version"],
            champion["run_id"],
        )
