"""Rule report_comparison: the comparison table as a page of the report."""

import pandas as pd

from drg_workflow.errors import logged_rule
from drg_workflow.report.output import save_text
from drg_workflow.report.tables import comparison_page, data_label
from drg_workflow.versions import read_json

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    comparison = pd.read_csv(snakemake.input.comparison, keep_default_na=False, na_values=[""])
    data = data_label(read_json(snakemake.input.metadata))
    save_text(comparison_page(comparison, data), snakemake.output.table)
    log.info("%s: comparison of %d rows", data, len(comparison))
