"""Rule score_backtest: every model's skill against persistence at every origin, with bootstrap
intervals; the table (with metadata like a data version's), every out-of-sample prediction, and
the MLflow runs."""

import pandas as pd

from drg_workflow.documents import read_json, write_json
from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.steps.backtest import log_backtest, score_backtest
from drg_workflow.modelling.tracking import route_library_logs
from drg_workflow.tables import write_frame_csv
from drg_workflow.versions import write_version

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    route_library_logs(log, optuna=False)
    data = read_json(snakemake.input.metadata)
    result = score_backtest(
        snakemake.params.settings,
        [pd.read_csv(path) for path in snakemake.input.predictions],
        [fit for path in snakemake.input.fits for fit in read_json(path)["fits"]],
        read_json(snakemake.input.split),
    )
    predictions = write_frame_csv(result.predictions, snakemake.output.predictions)
    skill_test = write_frame_csv(result.skill_test, snakemake.output.skill_test)
    metadata = write_version(
        result.table,
        snakemake.output.table,
        snakemake.output.metadata,
        version="backtest",
        transformation="backtest",
        parameters=snakemake.params.settings,
        input_version=data["version"],
        input_sha256=data["sha256"],
        extra={**result.provenance, "predictions": predictions, "skill_test": skill_test},
    )
    run = log_backtest(read_json(snakemake.input.experiment), result.table, metadata)
    write_json(run, snakemake.output.mlflow_run)
    log.info(
        "backtest of %d origins, MLflow run %s:\n%s",
        result.table["origin"].nunique(),
        run["run_id"],
        result.table.to_string(),
    )
    log.info("skill over the choosing origins together:\n%s", result.skill_test.to_string())
