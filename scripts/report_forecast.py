"""Rule report_forecast: the forecast's changes over last year and its interval coverage."""

import pandas as pd

from drg_workflow.errors import logged_rule
from drg_workflow.report.figures import forecast_changes, interval_coverage
from drg_workflow.report.output import save_png
from drg_workflow.report.tables import data_label
from drg_workflow.versions import read_json

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    metadata = read_json(snakemake.input.forecast_metadata)
    data = data_label(read_json(snakemake.input.metadata))
    forecast = pd.read_csv(snakemake.input.forecast)
    year, model = metadata["forecast_year"], metadata["model"]
    save_png(forecast_changes(forecast, model, year, data), snakemake.output.changes)
    interval = metadata["interval"]
    figure = interval_coverage(
        interval["test_coverage"], interval["level"], interval["method"], data
    )
    save_png(figure, snakemake.output.coverage)
    log.info("forecast for %d by %s; interval coverage %s", year, model, interval["test_coverage"])
