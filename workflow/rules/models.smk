# Modelling on the data version modelling.data_version: setup_mlflow creates the MLflow
# experiment (and a fresh local store) once; per model, one setup job checks the model's
# configuration against its estimator and creates the Optuna study and the study's MLflow parent
# run; n_shards tune_shard jobs run the trials of that study in parallel (on one machine or
# spread over cluster nodes); train_final refits the best parameters once all shards are done.
# The naive persistence baseline is evaluated like a model, and compare_models puts everything
# in one table. The wildcard constraints of {model} and {shard} are in common/modelling.smk.
# setup_mlflow, setup_study, compare_models and register_champion are bookkeeping (a few MLflow
# and Optuna calls, no model fits): local rules, so on a cluster they run in the Snakemake
# process's host instead of waiting in the queue (docs/cluster.md).


rule setup_mlflow:
    output:
        experiment=MLFLOW_EXPERIMENT,
    log:
        "logs/setup_mlflow/setup_mlflow.log",
    benchmark:
        "benchmarks/setup_mlflow/setup_mlflow.tsv"
    localrule: True
    conda:
        "../envs/modelling.yaml"
    resources:
        mem_mb=1000,
    params:
        mlflow=mlflow_settings(),
    script:
        "../../scripts/setup_mlflow.py"


rule setup_study:
    input:
        metadata=MODELLING_FILES["metadata"],
        experiment=MLFLOW_EXPERIMENT,
    output:
        setup=TUNING_SETUP,
    log:
        "logs/setup_study/{model}.log",
    benchmark:
        "benchmarks/setup_study/{model}.tsv"
    localrule: True
    conda:
        "../envs/modelling.yaml"
    resources:
        mem_mb=1000,
    params:
        settings=model_settings,
    script:
        "../../scripts/setup_study.py"


rule tune_shard:
    input:
        unpack(shard_inputs),
    output:
        summary=TUNING_SHARD,
    log:
        "logs/tune_shard/{model}_shard_{shard}.log",
    benchmark:
        "benchmarks/tune_shard/{model}_shard_{shard}.tsv"
    conda:
        "../envs/modelling.yaml"
    threads: 1
    resources:
        # Measured peak on full-scale data: about 700 MB.
        mem_mb=1500,
    params:
        settings=model_settings,
    script:
        "../../scripts/tune_shard.py"


rule train_final:
    input:
        unpack(final_inputs),
    output:
        metrics=MODEL_METRICS,
        predictions=MODEL_PREDICTIONS,
        permutation_importance=MODEL_PERMUTATION_IMPORTANCE,
        impurity_importance=MODEL_IMPURITY_IMPORTANCE,
        mlflow_run=MODEL_MLFLOW_RUN,
    log:
        "logs/train_final/{model}.log",
    benchmark:
        "benchmarks/train_final/{model}.tsv"
    conda:
        "../envs/modelling.yaml"
    threads: 1
    resources:
        mem_mb=1500,
    params:
        settings=model_settings,
        importance=MODELLING["importance"],
        data_source=MODELLING_FILES["csv"],
    script:
        "../../scripts/train_final.py"


rule evaluate_baseline:
    input:
        unpack(baseline_inputs),
    output:
        metrics=MODEL_METRICS.format(model=BASELINE_NAME),
        predictions=MODEL_PREDICTIONS.format(model=BASELINE_NAME),
    log:
        "logs/evaluate_baseline/baseline.log",
    benchmark:
        "benchmarks/evaluate_baseline/baseline.tsv"
    conda:
        "../envs/modelling.yaml"
    resources:
        mem_mb=1000,
    params:
        settings=shared_modelling_settings(),
        data_source=MODELLING_FILES["csv"],
    script:
        "../../scripts/evaluate_baseline.py"


rule compare_models:
    input:
        metrics=expand(MODEL_METRICS, model=[*MODELS, BASELINE_NAME]),
    output:
        comparison=COMPARISON,
    log:
        "logs/compare_models/comparison.log",
    benchmark:
        "benchmarks/compare_models/comparison.tsv"
    localrule: True
    conda:
        "../envs/modelling.yaml"
    resources:
        mem_mb=500,
    script:
        "../../scripts/compare_models.py"


rule register_champion:
    input:
        comparison=COMPARISON,
        experiment=MLFLOW_EXPERIMENT,
        runs=expand(MODEL_MLFLOW_RUN, model=MODELS),
    output:
        champion=CHAMPION,
    log:
        "logs/register_champion/champion.log",
    benchmark:
        "benchmarks/register_champion/champion.tsv"
    localrule: True
    conda:
        "../envs/modelling.yaml"
    resources:
        mem_mb=1000,
    params:
        models=MODELS,
        registered_model=MODELLING["mlflow"]["registered_model"],
    script:
        "../../scripts/register_champion.py"
