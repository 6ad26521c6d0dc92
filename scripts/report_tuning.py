"""Rule report_tuning: per model the optimisation history and parameter importances, and the
complete vs pruned trials of every shard of every model."""

import optuna
import pandas as pd

from drg_workflow.documents import read_json
from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.tuning import StudyRef
from drg_workflow.report.figures import (
    optimisation_history,
    param_importances,
    trials_per_shard,
)
from drg_workflow.report.output import save_png
from drg_workflow.report.tables import data_label, trials_frame

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = data_label(read_json(snakemake.input.metadata))
    tuning = snakemake.params.tuning
    settings = (
        f"{tuning['rounds']} rounds of {tuning['n_shards']} shards, "
        f"{tuning['trials_per_shard']} trials per shard, TPE seeds {tuning['base_seed']}+round"
    )
    frames = []
    for model, setup_path, history_path, importances_path in zip(
        snakemake.params.models,
        snakemake.input.setups,
        snakemake.output.history,
        snakemake.output.importances,
        strict=True,
    ):
        setup = read_json(setup_path)
        study = optuna.load_study(
            study_name=setup["study_name"], storage=StudyRef.from_setup(setup).open_storage()
        )
        trials = trials_frame(model, study.get_trials(deepcopy=False))
        frames.append(trials)
        save_png(optimisation_history(trials, model, data, settings), history_path)
        complete = int(trials["state"].eq("COMPLETE").sum())
        importances = optuna.importance.get_param_importances(study) if complete >= 2 else {}
        save_png(param_importances(importances, model, data), importances_path)
        log.info("%s %s: %d trials, importances %s", model, data, len(trials), importances)
    all_trials = pd.concat(frames, ignore_index=True)
    all_trials.to_csv(snakemake.output.trials, index=False)
    save_png(trials_per_shard(all_trials, data), snakemake.output.shards)
