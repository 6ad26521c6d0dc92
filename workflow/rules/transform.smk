# One rule per transformation of the chain (config `chain`). The rules differ only in name,
# parameters and the versions they make, so they are declared in one loop; all share the
# adapter scripts/transform_version.py (read, transform, write, metadata).
# Each version's data contract (config `contracts`) is checked by the rule's script.
from drg_workflow.contract_settings import configured_contract

for transformation in CHAIN_TRANSFORMATIONS:

    rule:
        name:
            transformation
        input:
            unpack(input_version_files),
        output:
            csv="results/{version}/{version}.csv",
            metadata="results/{version}/{version}_metadata.json",
            arrow="results/{version}/{version}.arrow",
        log:
            f"logs/{transformation}/{{version}}.log",
        benchmark:
            f"benchmarks/{transformation}/{{version}}.tsv"
        wildcard_constraints:
            version=versions_made_by(transformation),
        conda:
            "../envs/data.yaml"
        params:
            transformation=transformation,
            parameters=transformation_parameters(transformation),
            contract=configured_contract(config, transformation),
        script:
            "../../scripts/transform_version.py"
