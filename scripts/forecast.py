"""Rule forecast: next year's target for every (facility, DRG) of the last year, named, with
intervals per group, from the champion loaded by its registry alias (or persistence without
one)."""

import sys

import pandas as pd

from drg_workflow.documents import read_json
from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.intervals import ALL_ROWS
from drg_workflow.modelling.steps.forecast import forecast
from drg_workflow.modelling.tracking import route_library_logs
from drg_workflow.names import BASELINE_NAME
from drg_workflow.versions import write_version

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    route_library_logs(log, optuna=False)
    champion = read_json(snakemake.input.champion)
    model = champion["champion"] or BASELINE_NAME
    base = read_json(snakemake.input.base_metadata)
    modelling = read_json(snakemake.input.metadata)
    names = read_json(snakemake.input.names_metadata)
    result = forecast(
        snakemake.params.settings,
        champion,
        snakemake.input.base_arrow,
        snakemake.input.arrow,
        snakemake.input.names_arrow,
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
            "names_data": {"version": names["version"], "sha256": names["sha256"]},
            **result.provenance,
        },
    )
    interval = result.provenance["interval"]
    log.info(
        "forecast of %s for %d, the year after the data's last year %d: %d rows by %s; "
        "intervals (%s) per group of %s, calibrated on the backtest's origins %s",
        result.provenance["target"],
        result.provenance["forecast_year"],
        result.provenance["last_data_year"],
        document["rows"],
        model,
        interval["method"],
        interval["groups"]["column"],
        ", ".join(map(str, interval["calibration"]["years"])),
    )
    if interval["test"] is None:
        log.info("no reporting origin: the intervals' coverage is measured on no held-out year")
    else:
        for level, by_group in interval["test"]["by_group"].items():
            coverages = [v["coverage"] for g, v in by_group.items() if g != ALL_ROWS]
            log.info(
                "%s interval (calibrated on %s) at the reporting origins %s: %.1f%% covered "
                "(groups %.1f%% to %.1f%%), Winkler score %.0f",
                level,
                ", ".join(map(str, interval["test"]["calibration_years"])),
                ", ".join(map(str, interval["test"]["years"])),
                100 * by_group[ALL_ROWS]["coverage"],
                100 * min(coverages),
                100 * max(coverages),
                by_group[ALL_ROWS]["winkler_score"],
            )
    if result.warning:
        log.warning(result.warning)
        print(f"WARNING: {result.warning}", file=sys.stderr)
