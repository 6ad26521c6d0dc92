"""Rule report_version_metadata: every data version's metadata, copied byte for byte into the
report (the report shows a rule's own outputs only)."""

import shutil

from drg_workflow.jobs import logged_rule

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    for source, copy in zip(snakemake.input, snakemake.output, strict=True):
        shutil.copyfile(source, copy)
    log.info("copied the metadata of %d versions", len(snakemake.output))
