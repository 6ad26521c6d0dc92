"""Rule report_backtest: the backtest's skill per origin and model (figure and table)."""

import pandas as pd

from drg_workflow.documents import read_json
from drg_workflow.jobs import logged_rule
from drg_workflow.modelling.comparison import champion_model
from drg_workflow.report.figures import backtest_skill
from drg_workflow.report.output import save_png, save_text
from drg_workflow.report.tables import backtest_page, data_label

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    data = data_label(read_json(snakemake.input.metadata))
    backtest = pd.read_csv(snakemake.input.backtest)
    level = read_json(snakemake.input.backtest_metadata)["transformation"]["parameters"][
        "interval_level"
    ]
    champion = champion_model(pd.read_csv(snakemake.input.comparison))
    save_png(backtest_skill(backtest, champion, level, data), snakemake.output.skill)
    save_text(backtest_page(backtest, champion, level, data), snakemake.output.table)
    log.info(
        "backtest of %d origins and %d models (%s), champion %s",
        backtest["origin"].nunique(),
        backtest["model"].nunique() - 1,
        data,
        champion,
    )
