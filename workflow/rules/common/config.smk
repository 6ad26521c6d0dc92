# The config, validated once at parse time against workflow/schemas/config.schema.yaml (and the
# checks the schema cannot express), so a bad key stops the run before any job.
import sys
from pathlib import Path

import yaml
from snakemake.sourcecache import LocalSourceFile

# The rules' Python package lives in scripts/ beside workflow/. Found from this file, not from
# workflow.basedir: used as a module, workflow.basedir is the user's directory. From a remote
# module (github(...)) there is no local copy: drg_workflow must then be pip-installed.
_THIS_DIR = workflow.current_basedir
#: The local scripts/ folder (None from a remote module).
LOCAL_SCRIPTS_DIR = (
    Path(_THIS_DIR.get_path_or_uri(secret_free=True)).parents[2] / "scripts"
    if isinstance(_THIS_DIR, LocalSourceFile)
    else None
)
if LOCAL_SCRIPTS_DIR is not None:
    sys.path.insert(0, str(LOCAL_SCRIPTS_DIR))

from drg_workflow.config_validation import ConfigError, validate_config

try:
    # Schema, chain and modelling checks that need no scikit-learn; the models' estimator
    # checks run in their setup_study jobs.
    with open(workflow.source_path("../../schemas/config.schema.yaml")) as schema:
        validate_config(config, yaml.safe_load(schema))
except ConfigError as error:
    # One message naming the key, before any job runs.
    raise WorkflowError(str(error)) from None

MODELLING = config["modelling"]
