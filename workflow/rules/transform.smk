# One rule per transformation of the chain (config `chain`). The rules differ only in name,
# parameters and the versions they make, so they are declared in one loop; all share the
# adapter drg_workflow.chain_step.transformation_step (read, transform, write, metadata). A
# version read only by the next step has no Arrow copy (ARROW_COPIES, common/chain.smk): the
# next step takes its table from memory, or parses its CSV when it runs in another process.
# The steps run their script (scripts/transform_version.py) in Snakemake's own process unless a
# software deployment method is requested (rules/common/rule_scripts.smk): a step takes a second
# or two, and a process of its own would add the start of Python, pandas, pyarrow and
# Snakemake's script preamble to each, a large share of its work (docs/performance.md). With
# --sdm conda each runs in a process of its own in the environment it names.
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
            run_rule_script(
                "../../scripts/transform_version.py", locals(), one_at_a_time=False
            )
