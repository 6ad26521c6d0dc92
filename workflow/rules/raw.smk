# v0: the raw data in the real schema, generated or read and validated.
# Each version's data contract (config `contracts`) is checked by the rule's script.


rule ingest_raw:
    input:
        unpack(raw_input_files),
    output:
        **version_outputs(RAW_TRANSFORMATION, RAW_VERSION),
    log:
        f"logs/ingest_raw/{RAW_VERSION}.log",
    benchmark:
        f"benchmarks/ingest_raw/{RAW_VERSION}.tsv"
    group:
        CHAIN_GROUP
    conda:
        "../envs/data.yaml"
    threads: CHAIN_THREADS
    params:
        parameters=raw_parameters(),
        contract=transformation_contract(RAW_TRANSFORMATION),
    run:
        run_rule_script("../../scripts/ingest_raw.py", locals())


# raw.source url: fetch the CSV with retries and backoff, atomically (see
# scripts/drg_workflow/download.py for why not the http storage plugin).
rule download_raw:
    output:
        raw=RAW_DOWNLOAD,
    log:
        f"logs/download_raw/{RAW_VERSION}.log",
    benchmark:
        f"benchmarks/download_raw/{RAW_VERSION}.tsv"
    localrule: True
    conda:
        "../envs/data.yaml"
    params:
        url=config["raw"]["url"],
    script:
        "../../scripts/download_raw.py"
