"""Rule report_forecast: the forecast's changes over last year, its searchable table, and its
intervals' coverage by group and level, calibration and width by group."""

from drg_workflow.documents import read_json
from drg_workflow.jobs import logged_rule
from drg_workflow.report.figures import (
    coverage_by_group,
    forecast_changes,
    interval_calibration,
    interval_width_by_group,
)
from drg_workflow.report.output import save_png, save_text
from drg_workflow.report.tables import data_label, forecast_page
from drg_workflow.tables import metadata_dtypes, read_csv

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    metadata = read_json(snakemake.input.forecast_metadata)
    data = data_label(read_json(snakemake.input.metadata))
    forecast = read_csv(snakemake.input.forecast, metadata_dtypes(metadata))
    year, model = metadata["forecast_year"], metadata["model"]
    interval = metadata["interval"]
    levels, groups = interval["levels"], interval["groups"]["order"]
    save_png(forecast_changes(forecast, model, year, data), snakemake.output.changes)
    page = forecast_page(
        forecast,
        snakemake.params.name_columns,
        levels,
        groups,
        interval["groups"]["column"],
        title=f"Forecast for {year} by {model}",
        note=(
            f"Data {data}. One row per (facility, APR DRG) of {year - 1}: last year's value, "
            f"the forecast and its prediction intervals, in dollars of {metadata['target']} "
            "(results/forecast/forecast.csv has cents). Type to search; click a header to sort "
            "(intervals sort by width)."
        ),
    )
    save_text(page, snakemake.output.table)
    method, column = interval["method"], interval["groups"]["column"]
    save_png(
        coverage_by_group(interval["test"], groups, column, method, data),
        snakemake.output.coverage,
    )
    save_png(
        interval_calibration(interval["test"], groups, method, data), snakemake.output.calibration
    )
    save_png(
        interval_width_by_group(forecast, levels, groups, column, year, data),
        snakemake.output.widths,
    )
    log.info(
        "forecast for %d by %s: %d rows; report figures and table written",
        year,
        model,
        len(forecast),
    )
