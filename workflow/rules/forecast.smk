# The next-year forecast: the champion (refitted on every year up to the last), loaded back from
# MLflow's model registry by its alias, predicts the target for the year after the data's last
# year, for every (facility, DRG) of that last year, with a split-conformal interval from its
# backtest residuals at the choosing origins; without a champion, persistence. The next year's features are made by the chain's own lag steps
# (drg_workflow.modelling.forecast).


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
    conda:
        "../envs/modelling.yaml"
    resources:
        mem_mb=2000,
    params:
        settings=forecast_settings(),
    script:
        "../../scripts/forecast.py"
