"""Rule compare_models: one table of every tuned model against the naive baseline, the skill
gate on the backtest's choosing origins, and the champion."""

import sys

from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.steps.champion import compare_models
from drg_workflow.modelling.steps.shared import write_table

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    table, warnings = compare_models(
        snakemake.input.metrics, snakemake.input.backtest, snakemake.input.skill_test
    )
    write_table(table, snakemake.output.comparison)
    log.info("comparison of %d models and the baseline:\n%s", len(table) - 1, table.to_string())
    for warning in warnings:
        # Loud on purpose: in the log, and on Snakemake's own output where people look.
        log.warning(warning)
        print(f"WARNING: {warning}", file=sys.stderr)
