"""Rule script of every transformation of the chain (rules/transform.smk): make a data version
from its input version (drg_workflow.chain_step.transformation_step)."""

from drg_workflow.jobs import IN_PROCESS_LOCK

# In Snakemake's own process the chain's steps do not wait for the other scripts run there,
# only for their imports: two threads importing one package for the first time can break.
with IN_PROCESS_LOCK:
    from drg_workflow.chain_step import transformation_step

transformation_step(
    log_path=snakemake.log[0],
    rule_name=snakemake.rule,
    input_data=snakemake.input.data,
    input_metadata=snakemake.input.metadata,
    output_csv=snakemake.output.csv,
    output_metadata=snakemake.output.metadata,
    output_arrow=snakemake.output.get("arrow"),
    version=snakemake.wildcards.version,
    transformation=snakemake.params.transformation,
    parameters=snakemake.params.parameters,
    contract=snakemake.params.contract,
    threads=snakemake.threads,
)
