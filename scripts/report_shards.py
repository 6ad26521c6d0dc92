"""Rule report_shards: complete vs pruned trials of every tuning shard of every model."""

import pandas as pd

from drg_workflow.errors import logged_rule
from drg_workflow.report.figures import trials_per_shard
from drg_workflow.report.output import save_png
from drg_workflow.report.tables import data_label
from drg_workflow.versions import read_json

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    trials = pd.concat([pd.read_csv(path) for path in snakemake.input.trials], ignore_index=True)
    data = data_label(read_json(snakemake.input.metadata))
    save_png(trials_per_shard(trials, data), snakemake.output.shards)
    log.info("%s\n%s", data, trials.groupby(["model", "shard", "state"]).size().to_string())
