"""Rule script of ingest_raw: write data version v0 from the configured raw source."""

from drg_workflow.errors import logged_rule
from drg_workflow.ingest import ingest_raw

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    metadata = ingest_raw(
        parameters=snakemake.params.parameters,
        output_csv=snakemake.output.csv,
        output_metadata=snakemake.output.metadata,
        output_arrow=snakemake.output.arrow,
        raw_path=snakemake.input.get("raw"),
        contract=snakemake.params.contract,
    )
    for check in metadata["contracts"]:
        log.info("contract check %s passed: %s", check["check"], check["measured"])
    for key, value in metadata.get("validation", {}).items():
        log.info("validation %s: %s", key, value)
    log.info("%s: %d rows", metadata["version"], metadata["rows"])
