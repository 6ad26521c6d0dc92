# One rule per transformation of the chain (config `chain`). The rules differ only in name,
# parameters and the versions they make, so they are declared in one loop; all share the
# adapter drg_workflow.chain_step.transformation_step (read, transform, write, metadata). A
# version read only by the next step has no Arrow copy (ARROW_COPIES, common/chain.smk): the
# next step takes its table from memory, or parses its CSV when it runs in another process.
# The steps run in Snakemake's own process (run:, not script:): a step takes a second or two,
# and a process of its own would add the start of Python, pandas, pyarrow and Snakemake's
# script preamble to each, a large share of its work (docs/performance.md). The workflow
# profile's force-use-threads runs them in threads (without it Snakemake would start a second
# Snakemake per step). Like every rule, they name the environment they need.
# Each version's data contract (config `contracts`) is checked by the adapter. All are
# in the chain's group, so a cluster runs the sequential chain as one job.

for transformation in CHAIN_TRANSFORMATIONS:

    rule:
        name:
            transformation
        input:
            unpack(input_version_files),
        output:
            **version_outputs(transformation),
        log:
            f"logs/{transformation}/{{version}}.log",
        benchmark:
            f"benchmarks/{transformation}/{{version}}.tsv"
        wildcard_constraints:
            version=versions_made_by(transformation),
        group:
            CHAIN_GROUP
        conda:
            "../envs/data.yaml"
        threads: CHAIN_THREADS
        params:
            transformation=transformation,
            parameters=transformation_parameters(transformation),
            contract=transformation_contract(transformation),
        run:
            run_transformation_step(
                input, output, params, wildcards, threads, log, rule
            )
