"""Rule register_champion: the best model that beats the baseline into MLflow's registry."""

import sys

from drg_workflow.errors import logged_rule
from drg_workflow.modelling.steps import register_champion_step
from drg_workflow.modelling.tracking import route_library_logs
from drg_workflow.versions import read_json, write_json

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    route_library_logs(log)
    champion = register_champion_step(
        snakemake.input.comparison,
        {model: snakemake.input.runs[i] for i, model in enumerate(snakemake.params.models)},
        read_json(snakemake.input.experiment),
        snakemake.params.registered_model,
    )
    write_json(champion, snakemake.output.champion)
    if champion["champion"] is None:
        message = (
            "no model beats the naive persistence baseline: nothing registered"
            + (", alias champion removed" if champion["alias_removed"] else "")
            + "; the forecast uses persistence"
        )
        log.warning(message)
        print(f"WARNING: {message}", file=sys.stderr)
    else:
        log.info(
            "champion %s (validation RMSE %.2f vs baseline %.2f): %s version %s, alias %s",
            champion["champion"],
            champion["val_rmse"],
            champion["baseline_val_rmse"],
            champion["registered_model"],
            champion["version"],
            champion["model_uri"],
        )
