"""Rule report_model: a final model's predicted vs actual, residuals and importances."""

import pandas as pd

from drg_workflow.errors import logged_rule
from drg_workflow.report.figures import (
    feature_importances,
    predicted_vs_actual,
    residuals_by_year,
)
from drg_workflow.report.output import save_png
from drg_workflow.report.tables import data_label
from drg_workflow.versions import read_json

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    model = snakemake.wildcards.model
    data = data_label(read_json(snakemake.input.metadata))
    predictions = pd.read_csv(snakemake.input.predictions)
    comparison = pd.read_csv(snakemake.input.comparison, keep_default_na=False)
    warning = "".join(comparison.loc[comparison["model"] == model, "warning"].astype(str))
    save_png(predicted_vs_actual(predictions, model, data, warning), snakemake.output.predicted)
    save_png(residuals_by_year(predictions, model, data), snakemake.output.residuals)
    figure = feature_importances(
        pd.read_csv(snakemake.input.permutation),
        pd.read_csv(snakemake.input.impurity),
        model,
        data,
        top=snakemake.params.top,
    )
    save_png(figure, snakemake.output.importances)
    log.info("%s %s: %d predictions; warning: %r", model, data, len(predictions), warning)
