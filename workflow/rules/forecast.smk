# The next-year forecast: the champion (refitted on every year up to the last), loaded back from
# MLflow's model registry by its alias, predicts the target for the year after the data's last
# year, for every (facility, DRG) of that last year, named, with split-conformal intervals per
# group of rows calibrated on its backtest residuals; without a champion, persistence. The next
# year's features are made by the chain's own lag steps (drg_workflow.modelling.forecast).
# Then the champion's model card.


rule forecast:
    input:
        unpack(forecast_inputs),
    output:
        csv=FORECAST,
        metadata=FORECAST_METADATA,
    log:
        "logs/forecast/forecast.log",
    benchmark:
        "benchmarks/forecast/forecast.tsv"
    priority: FORECAST_PATH_PRIORITY
    conda:
        "../envs/modelling.yaml"
    resources:
        mem_mb=2000,
    params:
        settings=forecast_settings(),
    script:
        "../../scripts/forecast.py"


rule model_card:
    input:
        champion=CHAMPION,
        metrics=expand(MODEL_METRICS, model=[*MODELS, BASELINE_NAME]),
        forecast_metadata=FORECAST_METADATA,
        split=MODELLING_SPLIT,
        backtest=BACKTEST,
        comparison=COMPARISON,
        # The data the champion learnt from (the report's labels name it).
        metadata=MODELLING_FILES["metadata"],
    output:
        markdown=MODEL_CARD,
        html=report(
            f"{REPORT}/forecast/model_card.html",
            caption="../report/model_card.rst",
            category="Forecast",
            subcategory="Model card",
            labels=report_labels("model card", "champion"),
        ),
    log:
        "logs/model_card/model_card.log",
    benchmark:
        "benchmarks/model_card/model_card.tsv"
    # Bookkeeping (the registry's description, one artifact): where Snakemake runs, like
    # register_champion, instead of a cluster job of its own at the end of the run.
    localrule: True
    conda:
        "../envs/modelling.yaml"
    params:
        settings=shared_modelling_settings(),
        models=[*MODELS, BASELINE_NAME],
    run:
        run_rule_script("../../scripts/model_card.py", locals())
