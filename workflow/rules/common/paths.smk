# Every output path of the workflow, defined once: the rules' `output:` use these templates, the
# input functions fill them in, and rule all takes its targets from the rules' outputs.
# All are relative to the working directory (with a default storage provider, inside it).

#: A data version, its metadata and its Arrow copy (the same data, read by the next rule far
#: faster than the CSV).
VERSION_CSV = "results/{version}/{version}.csv"
VERSION_METADATA = "results/{version}/{version}_metadata.json"
VERSION_ARROW = "results/{version}/{version}.arrow"
#: Where download_raw puts the CSV of raw.source url (in the default storage, if any).
RAW_DOWNLOAD = "resources/raw/download.csv"

#: Written by split_years: the years of the split and the backtest's origins,
#: resolved from the data (the years no model fits or scores named with their reasons).
MODELLING_SPLIT = "results/models/split.json"
#: Written by setup_mlflow: the experiment every run goes to (its id, URI, artifact location).
MLFLOW_EXPERIMENT = "results/mlflow/experiment.json"
#: The local MLflow store used when no tracking URI is configured.
DEFAULT_TRACKING_URI = "sqlite:///results/mlflow/mlflow.db"
#: A model's Optuna study (setup_study) and its tuning shards' summaries, per round
#: (tune_shard).
TUNING_SETUP = "results/tuning/{model}/setup.json"
TUNING_SHARD = "results/tuning/{model}/round_{round}/shard_{shard}.json"
#: A model's (or the baseline's) results: train_final / evaluate_baseline.
MODEL_METRICS = "results/models/{model}/metrics.json"
MODEL_PREDICTIONS = "results/models/{model}/predictions.csv"
MODEL_PERMUTATION_IMPORTANCE = "results/models/{model}/permutation_importance.csv"
MODEL_IMPURITY_IMPORTANCE = "results/models/{model}/impurity_importance.csv"
MODEL_MLFLOW_RUN = "results/models/{model}/mlflow_run.json"
COMPARISON = "results/models/comparison.csv"
#: The champion refitted on every year up to the last (refit_champion), and its registration.
CHAMPION_REFIT = "results/models/champion_refit.json"
CHAMPION = "results/models/champion.json"

#: One backtest job per model: refitted before each origin year, its predictions of those years
#: and what each fit was trained on (backtest_model).
BACKTEST_MODEL_PREDICTIONS = "results/backtest/{model}/predictions.csv"
BACKTEST_MODEL_FITS = "results/backtest/{model}/fits.json"
#: The backtest (score_backtest): skill per origin and model (a CSV with metadata like a data
#: version's), every out-of-sample prediction, and its MLflow run ids.
BACKTEST = "results/backtest/backtest.csv"
BACKTEST_METADATA = "results/backtest/backtest_metadata.json"
BACKTEST_PREDICTIONS = "results/backtest/predictions.csv"
#: The skill gate's test over the choosing origins together, per model (score_backtest).
BACKTEST_SKILL_TEST = "results/backtest/skill_test.csv"
BACKTEST_MLFLOW_RUN = "results/backtest/mlflow_run.json"

FORECAST = "results/forecast/forecast.csv"
FORECAST_METADATA = "results/forecast/forecast_metadata.json"
#: The champion's model card (rule model_card; also the registered version's description).
MODEL_CARD = "results/forecast/model_card.md"

#: The default target's proof of the chain on disk (verify_build); `snakemake verify` writes
#: its own report beside its log.
VERIFY_REPORT = "results/verify.json"

#: Figures and tables of `snakemake --report` (rules in report.smk).
REPORT = "results/report"
#: One figure per model: {kind} is the report category's folder, {name} the figure.
REPORT_MODEL_FIGURE = "results/report/{kind}/{model}_{name}.png"
REPORT_METADATA_COPY = "results/report/data_versions/metadata/{version}_metadata.json"


def version_files(version):
    """The CSV, metadata and Arrow copy of one version, by kind."""
    return {
        "csv": VERSION_CSV.format(version=version),
        "metadata": VERSION_METADATA.format(version=version),
        "arrow": VERSION_ARROW.format(version=version),
    }
