"""Rule script shared by every transformation rule: input version -> output version."""

from drg_workflow.errors import logged_rule
from drg_workflow.versions import transform_version

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    metadata = transform_version(
        input_arrow=snakemake.input.arrow,
        input_metadata=snakemake.input.metadata,
        output_csv=snakemake.output.csv,
        output_metadata=snakemake.output.metadata,
        output_arrow=snakemake.output.arrow,
        version=snakemake.wildcards.version,
        transformation=snakemake.params.transformation,
        parameters=snakemake.params.parameters,
        contract=snakemake.params.contract,
        threads=snakemake.threads,
    )
    for check in metadata["contracts"]:
        log.info("contract check %s passed: %s", check["check"], check["measured"])
    log.info(
        "%s: %d rows, %d columns", metadata["version"], metadata["rows"], len(metadata["columns"])
    )
