# Figures and tables of the provenance report (`snakemake --report report.html`): a few cheap
# jobs after the data and the models, built by the default target (one job for all models'
# tuning figures and one for all models' results: a Python process with pandas and matplotlib
# costs seconds to start). Each output is marked for the report with a caption
# (workflow/report/*.rst), a category and labels; the labels' data version and sha256 are read
# from the inputs when the report is made.
# All are local rules: cheap, so on a cluster they run where Snakemake runs instead of queueing.


rule report_data_versions:
    input:
        metadata=expand(VERSION_METADATA, version=VERSIONS),
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
    localrule: True
    conda:
        "../envs/modelling.yaml"
    run:
        run_rule_script("../../scripts/report_data_versions.py", locals())


rule report_version_metadata:
    input:
        expand(VERSION_METADATA, version=VERSIONS),
    output:
        [
            report(
                REPORT_METADATA_COPY.format(version=version),
                caption="../report/version_metadata.rst",
                category="Data versions",
                subcategory="Metadata of each version",
                labels=version_report_labels(version),
            )
            for version in VERSIONS
        ],
    log:
        "logs/report_version_metadata/report_version_metadata.log",
    benchmark:
        "benchmarks/report_version_metadata/report_version_metadata.tsv"
    localrule: True
    conda:
        "../envs/data.yaml"
    run:
        run_rule_script("../../scripts/report_version_metadata.py", locals())


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
    localrule: True
    conda:
        "../envs/modelling.yaml"
    params:
        target=config["target"],
        rolling_window=config["lags"]["rolling_window"],
        n_features=REPORT_LAG_FEATURES,
    run:
        run_rule_script("../../scripts/report_features.py", locals())


rule report_tuning:
    input:
        setups=expand(TUNING_SETUP, model=MODELS),
        shards=[shard for model in MODELS for shard in tuning_shards(model)],
        metadata=MODELLING_FILES["metadata"],
    output:
        history=per_model_figures(
            "Tuning", "tuning", "optimisation_history", "optimisation history"
        ),
        importances=per_model_figures(
            "Tuning", "tuning", "param_importances", "hyperparameter importances"
        ),
        shards=report(
            f"{REPORT}/tuning/trials_per_shard.png",
            caption="../report/trials_per_shard.rst",
            category="Tuning",
            subcategory="All models",
            labels=report_labels("trials per shard"),
        ),
        trials=f"{REPORT}/tuning/trials.csv",
    log:
        "logs/report_tuning/report_tuning.log",
    benchmark:
        "benchmarks/report_tuning/report_tuning.tsv"
    localrule: True
    conda:
        "../envs/modelling.yaml"
    params:
        models=MODELS,
        tuning=MODELLING["tuning"],
    run:
        run_rule_script("../../scripts/report_tuning.py", locals())


rule report_models:
    input:
        predictions=expand(MODEL_PREDICTIONS, model=MODELS),
        permutation=expand(MODEL_PERMUTATION_IMPORTANCE, model=MODELS),
        impurity=expand(MODEL_IMPURITY_IMPORTANCE, model=MODELS),
        comparison=COMPARISON,
        metadata=MODELLING_FILES["metadata"],
    output:
        table=report(
            f"{REPORT}/models/comparison.html",
            caption="../report/comparison.rst",
            category="Models",
            subcategory="Comparison",
            labels=report_labels("comparison table"),
        ),
        predicted=per_model_figures(
            "Models", "models", "predicted_vs_actual", "predicted vs actual"
        ),
        residuals=per_model_figures(
            "Models", "models", "residuals_by_year", "residuals by year"
        ),
        importances=per_model_figures(
            "Models", "models", "feature_importances", "feature importances"
        ),
    log:
        "logs/report_models/report_models.log",
    benchmark:
        "benchmarks/report_models/report_models.tsv"
    localrule: True
    conda:
        "../envs/modelling.yaml"
    params:
        models=MODELS,
        top=REPORT_TOP_FEATURES,
    run:
        run_rule_script("../../scripts/report_models.py", locals())


rule report_backtest:
    input:
        backtest=BACKTEST,
        backtest_metadata=BACKTEST_METADATA,
        comparison=COMPARISON,
        metadata=MODELLING_FILES["metadata"],
    output:
        skill=report(
            f"{REPORT}/backtest/skill_by_origin.png",
            caption="../report/backtest_skill.rst",
            category="Backtest",
            labels=report_labels("skill against persistence per origin"),
        ),
        table=report(
            f"{REPORT}/backtest/backtest.html",
            caption="../report/backtest_table.rst",
            category="Backtest",
            labels=report_labels("backtest table"),
        ),
    log:
        "logs/report_backtest/report_backtest.log",
    benchmark:
        "benchmarks/report_backtest/report_backtest.tsv"
    localrule: True
    conda:
        "../envs/modelling.yaml"
    run:
        run_rule_script("../../scripts/report_backtest.py", locals())


rule report_forecast:
    input:
        forecast=FORECAST,
        forecast_metadata=FORECAST_METADATA,
        # The data the forecast's model learnt from (the figures' labels name it).
        metadata=MODELLING_FILES["metadata"],
    output:
        changes=report(
            f"{REPORT}/forecast/forecast_changes.png",
            caption="../report/forecast_changes.rst",
            category="Forecast",
            subcategory="Changes over last year",
            labels=report_labels("forecast changes over last year", "champion"),
        ),
        table=report(
            f"{REPORT}/forecast/forecast_table.html",
            caption="../report/forecast_table.rst",
            category="Forecast",
            subcategory="Forecast table",
            labels=report_labels("forecast table (search, sort)", "champion"),
        ),
        coverage=report(
            f"{REPORT}/forecast/coverage_by_group.png",
            caption="../report/coverage_by_group.rst",
            category="Forecast",
            subcategory="Prediction intervals",
            labels=report_labels("coverage by group and level", "champion"),
        ),
        calibration=report(
            f"{REPORT}/forecast/interval_calibration.png",
            caption="../report/interval_calibration.rst",
            category="Forecast",
            subcategory="Prediction intervals",
            labels=report_labels("nominal vs empirical coverage", "champion"),
        ),
        widths=report(
            f"{REPORT}/forecast/interval_width_by_group.png",
            caption="../report/interval_width_by_group.rst",
            category="Forecast",
            subcategory="Prediction intervals",
            labels=report_labels("interval width by group", "champion"),
        ),
    log:
        "logs/report_forecast/report_forecast.log",
    benchmark:
        "benchmarks/report_forecast/report_forecast.tsv"
    localrule: True
    conda:
        "../envs/modelling.yaml"
    params:
        name_columns=config["forecast"]["names"]["columns"],
    run:
        run_rule_script("../../scripts/report_forecast.py", locals())
