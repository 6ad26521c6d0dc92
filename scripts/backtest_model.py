"""Rule backtest_model: one model refitted with its tuned parameters on every year before each
backtest origin, and its predictions of that origin."""

from drg_workflow.documents import read_json, write_json
from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.model_params import set_fit_threads
from drg_workflow.modelling.steps.backtest import backtest_model
from drg_workflow.modelling.steps.shared import write_table

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    set_fit_threads(snakemake.threads)
    predictions, fits = backtest_model(
        snakemake.params.settings,
        read_json(snakemake.input.setup),
        [read_json(path) for path in snakemake.input.shards],
        read_json(snakemake.input.split),
        snakemake.input.arrow,
    )
    write_table(predictions, snakemake.output.predictions)
    write_json({"fits": fits}, snakemake.output.fits)
    for fit in fits:
        years = fit["training_years"]
        log.info(
            "%s at origin %d (%s): fitted on %d-%d, predicted %d rows",
            fit["model"],
            fit["origin"],
            fit["role"],
            years[0],
            years[-1],
            fit["rows_predicted"],
        )
