# Modelling on the data version modelling.data_version: split_years resolves the year split and
# the backtest's origins from the data's years; setup_mlflow creates the MLflow experiment (and a fresh local store) once; per model,
# one setup job checks the model's configuration against its estimator and creates the Optuna
# study and the study's MLflow parent run; the study's trials run in tuning.rounds rounds, each
# of n_shards tune_shard jobs in parallel (on one machine or spread over cluster nodes), every
# round's candidates asked from the results of the rounds before it, so the outcome does not
# depend on timing; train_final refits the best parameters on the train years once all rounds
# are done. Then the rolling-origin backtest: one
# backtest_model job per model refits the tuned model on every year before each origin and
# predicts the origin (one process per model: its imports cost more than a small refit),
# score_backtest scores them all against persistence. The naive persistence
# baseline is evaluated like a model, compare_models puts everything in one table and applies
# the skill gate, refit_champion refits the champion on every year up to the last, and
# register_champion registers that refit. The wildcard constraints of {model}, {round} and
# {shard} are in common/modelling.smk.
# split_years, setup_mlflow, setup_study, evaluate_baseline, score_backtest, compare_models and
# register_champion are bookkeeping (MLflow and Optuna calls, persistence and the bootstrap of
# the scores, no model fits; seconds at full scale): local rules, so on a cluster they run in
# the Snakemake process's host instead of waiting in the queue (docs/cluster.md). They run
# their scripts in Snakemake's own process, or in their conda environment under --sdm conda
# (common/rule_scripts.smk).


rule split_years:
    input:
        unpack(split_years_inputs),
    output:
        split=MODELLING_SPLIT,
    log:
        "logs/split_years/split_years.log",
    benchmark:
        "benchmarks/split_years/split_years.tsv"
    localrule: True
    conda:
        "../envs/modelling.yaml"
    resources:
        mem_mb=1000,
    params:
        settings=split_settings(),
    run:
        run_rule_script("../../scripts/split_years.py", locals())


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
    run:
        run_rule_script("../../scripts/setup_mlflow.py", locals())


rule setup_study:
    input:
        metadata=MODELLING_FILES["metadata"],
        split=MODELLING_SPLIT,
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
    run:
        run_rule_script("../../scripts/setup_study.py", locals())


rule tune_shard:
    input:
        unpack(shard_inputs),
    output:
        summary=TUNING_SHARD,
    log:
        "logs/tune_shard/{model}_round_{round}_shard_{shard}.log",
    benchmark:
        "benchmarks/tune_shard/{model}_round_{round}_shard_{shard}.tsv"
    conda:
        "../envs/modelling.yaml"
    threads: model_threads
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
    threads: model_threads
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
    localrule: True
    conda:
        "../envs/modelling.yaml"
    resources:
        mem_mb=1000,
    params:
        settings=shared_modelling_settings(),
        data_source=MODELLING_FILES["csv"],
    run:
        run_rule_script("../../scripts/evaluate_baseline.py", locals())


rule backtest_model:
    input:
        unpack(backtest_model_inputs),
    output:
        predictions=BACKTEST_MODEL_PREDICTIONS,
        fits=BACKTEST_MODEL_FITS,
    log:
        "logs/backtest_model/{model}.log",
    benchmark:
        "benchmarks/backtest_model/{model}.tsv"
    conda:
        "../envs/modelling.yaml"
    threads: model_threads
    resources:
        mem_mb=1500,
    params:
        settings=model_settings,
    script:
        "../../scripts/backtest_model.py"


rule score_backtest:
    input:
        unpack(backtest_inputs),
    output:
        table=BACKTEST,
        metadata=BACKTEST_METADATA,
        predictions=BACKTEST_PREDICTIONS,
        skill_test=BACKTEST_SKILL_TEST,
        mlflow_run=BACKTEST_MLFLOW_RUN,
    log:
        "logs/score_backtest/backtest.log",
    benchmark:
        "benchmarks/score_backtest/backtest.tsv"
    localrule: True
    conda:
        "../envs/modelling.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        settings=backtest_settings(),
    run:
        run_rule_script("../../scripts/score_backtest.py", locals())


rule compare_models:
    input:
        metrics=expand(MODEL_METRICS, model=[*MODELS, BASELINE_NAME]),
        backtest=BACKTEST,
        skill_test=BACKTEST_SKILL_TEST,
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
    run:
        run_rule_script("../../scripts/compare_models.py", locals())


rule refit_champion:
    input:
        unpack(refit_inputs),
    output:
        refit=CHAMPION_REFIT,
    log:
        "logs/refit_champion/champion.log",
    benchmark:
        "benchmarks/refit_champion/champion.tsv"
    priority: FORECAST_PATH_PRIORITY
    conda:
        "../envs/modelling.yaml"
    threads: REFIT_THREADS
    resources:
        mem_mb=1500,
    params:
        settings={model: settings_of_model(model) for model in MODELS},
        models=MODELS,
        data_source=MODELLING_FILES["csv"],
    script:
        "../../scripts/refit_champion.py"


rule register_champion:
    input:
        refit=CHAMPION_REFIT,
        experiment=MLFLOW_EXPERIMENT,
    output:
        champion=CHAMPION,
    log:
        "logs/register_champion/champion.log",
    benchmark:
        "benchmarks/register_champion/champion.tsv"
    priority: FORECAST_PATH_PRIORITY
    localrule: True
    conda:
        "../envs/modelling.yaml"
    resources:
        mem_mb=1000,
    params:
        registered_model=MODELLING["mlflow"]["registered_model"],
    run:
        run_rule_script("../../scripts/register_champion.py", locals())
