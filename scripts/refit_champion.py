"""Rule refit_champion: the champion of the comparison refitted with its tuned parameters on
every year up to the last one, logged to MLflow (nothing without a champion)."""

from drg_workflow.documents import read_json, write_json
from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.model_params import set_fit_threads
from drg_workflow.modelling.steps.champion import refit_champion
from drg_workflow.modelling.tracking import route_library_logs

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    set_fit_threads(snakemake.threads)
    route_library_logs(log, optuna=False)
    models = snakemake.params.models
    refit = refit_champion(
        snakemake.params.settings,
        snakemake.input.comparison,
        dict(zip(models, map(read_json, snakemake.input.metrics), strict=True)),
        dict(zip(models, map(read_json, snakemake.input.runs), strict=True)),
        read_json(snakemake.input.split),
        read_json(snakemake.input.experiment),
        snakemake.input.arrow,
        data_source=snakemake.params.data_source,
    )
    write_json(refit, snakemake.output.refit)
    if refit["champion"] is None:
        log.info("no model passes the skill gate: nothing to refit")
    else:
        years = refit["training_years"]
        log.info(
            "%s refitted on %d-%d (%d rows), chosen on the origins %s: MLflow run %s, model %s",
            refit["champion"],
            years[0],
            years[-1],
            refit["rows"],
            ", ".join(map(str, refit["chosen_on"])),
            refit["run_id"],
            refit["model_uri"],
        )
