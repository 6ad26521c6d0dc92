# Config validation, derived settings and input functions shared by the rules.
import sys
from pathlib import Path

import yaml

# The rules' Python package lives in scripts/; the Snakefile needs its config validation.
sys.path.insert(0, str(Path(workflow.basedir).parent / "scripts"))
from drg_workflow.config_validation import ConfigError, validate_config

RAW_VERSION = "v0"
CONFIG_SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"

try:
    validate_config(config, yaml.safe_load(CONFIG_SCHEMA.read_text()))
except ConfigError as error:
    # One message naming the key, before any job runs.
    raise WorkflowError(str(error)) from None

#: version -> its chain entry ({version, transformation, input}).
CHAIN = {step["version"]: step for step in config["chain"]}
#: Every version the workflow can build, v0 first.
VERSIONS = [RAW_VERSION, *CHAIN]
#: Transformations used by the chain, in first-use order: one rule each.
CHAIN_TRANSFORMATIONS = list(
    dict.fromkeys(step["transformation"] for step in CHAIN.values())
)


wildcard_constraints:
    version="|".join(VERSIONS),


def version_csv(version):
    return f"results/{version}/{version}.csv"


def version_metadata(version):
    return f"results/{version}/{version}_metadata.json"


def version_arrow(version):
    """The Arrow copy of a version: the same data, read by the next rule far faster."""
    return f"results/{version}/{version}.arrow"


def versions_made_by(transformation):
    """Regex matching the versions a transformation makes (used as its rule's constraint)."""
    return "|".join(
        v for v, step in CHAIN.items() if step["transformation"] == transformation
    )


def input_version_files(wildcards):
    """The data and metadata of the version the requested version is made from."""
    source = CHAIN[wildcards.version]["input"]
    return {"arrow": version_arrow(source), "metadata": version_metadata(source)}


def transformation_parameters(transformation):
    """Keyword parameters of a transformation, from the config."""
    lags = config["lags"]
    lag_parameters = {
        "lag_columns": {"columns": lags["columns"], "by": lags["by"]},
        "rolling_columns": {
            "columns": lags["columns"],
            "window": lags["rolling_window"],
            "by": lags["by"],
        },
        "drop_non_lag_columns": {
            "columns": lags["columns"],
            "keep": [config["target"]],
        },
    }
    return {
        **config["transformations"].get(transformation, {}),
        **lag_parameters.get(transformation, {}),
    }


def raw_input_files(wildcards):
    """The raw CSV that v0 is read from (nothing for the synthetic generator)."""
    if config["raw"]["source"] == "file":
        return {"raw": config["raw"]["path"]}
    return {}


def raw_parameters():
    """Settings of the configured raw source, as recorded in the v0 metadata."""
    raw = config["raw"]
    if raw["source"] == "synthetic":
        return {"source": "synthetic", **raw["synthetic"]}
    return {
        "source": raw["source"],
        "on_bad_rows": raw["on_bad_rows"],
        "plausible_years": raw["plausible_years"],
    }


def all_targets():
    """Every version's CSV and metadata."""
    return [path for v in VERSIONS for path in (version_csv(v), version_metadata(v))]
