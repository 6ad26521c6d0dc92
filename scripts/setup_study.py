"""Rule setup_study: check a model's configuration against its estimator, then create its
Optuna study and the study's MLflow parent run."""

from drg_workflow.documents import read_json, write_json
from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.steps.tuning import setup_study
from drg_workflow.modelling.tracking import route_library_logs
from drg_workflow.modelling.tuning import storage_label

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    route_library_logs(log)
    setup = setup_study(
        snakemake.params.settings,
        read_json(snakemake.input.experiment),
        snakemake.input.metadata,
        read_json(snakemake.input.split),
    )
    write_json(setup, snakemake.output.setup)
    log.info(
        "study %s in %s; MLflow experiment %s (%s), parent run %s",
        setup["study_name"],
        storage_label(setup["storage"], setup["storage_env"]),
        setup["experiment_name"],
        setup["experiment_id"],
        setup["parent_run_id"],
    )
