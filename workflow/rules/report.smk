# Figures and tables of the provenance report (`snakemake --report report.html`): small,
# cheap rules after the data and the models, built by the default target. Each output is
# marked for the report with a caption (workflow/report/*.rst), a category and labels; the
# labels' data version and sha256 are read from the inputs when the report is made.


rule report_data_versions:
    input:
        metadata=[version_metadata(v) for v in VERSIONS],
    output:
        lineage=report(
            f"{REPORT}/data_versions/lineage.html",
            caption="../report/lineage.rst",
            category="Data versions",
            subcategory="Lineage",
            labels={"figure": "lineage table"},
        ),
        rows=report(
            f"{REPORT}/data_versions/rows_along_chain.png",
            caption="../report/rows_along_chain.rst",
            category="Data versions",
            subcategory="Lineage",
            labels={"figure": "rows along the chain"},
        ),
    log:
        "logs/report_data_versions/report_data_versions.log",
    benchmark:
        "benchmarks/report_data_versions/report_data_versions.tsv"
    conda:
        "../envs/drg.yaml"
    script:
        "../../scripts/report_data_versions.py"


rule report_version_metadata:
    input:
        [version_metadata(v) for v in VERSIONS],
    output:
        [
            report(
                path,
                caption="../report/version_metadata.rst",
                category="Data versions",
                subcategory="Metadata of each version",
                labels=version_report_labels(version),
            )
            for version, path in report_metadata_copies().items()
        ],
    log:
        "logs/report_version_metadata/report_version_metadata.log",
    benchmark:
        "benchmarks/report_version_metadata/report_version_metadata.tsv"
    localrule: True
    conda:
        "../envs/drg.yaml"
    run:
        copy_files(input, output)


rule report_features:
    input:
        unpack(modelling_data),
    output:
        target=report(
            f"{REPORT}/features/target_by_year.png",
            caption="../report/target_by_year.rst",
            category="Features",
            labels=report_labels("target by year"),
        ),
        lags=report(
            f"{REPORT}/features/lag_features_vs_target.png",
            caption="../report/lag_features_vs_target.rst",
            category="Features",
            labels=report_labels("lag features vs target"),
        ),
    log:
        "logs/report_features/report_features.log",
    benchmark:
        "benchmarks/report_features/report_features.tsv"
    conda:
        "../envs/drg.yaml"
    params:
        target=config["target"],
        rolling_window=config["lags"]["rolling_window"],
        n_features=REPORT_LAG_FEATURES,
    script:
        "../../scripts/report_features.py"


rule report_tuning:
    input:
        unpack(tuning_report_inputs),
    output:
        history=report(
            f"{REPORT}/tuning/{{model}}_optimisation_history.png",
            caption="../report/optimisation_history.rst",
            category="Tuning",
            subcategory="{model}",
            labels=report_labels("optimisation history"),
        ),
        importances=report(
            f"{REPORT}/tuning/{{model}}_param_importances.png",
            caption="../report/param_importances.rst",
            category="Tuning",
            subcategory="{model}",
            labels=report_labels("hyperparameter importances"),
        ),
        trials=f"{REPORT}/tuning/{{model}}_trials.csv",
    log:
        "logs/report_tuning/{model}.log",
    benchmark:
        "benchmarks/report_tuning/{model}.tsv"
    conda:
        "../envs/drg.yaml"
    params:
        tuning=MODELLING["tuning"],
    script:
        "../../scripts/report_tuning.py"


rule report_shards:
    input:
        trials=expand(f"{REPORT}/tuning/{{model}}_trials.csv", model=MODELS),
        metadata=version_metadata(MODELLING_VERSION),
    output:
        shards=report(
            f"{REPORT}/tuning/trials_per_shard.png",
            caption="../report/trials_per_shard.rst",
            category="Tuning",
            subcategory="All models",
            labels=report_labels("trials per shard"),
        ),
    log:
        "logs/report_shards/report_shards.log",
    benchmark:
        "benchmarks/report_shards/report_shards.tsv"
    conda:
        "../envs/drg.yaml"
    script:
        "../../scripts/report_shards.py"


rule report_model:
    input:
        predictions="results/models/{model}/predictions.csv",
        permutation="results/models/{model}/permutation_importance.csv",
        impurity="results/models/{model}/impurity_importance.csv",
        comparison=COMPARISON,
        metadata=version_metadata(MODELLING_VERSION),
    output:
        predicted=report(
            f"{REPORT}/models/{{model}}_predicted_vs_actual.png",
            caption="../report/predicted_vs_actual.rst",
            category="Models",
            subcategory="{model}",
            labels=report_labels("predicted vs actual"),
        ),
        residuals=report(
            f"{REPORT}/models/{{model}}_residuals_by_year.png",
            caption="../report/residuals_by_year.rst",
            category="Models",
            subcategory="{model}",
            labels=report_labels("residuals by year"),
        ),
        importances=report(
            f"{REPORT}/models/{{model}}_feature_importances.png",
            caption="../report/feature_importances.rst",
            category="Models",
            subcategory="{model}",
            labels=report_labels("feature importances"),
        ),
    log:
        "logs/report_model/{model}.log",
    benchmark:
        "benchmarks/report_model/{model}.tsv"
    conda:
        "../envs/drg.yaml"
    params:
        top=REPORT_TOP_FEATURES,
    script:
        "../../scripts/report_model.py"


rule report_comparison:
    input:
        comparison=COMPARISON,
        metadata=version_metadata(MODELLING_VERSION),
    output:
        table=report(
            f"{REPORT}/models/comparison.html",
            caption="../report/comparison.rst",
            category="Models",
            subcategory="Comparison",
            labels=report_labels("comparison table"),
        ),
    log:
        "logs/report_comparison/report_comparison.log",
    benchmark:
        "benchmarks/report_comparison/report_comparison.tsv"
    conda:
        "../envs/drg.yaml"
    script:
        "../../scripts/report_comparison.py"
