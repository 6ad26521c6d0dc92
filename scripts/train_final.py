"""Rule train_final: refit a model's best parameters, evaluate, log the final MLflow run."""

import pandas as pd

from drg_workflow.documents import read_json, write_json
from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.model_params import set_fit_threads
from drg_workflow.modelling.steps.fit import train_final
from drg_workflow.modelling.steps.shared import metrics_summary, write_table
from drg_workflow.modelling.tracking import route_library_logs

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    set_fit_threads(snakemake.threads)
    route_library_logs(log)
    result = train_final(
        snakemake.params.settings,
        snakemake.params.importance,
        read_json(snakemake.input.setup),
        [read_json(path) for path in snakemake.input.shards],
        snakemake.input.arrow,
        data_source=snakemake.params.data_source,
        years_document=read_json(snakemake.input.split),
    )
    write_table(result.predictions, snakemake.output.predictions)
    write_table(result.permutation_importance, snakemake.output.permutation_importance)
    # Ridge and HistGradientBoosting have no impurity importances: the file then holds the
    # header alone, so every model has the same outputs.
    impurity = result.impurity_importance
    if impurity is None:
        log.info(
            "%s has no impurity importances; writing the header only", snakemake.wildcards.model
        )
        impurity = pd.DataFrame(columns=["feature", "importance"])
    write_table(impurity, snakemake.output.impurity_importance)
    write_json(result.mlflow_run, snakemake.output.mlflow_run)
    write_json(result.metrics, snakemake.output.metrics)
    metrics = result.metrics
    log.info(
        "%s: best of %d complete / %d pruned trials; %s; MLflow run %s, model %s",
        metrics["model"],
        metrics["n_trials_complete"],
        metrics["n_trials_pruned"],
        metrics_summary(metrics),
        result.mlflow_run["run_id"],
        result.mlflow_run["model_uri"],
    )
