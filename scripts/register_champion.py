"""Rule register_champion: the refitted champion into MLflow's model registry (alias champion);
without a champion, the alias is removed and the forecast uses persistence."""

import sys

from drg_workflow.documents import read_json, write_json
from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.steps.champion import register_champion
from drg_workflow.modelling.tracking import route_library_logs

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    route_library_logs(log, optuna=False)
    champion = register_champion(
        read_json(snakemake.input.refit),
        read_json(snakemake.input.experiment),
        snakemake.params.registered_model,
    )
    write_json(champion, snakemake.output.champion)
    if champion["champion"] is None:
        message = (
            "no model passes the skill gate: nothing registered"
            + (", alias champion removed" if champion["alias_removed"] else "")
            + "; the forecast uses persistence"
        )
        log.warning(message)
        print(f"WARNING: {message}", file=sys.stderr)
    else:
        years = champion["training_years"]
        log.info(
            "champion %s (chosen on the origins %s, trained on %d-%d): %s version %s, alias %s",
            champion["champion"],
            ", ".join(map(str, champion["chosen_on"])),
            years[0],
            years[-1],
            champion["registered_model"],
            champion["version"],
            champion["model_uri"],
        )
