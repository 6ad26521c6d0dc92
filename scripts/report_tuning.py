"""Rule report_tuning: a model's optimisation history, parameter importances and trials."""

import os

# MLflow's usage telemetry would try the network; the build machines have none.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import optuna  # noqa: E402

from drg_workflow.errors import logged_rule  # noqa: E402
from drg_workflow.modelling.tuning import open_storage  # noqa: E402
from drg_workflow.report.figures import optimisation_history, param_importances  # noqa: E402
from drg_workflow.report.output import save_png  # noqa: E402
from drg_workflow.report.tables import data_label, trials_frame  # noqa: E402
from drg_workflow.versions import read_json  # noqa: E402

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    model = snakemake.wildcards.model
    setup = read_json(snakemake.input.setup)
    data = data_label(read_json(snakemake.input.metadata))
    shards = [read_json(path) for path in snakemake.input.shards]
    study = optuna.load_study(
        study_name=setup["study_name"], storage=open_storage(setup["storage"])
    )
    trials = trials_frame(
        model,
        study.get_trials(deepcopy=False),
        {s["shard_index"]: s["trial_numbers"] for s in shards},
    )
    trials.to_csv(snakemake.output.trials, index=False)
    tuning = snakemake.params.tuning
    settings = (
        f"{tuning['n_shards']} shards x {tuning['trials_per_shard']} trials, "
        f"TPE seeds {tuning['base_seed']}+shard, median pruner"
    )
    save_png(optimisation_history(trials, model, data, settings), snakemake.output.history)
    complete = trials["state"].eq("COMPLETE").sum()
    importances = optuna.importance.get_param_importances(study) if complete >= 2 else {}
    save_png(param_importances(importances, model, data), snakemake.output.importances)
    log.info("%s %s: %d trials, importances %s", model, data, len(trials), importances)
