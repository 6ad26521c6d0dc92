"""Rule forecast: next year's target for every (facility, DRG) of the last year, with an
interval, from the champion loaded by its registry alias (or persistence without one)."""

import sys

import pandas as pd

from drg_workflow.errors import logged_rule
from drg_workflow.modelling.steps import forecast_step
from drg_workflow.modelling.tracking import route_library_logs
from drg_workflow.names import BASELINE_NAME
from drg_workflow.versions import read_json, write_version

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    route_library_logs(log)
    champion = read_json(snakemake.input.champion)
    model = champion["champion"] or BASELINE_NAME
    base = read_json(snakemake.input.base_metadata)
    modelling = read_json(snakemake.input.metadata)
    result = forecast_step(
        snakemake.params.settings,
        champion,
        snakemake.input.base_arrow,
        snakemake.input.arrow,
        pd.read_csv(snakemake.input.backtest_predictions),
        read_json(snakemake.input.split),
    )
    document = write_version(
        result.table,
        snakemake.output.csv,
        snakemake.output.metadata,
        version="forecast",
        transformation="forecast",
        parameters=snakemake.params.settings["forecast"],
        input_version=base["version"],
        input_sha256=base["sha256"],
        extra={
            "modelling_data": {"version": modelling["version"], "sha256": modelling["sha256"]},
            **result.provenance,
        },
    )
    interval = result.provenance["interval"]
    coverage = interval["test_coverage"].get("all")
    log.info(
        "forecast of %s for %d, the year after the data's last year %d: %d rows by %s; %.0f%% "
        "interval (%s, %s) covers %s of the reporting origins' rows",
        result.provenance["target"],
        result.provenance["forecast_year"],
        result.provenance["last_data_year"],
        document["rows"],
        model,
        100 * interval["level"],
        interval["method"],
        interval["calibration"],
        "n/a (no reporting origin)" if coverage is None else f"{100 * coverage:.1f}%",
    )
    if result.warning:
        log.warning(result.warning)
        print(f"WARNING: {result.warning}", file=sys.stderr)
