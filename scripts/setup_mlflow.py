"""Rule setup_mlflow: create the MLflow experiment (and a fresh local store) once."""

import os

# MLflow's usage telemetry would try the network from every job; the build machines have none.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from drg_workflow.errors import logged_rule  # noqa: E402
from drg_workflow.modelling.steps import setup_mlflow  # noqa: E402
from drg_workflow.modelling.tracking import route_library_logs  # noqa: E402
from drg_workflow.versions import write_json  # noqa: E402

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    route_library_logs(log)
    experiment = setup_mlflow(snakemake.params.mlflow)
    write_json(experiment, snakemake.output.experiment)
    log.info(
        "MLflow experiment %s (%s) in %s, artifacts in %s",
        experiment["experiment_name"],
        experiment["experiment_id"],
        experiment["tracking_uri"],
        experiment["artifact_location"],
    )
