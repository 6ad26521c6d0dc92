"""Rule report_models: the comparison table, and per final model predicted vs actual,
residuals by year and feature importances."""

import pandas as pd

from drg_workflow.documents import read_json
from drg_workflow.jobs import logged_rule
from drg_workflow.report.figures import (
    feature_importances,
    predicted_vs_actual,
    residuals_by_year,
)
from drg_workflow.report.output import save_png, save_text
from drg_workflow.report.tables import comparison_page, data_label

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    data = data_label(read_json(snakemake.input.metadata))
    comparison = pd.read_csv(
        snakemake.input.comparison,
        keep_default_na=False,
        na_values=[""],
        dtype={"warning": "string", "best_params": "string"},
    )
    save_text(comparison_page(comparison, data), snakemake.output.table)
    warnings = dict(zip(comparison["model"], comparison["warning"].fillna(""), strict=True))
    for i, model in enumerate(snakemake.params.models):
        predictions = pd.read_csv(snakemake.input.predictions[i])
        warning = str(warnings.get(model, ""))
        figure = predicted_vs_actual(predictions, model, data, warning)
        save_png(figure, snakemake.output.predicted[i])
        save_png(residuals_by_year(predictions, model, data), snakemake.output.residuals[i])
        figure = feature_importances(
            pd.read_csv(snakemake.input.permutation[i]),
            pd.read_csv(snakemake.input.impurity[i]),
            model,
            data,
            top=snakemake.params.top,
        )
        save_png(figure, snakemake.output.importances[i])
        log.info("%s %s: %d predictions; warning: %r", model, data, len(predictions), warning)
