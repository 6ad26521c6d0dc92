"""Rule split_years: the year split and the backtest's origins, resolved from the data's years;
the years no model fits or scores are named in the log (a warning for any after the first)."""

import sys

from drg_workflow.documents import read_json, write_json
from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.steps.split import split_years
from drg_workflow.tables import read_arrow

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    result = split_years(
        snakemake.params.settings,
        read_json(snakemake.input.raw_metadata),
        read_json(snakemake.input.metadata),
        read_arrow(snakemake.input.arrow, ["year"])["year"],
    )
    write_json(result.document, snakemake.output.split)
    for line in result.info:
        log.info(line)
    if result.warning:
        # Loud on purpose: in the log, and on Snakemake's own output where people look.
        log.warning(result.warning)
        print(f"WARNING: {result.warning}", file=sys.stderr)
