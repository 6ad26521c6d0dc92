"""Rule setup_mlflow: create the MLflow experiment (and a fresh local store) once."""

from drg_workflow.documents import write_json
from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.steps.tuning import setup_mlflow
from drg_workflow.modelling.tracking import route_library_logs

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    route_library_logs(log, optuna=False)
    experiment = setup_mlflow(snakemake.params.mlflow)
    write_json(experiment, snakemake.output.experiment)
    log.info(
        "MLflow experiment %s (%s) in %s, artifacts in %s",
        experiment["experiment_name"],
        experiment["experiment_id"],
        experiment["tracking_uri"],
        experiment["artifact_location"],
    )
