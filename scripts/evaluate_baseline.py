"""Rule evaluate_baseline: the naive persistence baseline, evaluated and logged like a model."""

import os

# MLflow's usage telemetry would try the network from every job; the build machines have none.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from drg_workflow.errors import logged_rule  # noqa: E402
from drg_workflow.modelling.steps import (  # noqa: E402
    baseline_step,
    metrics_summary,
    route_library_logs,
)
from drg_workflow.versions import read_json, write_json  # noqa: E402

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    route_library_logs(log)
    metrics, predictions = baseline_step(
        snakemake.params.settings,
        read_json(snakemake.input.setup),
        snakemake.input.arrow,
        data_source=snakemake.params.data_source,
    )
    predictions.to_csv(snakemake.output.predictions, index=False)
    write_json(metrics, snakemake.output.metrics)
    log.info("baseline: %s; MLflow run %s", metrics_summary(metrics), metrics["mlflow"]["run_id"])
