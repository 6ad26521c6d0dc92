"""Names that the workflow, its rules and the package share: one definition each.

Only the standard library, so the Snakefile can import it at parse time.
"""

#: The raw data version, made by rule ``ingest_raw`` from the configured raw source.
RAW_VERSION = "v0"
#: The rule (and the transformation name recorded in v0's metadata) that makes ``RAW_VERSION``.
RAW_TRANSFORMATION = "ingest_raw"
#: The key of one row from ``agg_severities`` (v8) on: a (year, facility, DRG).
ROW_KEY: tuple[str, ...] = ("year", "facility_id", "apr_drg_code")
#: Keys of one (facility, DRG) time series, the unit that lags and histories are taken within.
SERIES_KEYS: list[str] = ["facility_id", "apr_drg_code"]
#: The naive persistence baseline, evaluated and compared like a model.
BASELINE_NAME = "baseline"
#: The year splits of the modelling data, in time order.
SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")
#: The splits the models are scored on (never fitted on).
HELD_OUT_SPLITS: tuple[str, ...] = ("validation", "test")
#: Roles of the backtest's origins: those in the validation years choose the champion, those in
#: the test years only report how it would have done.
CHOOSING_ROLE = "choosing"
REPORTING_ROLE = "reporting"
ORIGIN_ROLES: tuple[str, ...] = (CHOOSING_ROLE, REPORTING_ROLE)

#: A skill against persistence and its bootstrap interval, for RMSE then MAE: columns of the
#: backtest table, its pooled skill test and the comparison, and metrics of the backtest runs.
SKILL_COLUMNS: tuple[str, ...] = tuple(
    f"skill_{metric}{end}" for metric in ("rmse", "mae") for end in ("", "_lower", "_upper")
)
