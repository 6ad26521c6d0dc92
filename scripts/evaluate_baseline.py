"""Rule evaluate_baseline: the naive persistence baseline, evaluated and logged like a model."""

from drg_workflow.documents import read_json, write_json
from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.steps.fit import evaluate_baseline
from drg_workflow.modelling.steps.shared import metrics_summary, write_table
from drg_workflow.modelling.tracking import route_library_logs

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    route_library_logs(log, optuna=False)
    metrics, predictions = evaluate_baseline(
        snakemake.params.settings,
        read_json(snakemake.input.experiment),
        snakemake.input.metadata,
        snakemake.input.arrow,
        data_source=snakemake.params.data_source,
        years_document=read_json(snakemake.input.split),
    )
    write_table(predictions, snakemake.output.predictions)
    write_json(metrics, snakemake.output.metrics)
    log.info("baseline: %s; MLflow run %s", metrics_summary(metrics), metrics["mlflow"]["run_id"])
