# One rule per transformation of the chain (config `chain`). The rules differ only in name,
# parameters and the versions they make, so they are declared in one loop; all share the
# adapter scripts/transform_version.py (read, transform, write, metadata). The Arrow copy of a
# version read only by the next step is temp(): deleted once that step is done (ARROW_COPIES,
# common/chain.smk).
# Each version's data contract (config `contracts`) is checked by the rule's script. All are
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
        script:
            "../../scripts/transform_version.py"
