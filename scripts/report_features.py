"""Rule report_features: the target's distribution by year and the strongest lag features."""

from drg_workflow.documents import read_json
from drg_workflow.jobs import logged_rule
from drg_workflow.report.figures import lag_features_vs_target, strongest_features, target_by_year
from drg_workflow.report.output import save_png
from drg_workflow.report.tables import data_label
from drg_workflow.tables import read_arrow

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    target = snakemake.params.target
    data = data_label(read_json(snakemake.input.metadata))
    frame = read_arrow(snakemake.input.arrow)
    save_png(target_by_year(frame, target, data), snakemake.output.target)
    suffixes = ("_lag1", f"_rolling{snakemake.params.rolling_window}")
    candidates = [c for c in frame.columns if c.endswith(suffixes)]
    correlations = strongest_features(frame, target, candidates, snakemake.params.n_features)
    figure = lag_features_vs_target(frame, target, correlations, data)
    save_png(figure, snakemake.output.lags)
    log.info("%s; strongest lag features (Spearman):\n%s", data, correlations.to_string())
