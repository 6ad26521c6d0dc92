"""Rule script of ingest_raw: write data version v0 from the configured raw source."""

import sys

from drg_workflow.ingest import ingest_raw, missing_years_warning, year_runs
from drg_workflow.jobs import logged_rule

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    metadata = ingest_raw(
        parameters=snakemake.params.parameters,
        output_csv=snakemake.output.csv,
        output_metadata=snakemake.output.metadata,
        output_arrow=snakemake.output.get("arrow"),
        raw_path=snakemake.input.get("raw"),
        contract=snakemake.params.contract,
        threads=snakemake.threads,
    )
    for check in metadata["contracts"]:
        log.info("contract check %s passed: %s", check["check"], check["measured"])
    for key, value in metadata.get("validation", {}).items():
        log.info("validation %s: %s", key, value)
    years = metadata["years"]
    log.info(
        "%s: %d rows, years %s", metadata["version"], metadata["rows"], year_runs(years["present"])
    )
    warning = missing_years_warning(years)
    if warning:
        # Loud on purpose: in the log, and on Snakemake's own output where people look.
        log.warning(warning)
        print(f"WARNING: {warning}", file=sys.stderr)
