# Proving the chain on disk (scripts/drg_workflow/verify.py): every version's CSV and Arrow copy
# against its metadata, and every version's recorded input sha256 against that input's current
# metadata. One line per version on the console; the report in logs/verify/verify.json
# (`snakemake verify`) or results/verify.json (the default target's verify_build).
#
# `snakemake --cores 2 verify` runs rule verify, which has no input and no output: Snakemake
# runs a rule without output every time it is asked for, so it checks the files as they are on
# disk, even when a hand-edited CSV, a replaced Arrow copy or an input rebuilt on its own
# leaves Snakemake with "Nothing to be done", and it builds nothing first (files of the chain
# as input would make Snakemake rebuild the dependants of a newer input before the check).
# The default target ends with verify_build: the same check as the last job, after every
# version and the model comparison (and again whenever one of them is newer than its report).
#
# Results in a storage (--default-storage-provider s3): the files are objects, not on disk, so
# rule verify then takes the chain's files as input, each flagged before_update: Snakemake
# retrieves them as they are in the storage without looking for the jobs that make them, so it
# still builds nothing first (a missing object stops it naming the object).


rule verify:
    input:
        unpack(verify_storage_inputs),
    log:
        log="logs/verify/verify.log",
        report="logs/verify/verify.json",
    localrule: True
    conda:
        "../envs/data.yaml"
    params:
        chain=verify_chain_files(),
    run:
        run_rule_script("../../scripts/verify_versions.py", locals())


rule verify_build:
    input:
        unpack(verified_build_inputs),
    output:
        report(
            VERIFY_REPORT,
            caption="../report/verify.rst",
            category="Data versions",
            subcategory="Verification",
            labels={"figure": "verify result"},
        ),
    log:
        "logs/verify/verify_build.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    params:
        chain=verify_chain_files(),
    run:
        run_rule_script("../../scripts/verify_versions.py", locals())
