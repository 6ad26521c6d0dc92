"""Rule tune_shard: run one shard's slice of a tuning round's candidates as trials of a model's
Optuna study (a round's shards run in parallel)."""

from drg_workflow.documents import read_json, write_json
from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.model_params import set_fit_threads
from drg_workflow.modelling.steps.tuning import tune_shard
from drg_workflow.modelling.tracking import route_library_logs

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    set_fit_threads(snakemake.threads)
    route_library_logs(log)
    summary = tune_shard(
        snakemake.params.settings,
        read_json(snakemake.input.setup),
        snakemake.input.arrow,
        int(snakemake.wildcards.shard),
        read_json(snakemake.input.split),
        int(snakemake.wildcards.round),
    )
    write_json(summary, snakemake.output.summary)
    log.info(
        "round %s shard %s of %s: %d trials (%d complete, %d pruned, %d failed) in %.1f s "
        "(%.2f trials/min); best CV loss ratio to persistence in shard %s",
        summary["round"],
        summary["shard_index"],
        summary["study_name"],
        summary["n_trials_run"],
        summary["n_complete"],
        summary["n_pruned"],
        summary["n_fail"],
        summary["seconds"],
        summary["trials_per_minute"],
        summary["best_value_in_shard"],
    )
