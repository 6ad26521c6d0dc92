"""Rule report_data_versions: the lineage table and the rows-along-the-chain chart."""

from drg_workflow.documents import read_json
from drg_workflow.jobs import logged_rule
from drg_workflow.report.figures import rows_along_chain
from drg_workflow.report.output import save_png, save_text
from drg_workflow.report.tables import lineage_page, lineage_table

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    lineage = lineage_table(read_json(path) for path in snakemake.input.metadata)
    save_text(lineage_page(lineage), snakemake.output.lineage)
    save_png(rows_along_chain(lineage), snakemake.output.rows)
    log.info("lineage of %d versions:\n%s", len(lineage), lineage.to_string())
