"""Rule script of download_raw: fetch the raw CSV of ``raw.source: url`` (retries, atomic)."""

from drg_workflow.download import download
from drg_workflow.jobs import logged_rule

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    # Retry settings come from the config, not params: changing them must not re-download.
    settings = snakemake.config["raw"]["download"]
    download(snakemake.params.url, snakemake.output.raw, **settings, log=log)
