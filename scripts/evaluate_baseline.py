"""Rule evaluate_baseline: the naive persistence baseline, evaluated and logged like a model."""

import os

# MLflow's usage telemetry would try the network from every job; the build machines have none.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from drg_workflow.errors import logged_rule  # noqa: E402
from drg_workflow.modelling.steps import baseline_step, route_library_logs  # noqa: E402
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
    log.info(
        "baseline: CV RMSE %.2f, validation RMSE %.2f MAE %.2f R2 %.4f, "
        "test RMSE %.2f MAE %.2f R2 %.4f; MLflow run %s",
        metrics["cv_rmse"],
        metrics["val_rmse"],
        metrics["val_mae"],
        metrics["val_r2"],
        metrics["test_rmse"],
        metrics["test_mae"],
        metrics["test_r2"],
        metrics["mlflow"]["run_id"],
    )
